// Drives Rill's web console in headless Chromium (Debian's, through
// playwright-core) as a person would: clicks, types, reads what is shown.
// Run through ./run, which installs playwright-core and sets NODE_PATH.
//
//   run topic URL TOPIC                    create, browse, produce, configs
//   run lag URL GROUP EXPECTED             the group page shows this total lag
//   run reset URL GROUP TOPIC              reset TOPIC to earliest: preview, apply
//   run many URL TOTAL SEARCH MATCHES      paging and search of the topics list
//   run phone URL TOPIC                    390 px wide: no page-wide scroll
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

/** A page and the helpers each test uses. */
class Session {
  constructor(page, base) {
    this.page = page;
    this.base = base;
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

async function phoneTest(t, topic) {
  const { page } = t;
  const fits = async (what) => {
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
  };

  await t.goto('#/');
  await t.pageReady('overview');
  await t.until('the brokers table', () => document.querySelectorAll('[data-testid="broker-row"]').length > 0, null, () => 'no broker rows');
  await fits('overview');
  await t.shot('phone-overview.png');

  await page.click(tid('nav-topics'));
  await t.pageReady('topics');
  await fits('topics');
  await t.shot('phone-topics.png');

  await t.goto(`#/topics/${encodeURIComponent(topic)}`);
  await t.pageReady('topic');
  await t.until('the partitions table', () => document.querySelectorAll('[data-testid="partition-row"]').length > 0, null, () => 'no partition rows');
  await page.click(tid('messages-load'));
  await t.result('messages-status', 'loading messages');
  await fits('topic');
  await t.shot('phone-topic.png');
}

const COMMANDS = {
  topic: { args: ['URL', 'TOPIC'], run: (t, topic) => topicTest(t, topic) },
  lag: { args: ['URL', 'GROUP', 'EXPECTED'], run: (t, group, expected) => lagTest(t, group, expected) },
  reset: { args: ['URL', 'GROUP', 'TOPIC'], run: (t, group, topic) => resetTest(t, group, topic) },
  many: { args: ['URL', 'TOTAL', 'SEARCH', 'MATCHES'], run: (t, total, search, matches) => manyTest(t, total, search, matches) },
  phone: { args: ['URL', 'TOPIC'], phone: true, run: (t, topic) => phoneTest(t, topic) },
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
  const context = await browser.newContext(command.phone
    ? { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }
    : { viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.setDefaultNavigationTimeout(TIMEOUT_MS);
  const pageErrors = [];
  const consoleErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.stack || e.message));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

  let status = 0;
  try {
    await command.run(new Session(page, url), ...rest);
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
