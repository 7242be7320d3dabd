// Drives Rill's web console in headless Chromium (Debian's, through
// playwright-core) as a person would: clicks, types, reads what is shown.
// Run through ./run, which installs playwright-core and sets NODE_PATH.
//
//   run topic URL TOPIC                    create, browse, produce, configs
//   run lag URL GROUP EXPECTED             the group page shows this total lag
//   run reset URL GROUP TOPIC              reset TOPIC to earliest: preview, apply
//   run many URL TOTAL SEARCH MATCHES      paging and search of the topics list
//   run phone URL TOPIC                    390 px wide: no page-wide scroll
//   run security URL USER PASSWORD TOPIC   SCRAM user USER, an ACL letting it
//                                          read TOPIC (both left in place);
//                                          a group ACL added and deleted
//
// URL is the console's, e.g. http://127.0.0.1:9644/. Screenshots go to
// $RILL_CONSOLE_SCREENSHOTS. Every wait is for a condition, bounded by
// $RILL_CONSOLE_TIMEOUT_MS (30 s). On failure: a message on stderr, a
// failure-<subcommand>.png screenshot, exit status 1.
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const TIMEOUT_MS = Number(process.env.RILL_CONSOLE_TIMEOUT_MS || 30000);
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = process.env.RILL_CONSOLE_SCREENSHOTS
  || path.join(process.env.CARGO_TARGET_DIR || path.join(__dirname, '..', '..', 'target'), 'console-screenshots');

/** What the test expected and did not see. */
class Failure extends Error {}

const tid = (id) => `[data-testid="${id}"]`;
/** A CSS attribute selector matching `value` exactly. */
const attr = (name, value) => `[${name}="${String(value).replace(/["\\]/g, '\\$&')}"]`;

const DESKTOP = { viewport: { width: 1280, height: 900 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

/** A page and the helpers each test uses. */
class Session {
  /** `open(phone)` opens another page, in a browser context of its own. */
  constructor(page, base, open) {
    this.page = page;
    this.base = base;
    this.open = open;
  }

  /** The same console in a new phone-sized page (390x844, touch), for a test that is not a phone test. */
  async phone() {
    return new Session(await this.open(true), this.base, this.open);
  }

  /** The console's URL with `hash` (e.g. "#/topics"). */
  at(hash) {
    const u = new URL(this.base);
    u.hash = hash;
    return u.toString();
  }

  async goto(hash) {
    await this.page.goto(this.at(hash), { waitUntil: 'domcontentloaded' });
  }

  /**
   * Waits until `check(arg)` is true in the page. On timeout, fails naming
   * `what`, with `found(arg)` (evaluated in the page) saying what it saw.
   */
  async until(what, check, arg, found) {
    try {
      await this.page.waitForFunction(check, arg, { timeout: TIMEOUT_MS, polling: 100 });
    } catch (e) {
      if (!/Timeout/i.test(e.message)) throw e;
      let seen = '';
      try {
        seen = found ? await this.page.evaluate(found, arg) : '';
      } catch (_) { /* the page is gone: the timeout says enough */ }
      throw new Failure(`timed out after ${TIMEOUT_MS / 1000} s waiting for ${what}${seen ? `; found: ${seen}` : ''}`);
    }
  }

  /** Waits for a page of the console (data-page) to have loaded its data. */
  async pageReady(name) {
    await this.until(`the ${name} page to load`,
      (n) => {
        const p = document.querySelector('[data-testid="page"]');
        return p && p.dataset.page === n && p.dataset.state === 'ready';
      }, name,
      () => {
        const p = document.querySelector('[data-testid="page"]');
        const b = document.querySelector('[data-testid="error-banner"]');
        const text = document.querySelector('[data-testid="error-banner-text"]');
        return `page ${p ? `${p.dataset.page} (${p.dataset.state})` : 'none'}`
          + (b && !b.hidden ? `, error banner "${text.textContent.trim()}"` : '');
      });
  }

  /** Waits for a form's result (data-state set to pending on submit) to be ok; fails on error. */
  async result(id, what) {
    await this.until(`${what} to finish`,
      (i) => {
        const el = document.querySelector(`[data-testid="${i}"]`);
        return el && (el.dataset.state === 'ok' || el.dataset.state === 'error');
      }, id,
      (i) => {
        const el = document.querySelector(`[data-testid="${i}"]`);
        return el ? `state ${el.dataset.state}, "${el.textContent.trim()}"` : 'no such element';
      });
    const el = this.page.locator(tid(id));
    if (await el.getAttribute('data-state') === 'error') {
      throw new Failure(`${what} failed; the page says: ${(await el.textContent()).trim()}`);
    }
  }

  async shot(name, locator) {
    const file = path.join(SHOTS, name);
    if (locator) await locator.screenshot({ path: file });
    else await this.page.screenshot({ path: file, fullPage: true });
    console.log(`screenshot ${file}`);
  }
}

/** In the page: the topics total shown, without thousands separators. */
const shownTotal = () => {
  const el = document.querySelector('[data-testid="topics-total"]');
  return el ? el.textContent.trim().replace(/[,\s]/g, '') : null;
};
/** In the page: is the topics total shown `want`? (self-contained, to be sent to the page) */
const totalIs = (want) => {
  const el = document.querySelector('[data-testid="topics-total"]');
  return !!el && el.textContent.trim().replace(/[,\s]/g, '') === want;
};

// ----------------------------------------------------------------- tests

async function topicTest(t, topic) {
  const { page } = t;
  await t.goto('#/');
  await t.until('the overview to list brokers, one of them marked controller',
    () => {
      const rows = [...document.querySelectorAll('[data-testid="broker-row"]')];
      return rows.length > 0 && rows.some((r) => {
        const c = r.querySelector('[data-testid="broker-controller"]');
        return c && c.checkVisibility();
      });
    }, null,
    () => {
      const table = document.querySelector('[data-testid="brokers-table"]');
      return table ? JSON.stringify(table.innerText) : 'no brokers table';
    });
  await t.shot('overview.png');

  await page.click(tid('nav-topics'));
  await t.pageReady('topics');
  await page.fill(tid('topic-create-name'), topic);
  await page.fill(tid('topic-create-partitions'), '3');
  await page.fill(tid('topic-create-rf'), '1');
  await page.click(tid('topic-create-submit'));
  await t.result('topic-create-result', `creating topic ${topic}`);
  await page.fill(tid('topics-search'), topic);
  await t.until(`topic ${topic} in the list after searching for it`,
    (name) => [...document.querySelectorAll('[data-testid="topic-row"]')]
      .some((r) => r.dataset.topicName === name && r.checkVisibility()),
    topic,
    () => [...document.querySelectorAll('[data-testid="topic-row"]')].map((r) => r.dataset.topicName).join(', ') || 'no rows');
  await t.shot('topics.png');

  await page.locator(`${tid('topic-row')}[data-topic-name="${topic}"] ${tid('topic-link')}`).click();
  await t.pageReady('topic');
  await t.until('the partitions table to show 3 partitions',
    (name) => document.querySelector('[data-testid="page"]').dataset.topic === name
      && document.querySelectorAll('[data-testid="partition-row"]').length === 3,
    topic,
    () => `${document.querySelectorAll('[data-testid="partition-row"]').length} partition rows`);
  await t.shot('topic.png');

  // Produce two messages to partition 0.
  const produce = async (key, value, headers) => {
    await page.selectOption(tid('produce-partition'), '0');
    await page.fill(tid('produce-key'), key);
    await page.fill(tid('produce-value'), value);
    await page.fill(tid('produce-headers'), headers);
    await page.click(tid('produce-submit'));
    await t.result('produce-result', `producing the message with key ${key}`);
    const result = page.locator(tid('produce-result'));
    const partition = await result.getAttribute('data-partition');
    if (partition !== '0') throw new Failure(`message ${key} went to partition ${partition}, not 0`);
    return Number(await result.getAttribute('data-offset'));
  };
  const first = await produce('k1', '{"hello":"console","n":1}', 'source=console');
  const second = await produce('k2', 'plain text', '');
  if (second !== first + 1) throw new Failure(`the second message got offset ${second}, not ${first + 1}`);

  // Browse partition 0 from offset 0.
  await page.selectOption(tid('messages-partition'), '0');
  await page.selectOption(tid('messages-start'), 'offset');
  await page.fill(tid('messages-offset'), '0');
  await page.click(tid('messages-load'));
  await t.result('messages-status', 'loading messages');
  const rowsSeen = () => [...document.querySelectorAll('[data-testid="message-row"]')]
    .map((r) => JSON.stringify(r.innerText)).join('; ') || 'no message rows';
  await t.until('both messages (keys k1 and k2) in the message browser',
    () => {
      const keys = [...document.querySelectorAll('[data-testid="message-row"] [data-testid="message-key"]')]
        .map((k) => k.textContent);
      return keys.includes('k1') && keys.includes('k2');
    }, null, rowsSeen);
  await t.until('the JSON value pretty-printed in a <pre>',
    () => [...document.querySelectorAll('[data-testid="message-row"] pre')]
      .some((p) => p.textContent.includes('"hello": "console"')),
    null, rowsSeen);
  await t.until('the header source=console shown with message k1',
    () => [...document.querySelectorAll('[data-testid="message-row"]')].some((r) => {
      const k = r.querySelector('[data-testid="message-key"]');
      const hd = r.querySelector('[data-testid="message-headers"]');
      return k && k.textContent === 'k1' && hd && hd.textContent.includes('source=console');
    }), null, rowsSeen);
  await page.fill(tid('messages-search'), 'plain');
  await t.until('only the "plain text" message visible after filtering by "plain"',
    () => {
      const visible = [...document.querySelectorAll('[data-testid="message-row"]')].filter((r) => r.checkVisibility());
      return visible.length === 1 && visible[0].querySelector('[data-testid="message-key"]').textContent === 'k2';
    }, null,
    () => [...document.querySelectorAll('[data-testid="message-row"]')].filter((r) => r.checkVisibility())
      .map((r) => JSON.stringify(r.innerText)).join('; ') || 'no visible rows');
  await t.shot('messages.png', page.locator(tid('messages')));

  // Set retention.ms in the configs editor.
  const row = `${tid('config-row')}[data-config-name="retention.ms"]`;
  if (await page.locator(row).count() > 0) {
    await page.locator(`${row} ${tid('config-edit')}`).click();
    await page.fill(`${row} ${tid('config-edit-input')}`, '3600000');
    await page.locator(`${row} ${tid('config-save')}`).click();
  } else {
    await page.fill(tid('config-set-name'), 'retention.ms');
    await page.fill(tid('config-set-value'), '3600000');
    await page.click(tid('config-set-submit'));
  }
  await t.result('config-result', 'setting retention.ms');
  await t.until('the configs table to show retention.ms = 3600000 from a DYNAMIC source',
    () => {
      const r = document.querySelector('[data-testid="config-row"][data-config-name="retention.ms"]');
      const v = r && r.querySelector('[data-testid="config-value"]');
      const s = r && r.querySelector('[data-testid="config-source"]');
      return v && s && v.textContent.trim() === '3600000' && s.textContent.includes('DYNAMIC');
    }, null,
    () => {
      const r = document.querySelector('[data-testid="config-row"][data-config-name="retention.ms"]');
      return r ? JSON.stringify(r.innerText) : 'no retention.ms row';
    });
  await page.locator(row).scrollIntoViewIfNeeded();
  await t.shot('configs.png', page.locator(tid('configs')));
}

async function lagTest(t, group, expected) {
  if (!/^-?\d+$/.test(expected)) throw new Failure(`EXPECTED must be a whole number, not "${expected}"`);
  await t.goto(`#/groups/${encodeURIComponent(group)}`);
  await t.until(`the total lag of group ${group} to show ${expected}`,
    (want) => {
      const el = document.querySelector('[data-testid="group-lag"]');
      return el && el.textContent.trim().replace(/[,\s]/g, '') === want;
    }, expected,
    () => {
      const el = document.querySelector('[data-testid="group-lag"]');
      const b = document.querySelector('[data-testid="error-banner"]');
      const text = document.querySelector('[data-testid="error-banner-text"]');
      return `lag "${el ? el.textContent.trim() : 'none'}"` + (b && !b.hidden ? `, error banner "${text.textContent.trim()}"` : '');
    });
  await t.shot(`group-lag-${expected}.png`);
}

async function resetTest(t, group, topic) {
  const { page } = t;
  await t.goto(`#/groups/${encodeURIComponent(group)}`);
  await t.pageReady('group');
  await page.fill(tid('reset-topic'), topic);
  await page.selectOption(tid('reset-to'), 'earliest');
  await page.click(tid('reset-preview'));
  await t.result('reset-result', `previewing a reset of ${topic} to earliest`);
  const preview = await page.evaluate(() => [...document.querySelectorAll('[data-testid="reset-preview-row"]')]
    .map((r) => ({ topic: r.dataset.topic, partition: r.dataset.partition, new: r.querySelector('[data-testid="reset-new"]').textContent.trim() })));
  if (!preview.length) throw new Failure('the preview shows no partitions');
  const wrong = preview.filter((r) => r.topic !== topic || r.new !== '0');
  if (wrong.length) throw new Failure(`the preview should move every partition of ${topic} to 0; found ${JSON.stringify(wrong)}`);
  if (await page.locator(tid('reset-changes')).getAttribute('data-applied') !== 'false') {
    throw new Failure('the preview says it applied the reset');
  }
  await t.shot('reset-preview.png', page.locator(tid('reset')));

  await page.click(tid('reset-apply'));
  await t.result('reset-result', `resetting ${topic} to earliest`);
  if (await page.locator(tid('reset-changes')).getAttribute('data-applied') !== 'true') {
    throw new Failure('Apply answered, but not applied');
  }
  await t.until(`the offsets table to show committed 0 for every partition of ${topic}`,
    (name) => {
      const rows = [...document.querySelectorAll('[data-testid="offset-row"]')].filter((r) => r.dataset.topic === name);
      return rows.length > 0 && rows.every((r) => r.querySelector('[data-testid="offset-committed"]').textContent.trim() === '0');
    }, topic,
    (name) => [...document.querySelectorAll('[data-testid="offset-row"]')].filter((r) => r.dataset.topic === name)
      .map((r) => `${r.dataset.partition}: ${r.querySelector('[data-testid="offset-committed"]').textContent.trim()}`).join(', ') || 'no rows');
  await t.shot('reset.png');
}

async function manyTest(t, total, search, matches) {
  const { page } = t;
  await t.goto('#/topics');
  await t.until(`the topics total to show ${total}`, totalIs, total, shownTotal);
  const firstName = () => {
    const r = document.querySelector('[data-testid="topic-row"]');
    return r ? r.dataset.topicName : null;
  };
  await t.until('a page of 50 topics', () => document.querySelectorAll('[data-testid="topic-row"]').length === 50, null,
    () => `${document.querySelectorAll('[data-testid="topic-row"]').length} rows`);
  const first = await page.evaluate(firstName);
  await page.click(tid('topics-next'));
  await t.until('"Next" to show the following page', (was) => {
    const r = document.querySelector('[data-testid="topic-row"]');
    return r && r.dataset.topicName !== was;
  }, first, () => `first row still ${JSON.stringify(document.querySelector('[data-testid="topic-row"]')?.dataset.topicName)}`);
  const second = await page.evaluate(firstName);
  if (!(second > first)) throw new Failure(`the next page starts at ${second}, which does not sort after ${first}`);

  await page.fill(tid('topics-search'), search);
  await t.until(`the total to show ${matches} topics matching "${search}"`,
    totalIs, matches, shownTotal);
  const want = Math.min(Number(matches), 50);
  await t.until(`${want} rows, each matching "${search}"`, ([n, s]) => {
    const names = [...document.querySelectorAll('[data-testid="topic-row"]')].map((r) => r.dataset.topicName);
    return names.length === n && names.every((x) => x.toLowerCase().includes(s.toLowerCase()));
  }, [want, search], () => [...document.querySelectorAll('[data-testid="topic-row"]')].map((r) => r.dataset.topicName).join(', '));
  await t.shot('many.png');
}

/** Fails unless the page fits its width (no page-wide sideways scroll) with the header navigation on screen. */
async function fits(t, what) {
  const { page } = t;
  // Let layout and the charts' resize settle: two frames.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const m = await page.evaluate(() => {
    const nav = document.querySelector('[data-testid="nav"]');
    const links = [...nav.querySelectorAll('a')].map((a) => {
      const b = a.getBoundingClientRect();
      return { text: a.textContent, visible: a.checkVisibility(), left: b.left, right: b.right };
    });
    return {
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
      navVisible: nav.checkVisibility(),
      links,
      wide: [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-wrap'))
        .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}.${e.className} (${Math.round(e.getBoundingClientRect().right)} px)`),
    };
  });
  if (m.scrollWidth > m.innerWidth + 1) {
    throw new Failure(`${what}: the page scrolls sideways: scrollWidth ${m.scrollWidth} > width ${m.innerWidth}; too wide: ${m.wide.join(', ')}`);
  }
  if (!m.navVisible) throw new Failure(`${what}: the header navigation is not visible`);
  const off = m.links.filter((l) => !l.visible || l.left < 0 || l.right > m.innerWidth + 1);
  if (off.length) throw new Failure(`${what}: navigation links not on screen: ${JSON.stringify(off)}`);
}

async function phoneTest(t, topic) {
  const { page } = t;
  await t.goto('#/');
  await t.pageReady('overview');
  await t.until('the brokers table', () => document.querySelectorAll('[data-testid="broker-row"]').length > 0, null, () => 'no broker rows');
  await fits(t, 'overview');
  await t.shot('phone-overview.png');

  await page.click(tid('nav-topics'));
  await t.pageReady('topics');
  await fits(t, 'topics');
  await t.shot('phone-topics.png');

  await t.goto(`#/topics/${encodeURIComponent(topic)}`);
  await t.pageReady('topic');
  await t.until('the partitions table', () => document.querySelectorAll('[data-testid="partition-row"]').length > 0, null, () => 'no partition rows');
  await page.click(tid('messages-load'));
  await t.result('messages-status', 'loading messages');
  await fits(t, 'topic');
  await t.shot('phone-topic.png');
}

async function securityTest(t, user, password, topic) {
  const { page } = t;
  await t.goto('#/');
  await page.click(tid('nav-security'));
  await t.pageReady('security');

  // A SCRAM user.
  await page.fill(tid('user-create-name'), user);
  await page.fill(tid('user-create-password'), password);
  await page.selectOption(tid('user-create-mechanism'), 'SCRAM-SHA-256');
  await page.fill(tid('user-create-iterations'), '8192');
  await page.click(tid('user-create-submit'));
  await t.result('user-create-result', `creating user ${user}`);
  if (await page.inputValue(tid('user-create-password')) !== '') {
    throw new Failure('the password field still holds the password after the user was saved');
  }
  const userRow = `${tid('user-row')}${attr('data-user', user)}${attr('data-mechanism', 'SCRAM-SHA-256')}`;
  await t.until(`user ${user} with SCRAM-SHA-256, 8192 iterations, in the users table`,
    (sel) => {
      const r = document.querySelector(sel);
      return !!r && r.dataset.iterations === '8192' && r.checkVisibility();
    }, userRow,
    () => [...document.querySelectorAll('[data-testid="user-row"]')]
      .map((r) => `${r.dataset.user} ${r.dataset.mechanism} ${r.dataset.iterations}`).join(', ') || 'no user rows');

  // ACLs: the form, then the table.
  const aclRow = (a) => tid('acl-row') + attr('data-principal', a.principal) + attr('data-resource-type', a.resource_type)
    + attr('data-resource-name', a.resource_name) + attr('data-pattern-type', a.pattern_type)
    + attr('data-operation', a.operation) + attr('data-permission', a.permission) + attr('data-host', a.host);
  const aclsSeen = () => [...document.querySelectorAll('[data-testid="acl-row"]')]
    .map((r) => JSON.stringify(r.innerText.replace(/\s+/g, ' ').trim())).join('; ') || 'no ACL rows';
  const describe = (a) => `${a.permission} ${a.principal} ${a.operation} on ${a.resource_type} ${a.resource_name} (${a.pattern_type})`;
  const addAcl = async (a) => {
    await page.fill(tid('acl-create-principal'), a.principal);
    await page.selectOption(tid('acl-create-resource-type'), a.resource_type);
    await page.fill(tid('acl-create-resource-name'), a.resource_name);
    await page.selectOption(tid('acl-create-pattern-type'), a.pattern_type);
    await page.selectOption(tid('acl-create-operation'), a.operation);
    await page.selectOption(tid('acl-create-permission'), a.permission);
    await page.fill(tid('acl-create-host'), a.host);
    await page.click(tid('acl-create-submit'));
    await t.result('acl-create-result', `adding the ACL ${describe(a)}`);
    await t.until(`the ACL ${describe(a)} in the ACL table`,
      (sel) => { const r = document.querySelector(sel); return !!r && r.checkVisibility(); }, aclRow(a), aclsSeen);
  };
  const read = {
    principal: `User:${user}`, resource_type: 'TOPIC', resource_name: topic, pattern_type: 'LITERAL',
    operation: 'READ', permission: 'ALLOW', host: '*',
  };
  const group = { ...read, resource_type: 'GROUP', resource_name: 'console-group', pattern_type: 'PREFIXED' };
  await addAcl(read);
  await addAcl(group);

  // The filter box: only rows matching it.
  await page.fill(tid('acls-filter'), 'console-group');
  await t.until('only ACLs mentioning console-group shown after filtering by it',
    (sel) => {
      const rows = [...document.querySelectorAll('[data-testid="acl-row"]')];
      return rows.length > 0 && !!document.querySelector(sel) && rows.every((r) => r.innerText.includes('console-group'));
    }, aclRow(group), aclsSeen);
  await page.fill(tid('acls-filter'), '');
  await t.until('every ACL shown again once the filter is cleared',
    (sel) => !!document.querySelector(sel), aclRow(read), aclsSeen);

  // Delete the group ACL: a first click asks, a second deletes.
  const del = page.locator(`${aclRow(group)} ${tid('acl-delete')}`);
  await del.click();
  await t.until('the delete button of the group ACL to ask for confirmation',
    (sel) => {
      const b = document.querySelector(sel);
      return !!b && b.dataset.armed === 'true';
    }, `${aclRow(group)} ${tid('acl-delete')}`,
    (sel) => {
      const b = document.querySelector(sel);
      return b ? `button "${b.textContent}", armed ${b.dataset.armed}` : 'no such button';
    });
  await del.click();
  await t.result('acls-result', `deleting the ACL ${describe(group)}`);
  await t.until(`the ACL ${describe(group)} gone from the table, ${describe(read)} still there`,
    ([gone, kept]) => !document.querySelector(gone) && !!document.querySelector(kept),
    [aclRow(group), aclRow(read)], aclsSeen);
  await t.shot('security.png');

  // The same page on a phone.
  const phone = await t.phone();
  await phone.goto('#/security');
  await phone.pageReady('security');
  await phone.until(`user ${user} and the ACL ${describe(read)} on the phone`,
    ([u, a]) => !!document.querySelector(u) && !!document.querySelector(a),
    [userRow, aclRow(read)], aclsSeen);
  await fits(phone, 'security');
  await phone.shot('phone-security.png');
}

const COMMANDS = {
  topic: { args: ['URL', 'TOPIC'], run: (t, topic) => topicTest(t, topic) },
  lag: { args: ['URL', 'GROUP', 'EXPECTED'], run: (t, group, expected) => lagTest(t, group, expected) },
  reset: { args: ['URL', 'GROUP', 'TOPIC'], run: (t, group, topic) => resetTest(t, group, topic) },
  many: { args: ['URL', 'TOTAL', 'SEARCH', 'MATCHES'], run: (t, total, search, matches) => manyTest(t, total, search, matches) },
  phone: { args: ['URL', 'TOPIC'], phone: true, run: (t, topic) => phoneTest(t, topic) },
  security: { args: ['URL', 'USER', 'PASSWORD', 'TOPIC'], run: (t, user, password, topic) => securityTest(t, user, password, topic) },
};

function usage() {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name} ${c.args.join(' ')}`);
  process.stderr.write(`usage: console.cjs SUBCOMMAND ARGS...\n${lines.join('\n')}\n`);
  process.exit(2);
}

async function main() {
  const [name, ...args] = process.argv.slice(2);
  const command = COMMANDS[name];
  if (!command || args.length !== command.args.length) usage();
  const [url, ...rest] = args;
  try {
    new URL(url); // eslint-disable-line no-new
  } catch (_) {
    process.stderr.write(`console ${name}: "${url}" is not a URL\n`);
    process.exit(2);
  }
  fs.mkdirSync(SHOTS, { recursive: true });

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const pageErrors = [];
  const consoleErrors = [];
  /** The page the test works in now: the last one opened (the one a failure screenshot shows). */
  let page = null;
  const open = async (phone) => {
    const context = await browser.newContext(phone ? PHONE : DESKTOP);
    page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    page.setDefaultNavigationTimeout(TIMEOUT_MS);
    page.on('pageerror', (e) => pageErrors.push(e.stack || e.message));
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    return page;
  };
  const session = new Session(await open(command.phone), url, open);

  let status = 0;
  try {
    await command.run(session, ...rest);
    if (pageErrors.length) throw new Failure(`the page threw: ${pageErrors.join('\n')}`);
    console.log(`console ${name}: ok`);
  } catch (e) {
    status = 1;
    const what = e instanceof Failure ? e.message : (e.stack || String(e));
    process.stderr.write(`console ${name} failed: ${what}\n`);
    process.stderr.write(`  at ${page.url()}\n`);
    try {
      if (await page.locator(tid('error-banner')).isVisible()) {
        process.stderr.write(`  error banner: ${(await page.locator(tid('error-banner-text')).textContent()).trim()}\n`);
      }
    } catch (_) { /* no page to read: the failure above says why */ }
    if (pageErrors.length) process.stderr.write(`  page errors:\n    ${pageErrors.join('\n    ')}\n`);
    if (consoleErrors.length) process.stderr.write(`  browser console errors:\n    ${consoleErrors.slice(-10).join('\n    ')}\n`);
    const file = path.join(SHOTS, `failure-${name}.png`);
    try {
      await page.screenshot({ path: file, fullPage: true });
      process.stderr.write(`  screenshot ${file}\n`);
    } catch (err) {
      process.stderr.write(`  no failure screenshot: ${err.message}\n`);
    }
  } finally {
    await browser.close();
  }
  process.exit(status);
}

main().catch((e) => {
  process.stderr.write(`console tests: ${e.stack || e}\n`);
  process.exit(1);
});
