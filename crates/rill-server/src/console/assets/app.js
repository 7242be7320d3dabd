// Rill's web console: one page, hash routes, the JSON API of
// docs/console-api.md. Plain ES2020, no dependencies, no build step.
//
// Every string from the API reaches the DOM through textContent (the `h`
// helper below); nothing is ever parsed as HTML.
'use strict';

(() => {
  /** How often a page reloads its data. */
  const REFRESH_INTERVAL_MS = 5000;
  /** Rows a page of topics or groups shows. */
  const PAGE_ROWS = 50;
  /** Quiet time after the last keystroke before a search is sent. */
  const SEARCH_DEBOUNCE_MS = 300;
  /** The API's own bound on messages a browse returns. */
  const MESSAGES_LIMIT_MAX = 500;
  /** Height of a chart's drawing, in CSS pixels. */
  const CHART_HEIGHT_PX = 200;
  /** A chart spans at least this much time, so a young history is not stretched. */
  const CHART_SPAN_MIN_MS = 5 * 60 * 1000;
  /** How long a delete button, clicked once, waits for the confirming click. */
  const CONFIRM_MS = 4000;

  // ---------------------------------------------------------------- DOM

  const SVG_NS = 'http://www.w3.org/2000/svg';
  /** Attributes set as properties, after the children (a select's value needs its options). */
  const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'multiple']);

  function append(el, children) {
    for (const child of children) {
      if (child == null || child === false) continue;
      if (Array.isArray(child)) append(el, child);
      else if (child instanceof Node) el.appendChild(child);
      else el.appendChild(document.createTextNode(String(child)));
    }
  }

  function setAttrs(el, attrs) {
    const props = [];
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null) continue;
      if (k === 'class') el.setAttribute('class', v);
      else if (k === 'testid') el.dataset.testid = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (PROPS.has(k)) props.push([k, v]);
      else if (v === false) continue;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    return props;
  }

  /** An element with attributes and children; strings become text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    const props = setAttrs(el, attrs);
    append(el, children);
    for (const [k, v] of props) el[k] = v;
    return el;
  }

  /** An SVG element. */
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function debounce(fn, ms) {
    let timer = null;
    const run = (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
    run.cancel = () => clearTimeout(timer);
    return run;
  }

  const enc = encodeURIComponent;
  const topicHref = (name) => '#/topics/' + enc(name);
  const groupHref = (id) => '#/groups/' + enc(id);

  // ---------------------------------------------------------- formatting

  const DASH = '—';
  const isNum = (n) => typeof n === 'number' && Number.isFinite(n);

  function fmtInt(n) {
    return isNum(n) ? n.toLocaleString('en-US', { maximumFractionDigits: 0 }) : DASH;
  }

  /** A count per second: more decimals the smaller it is. */
  function fmtNum(n) {
    if (!isNum(n)) return DASH;
    const digits = Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2;
    return n.toLocaleString('en-US', { maximumFractionDigits: digits });
  }

  const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  function fmtBytes(n) {
    if (!isNum(n)) return DASH;
    let x = n;
    let i = 0;
    while (Math.abs(x) >= 1024 && i < BYTE_UNITS.length - 1) {
      x /= 1024;
      i += 1;
    }
    if (i === 0) return `${Math.round(x)} B`;
    const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2;
    return `${Number(x.toFixed(digits))} ${BYTE_UNITS[i]}`;
  }
  const fmtRate = (n) => (isNum(n) ? `${fmtBytes(n)}/s` : DASH);
  const fmtIso = (ms) => (isNum(ms) && ms >= 0 ? new Date(ms).toISOString() : DASH);

  function fmtClock(ms, withSeconds) {
    const d = new Date(ms);
    const pad = (x) => String(x).padStart(2, '0');
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return withSeconds ? `${hm}:${pad(d.getSeconds())}` : hm;
  }

  const fmtList = (xs) => (Array.isArray(xs) && xs.length ? xs.join(', ') : DASH);

  /** The UTF-8 length of a string, to tell whether the API cut a payload. */
  const utf8Bytes = (text) => new TextEncoder().encode(text).length;

  function badge(text, kind, testid) {
    return h('span', { class: `badge ${kind || ''}`.trim(), testid }, text);
  }

  function stateKind(state) {
    switch (state) {
      case 'Stable': return 'ok';
      case 'Empty': return 'muted';
      case 'Dead': return 'bad';
      case 'PreparingRebalance':
      case 'CompletingRebalance':
      case 'AssigningPartitions':
      case 'Reconciling': return 'warn';
      default: return 'muted';
    }
  }

  // ----------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, detail) {
      super(status ? `${status} ${detail}` : detail);
      this.status = status;
      this.detail = detail;
    }
  }

  /** Calls the API (paths relative to the page, so a proxy prefix works). */
  async function api(method, path, body) {
    const init = { method, cache: 'no-store', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(`api/${path}`, init);
    } catch (e) {
      throw new ApiError(0, `cannot reach the broker (${e.message})`);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        if (res.ok) throw new ApiError(res.status, 'the answer is not JSON');
      }
    }
    if (!res.ok) {
      const detail = data && typeof data.error === 'string'
        ? data.error
        : (text.trim().slice(0, 300) || res.statusText || 'request failed');
      throw new ApiError(res.status, detail);
    }
    return data;
  }

  // -------------------------------------------------------------- banner

  /** The error banner: what failed last, until it is dismissed or fixed. */
  const banner = {
    source: null,
    show(text, source) {
      this.source = source;
      document.getElementById('banner-text').textContent = text;
      document.getElementById('banner').hidden = false;
    },
    /** Hides it if it shows an error of `source` (any error without one). */
    clear(source) {
      if (source !== undefined && this.source !== source) return;
      this.source = null;
      document.getElementById('banner').hidden = true;
    },
  };

  /** Shows an action's outcome in its form and, when it failed, in the banner. */
  function report(el, state, text, extra) {
    el.dataset.state = state;
    el.className = `result ${state}`;
    el.replaceChildren();
    append(el, [text, extra]);
    if (state === 'error') banner.show(text, 'action');
    else if (state === 'ok') banner.clear('action');
  }

  // --------------------------------------------------------------- pages

  /**
   * Loads a page's data now and on every tick. A load the user asked for
   * (`auto` false) always goes; a tick is skipped while one is in flight.
   * Only the newest load's answer is rendered.
   */
  function poller(root, label, load, render, onError) {
    let alive = true;
    let seq = 0;
    let pending = 0;
    async function refresh(auto) {
      if (!alive || (auto && pending > 0)) return;
      const id = ++seq;
      pending += 1;
      try {
        const data = await load();
        if (!alive || id !== seq) return;
        render(data);
        root.dataset.state = 'ready';
        banner.clear('refresh');
      } catch (e) {
        if (!alive || id !== seq) return;
        if (onError) onError(e);
        root.dataset.state = 'error';
        banner.show(`${label}: ${e.message}`, 'refresh');
      } finally {
        pending -= 1;
      }
    }
    return {
      refresh,
      destroy() { alive = false; },
    };
  }

  function pageRoot(name) {
    return h('section', { class: 'page', testid: 'page', 'data-page': name, 'data-state': 'loading' });
  }

  function card(title, testid, ...children) {
    return h('section', { class: 'card', testid }, title ? h('h2', null, title) : null, ...children);
  }

  function tableWrap(table) {
    return h('div', { class: 'table-wrap' }, table);
  }

  function thead(cols) {
    return h('thead', null, h('tr', null, cols.map((c) => (
      typeof c === 'string' ? h('th', null, c) : h('th', { class: c.cls }, c.text)
    ))));
  }

  function emptyRow(cols, text, testid) {
    return h('tr', { class: 'empty', testid }, h('td', { colspan: cols }, text));
  }

  function field(label, input, opts = {}) {
    return h('label', { class: `field ${opts.wide ? 'wide' : ''}`.trim(), hidden: opts.hidden || false },
      h('span', { class: 'field-label' }, label), input);
  }

  function stat(label, valueEl, kind) {
    return h('div', { class: `stat ${kind || ''}`.trim() },
      h('div', { class: 'stat-label' }, label), valueEl);
  }

  function statValue(testid) {
    return h('div', { class: 'stat-value', testid }, DASH);
  }

  /** Lines of `key=value` (blank lines skipped; no `=` means an empty value). */
  function parsePairs(text) {
    const out = {};
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line) continue;
      const eq = line.indexOf('=');
      const key = (eq < 0 ? line : line.slice(0, eq)).trim();
      if (!key) throw new Error(`"${line}": a line needs a key before "="`);
      out[key] = eq < 0 ? '' : line.slice(eq + 1).trim();
    }
    return out;
  }

  /** "0, 1, 4-7" as [0, 1, 4, 5, 6, 7]. */
  function parsePartitions(text) {
    const out = new Set();
    for (const part of text.split(',').map((x) => x.trim()).filter(Boolean)) {
      const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(part);
      if (!m) throw new Error(`partitions: "${part}" is not a number or a range like 2-5`);
      const lo = Number(m[1]);
      const hi = m[2] === undefined ? lo : Number(m[2]);
      if (hi < lo || hi - lo > 100000) throw new Error(`partitions: "${part}" is not a range`);
      for (let p = lo; p <= hi; p += 1) out.add(p);
    }
    return [...out].sort((a, b) => a - b);
  }

  function intOrNull(text, what, min) {
    const t = text.trim();
    if (t === '') return null;
    if (!/^-?\d+$/.test(t)) throw new Error(`${what}: "${t}" is not a whole number`);
    const n = Number(t);
    if (min !== undefined && n < min) throw new Error(`${what}: must be at least ${min}, not ${n}`);
    return n;
  }

  /** A datetime-local input's value (local time) as ms since the epoch. */
  function localToMs(value, what) {
    if (!value) throw new Error(`${what}: choose a date and time`);
    const ms = new Date(value).getTime();
    if (!Number.isFinite(ms)) throw new Error(`${what}: "${value}" is not a date and time`);
    return ms;
  }

  /** Keeps a <select>'s options equal to `options` ([value, label]), its choice kept. */
  function setOptions(select, options) {
    const want = options.map(([v, l]) => `${v}\u0000${l}`).join('\u0001');
    if (select.dataset.options === want) return;
    const keep = select.value;
    select.replaceChildren(...options.map(([v, l]) => h('option', { value: v }, l)));
    select.dataset.options = want;
    if (options.some(([v]) => v === keep)) select.value = keep;
  }

  function setDatalist(list, values) {
    const want = values.join('\u0001');
    if (list.dataset.options === want) return;
    list.replaceChildren(...values.map((v) => h('option', { value: v })));
    list.dataset.options = want;
  }

  let datalistSeq = 0;
  const newListId = () => `list-${++datalistSeq}`;

  /**
   * Delete buttons that ask twice, in the page rather than with
   * window.confirm: a first click arms a row's button ("Confirm delete")
   * for CONFIRM_MS, a second click deletes. Which button is armed or busy
   * is kept here, by row key, so a refresh that redraws the rows keeps it;
   * `redraw` redraws them when that changes.
   */
  function confirmDeletes(redraw) {
    let armed = null;
    let timer = null;
    const busy = new Set();
    const disarm = () => {
      clearTimeout(timer);
      armed = null;
    };
    function look(btn, state) {
      btn.dataset.armed = state === 'armed' ? 'true' : 'false';
      btn.className = `btn small danger ${state === 'armed' ? 'armed' : ''}`.trim();
      btn.disabled = state === 'busy';
      btn.textContent = state === 'busy' ? 'Deleting…' : state === 'armed' ? 'Confirm delete' : 'Delete';
    }
    return {
      /** The button of row `key`; `act` deletes it (and reports how that went). */
      button(key, testid, title, act) {
        const btn = h('button', { type: 'button', testid, title });
        look(btn, busy.has(key) ? 'busy' : armed === key ? 'armed' : 'idle');
        btn.addEventListener('click', async () => {
          if (busy.has(key)) return;
          if (armed !== key) {
            const was = armed;
            disarm();
            armed = key;
            timer = setTimeout(() => { armed = null; redraw(); }, CONFIRM_MS);
            // Changed in place, so that a keyboard user's focus stays on it.
            if (was === null) look(btn, 'armed'); else redraw();
            return;
          }
          disarm();
          busy.add(key);
          look(btn, 'busy');
          try {
            await act();
          } finally {
            busy.delete(key);
            redraw();
          }
        });
        return btn;
      },
      destroy: disarm,
    };
  }

  // -------------------------------------------------------------- charts

  /** The smallest of 1, 2, 2.5, 5 x 10^k at or above x. */
  function niceCeil(x) {
    if (!(x > 0)) return 1;
    const e = 10 ** Math.floor(Math.log10(x));
    const f = x / e;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * e;
  }

  /** Gridline values from 0 up to at least `max`; for bytes, steps in whole KiB/MiB/... */
  function yTicks(max, bytes, integer) {
    const target = 4;
    let unit = 1;
    if (bytes) while (max / unit >= 1024) unit *= 1024;
    let step = niceCeil(max / unit / target) * unit;
    if (integer) step = Math.max(1, Math.ceil(step));
    const ticks = [0];
    while (ticks[ticks.length - 1] < max) ticks.push(ticks.length * step);
    return ticks;
  }

  const X_STEPS_MS = [1, 2, 5, 10, 15, 30, 60].map((m) => m * 60 * 1000);

  /**
   * A line chart of series over time, drawn as SVG at its container's
   * width (redrawn when that changes). `update(times, series)` with
   * series = [{name, values}]; values may hold nulls (gaps).
   */
  function lineChart(testid, title, fmt, opts = {}) {
    const legend = h('div', { class: 'legend' });
    const plot = h('div', { class: 'chart-plot', testid: `${testid}-plot` });
    const readout = h('div', { class: 'chart-readout', testid: `${testid}-readout` }, '\u00a0');
    const el = h('div', { class: 'card chart', testid },
      h('div', { class: 'chart-head' }, h('h3', null, title), legend), plot, readout);
    let data = { times: [], series: [] };
    let drawnWidth = 0;

    function draw() {
      const W = Math.max(240, Math.floor(plot.clientWidth || 600));
      const H = CHART_HEIGHT_PX;
      drawnWidth = W;
      const m = { l: 74, r: 12, t: 10, b: 24 };
      const iw = W - m.l - m.r;
      const ih = H - m.t - m.b;
      const svg = s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', 'aria-label': title });
      const { times, series } = data;
      legend.replaceChildren(...series.map((sr, i) => h('span', { class: 'legend-item' },
        h('span', { class: `swatch c${sr.color ?? i}` }), sr.name)));
      if (!times.length) {
        svg.append(s('text', { x: W / 2, y: H / 2, class: 'chart-empty', 'text-anchor': 'middle' }, 'No data yet'));
        plot.replaceChildren(svg);
        readout.textContent = '\u00a0';
        return;
      }
      const tMax = times[times.length - 1];
      const tMin = Math.min(times[0], tMax - CHART_SPAN_MIN_MS);
      let vMax = 0;
      for (const sr of series) for (const v of sr.values) if (isNum(v) && v > vMax) vMax = v;
      const ticks = yTicks(vMax > 0 ? vMax : 1, opts.bytes, opts.integer);
      const yTop = ticks[ticks.length - 1];
      const x = (t) => m.l + ((t - tMin) / (tMax - tMin)) * iw;
      const y = (v) => m.t + ih - (v / yTop) * ih;

      for (const v of ticks) {
        svg.append(s('line', { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: 'grid' }));
        svg.append(s('text', { x: m.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, fmt(v)));
      }
      const maxLabels = Math.max(2, Math.floor(iw / 70));
      const step = X_STEPS_MS.find((st) => (tMax - tMin) / st <= maxLabels) || X_STEPS_MS[X_STEPS_MS.length - 1];
      for (let t = Math.ceil(tMin / step) * step; t <= tMax; t += step) {
        svg.append(s('line', { x1: x(t), x2: x(t), y1: m.t + ih, y2: m.t + ih + 4, class: 'tick' }));
        svg.append(s('text', { x: x(t), y: H - 6, 'text-anchor': 'middle', class: 'axis' }, fmtClock(t)));
      }
      svg.append(s('line', { x1: m.l, x2: W - m.r, y1: m.t + ih, y2: m.t + ih, class: 'baseline' }));

      series.forEach((sr, i) => {
        const color = `c${sr.color ?? i}`;
        let d = '';
        let pen = false;
        let points = 0;
        sr.values.forEach((v, k) => {
          if (!isNum(v)) { pen = false; return; }
          d += `${pen ? 'L' : 'M'}${x(times[k]).toFixed(1)},${y(v).toFixed(1)}`;
          pen = true;
          points += 1;
        });
        if (points === 1) {
          const k = sr.values.findIndex(isNum);
          svg.append(s('circle', { cx: x(times[k]), cy: y(sr.values[k]), r: 3, class: `dot ${color}` }));
        } else if (d) {
          svg.append(s('path', { d, class: `line ${color}` }));
        }
      });

      // Hover: a cursor line and the values at the nearest point.
      const cursor = s('line', { x1: 0, x2: 0, y1: m.t, y2: m.t + ih, class: 'cursor', visibility: 'hidden' });
      const hit = s('rect', { x: m.l, y: m.t, width: iw, height: ih, class: 'hit' });
      svg.append(cursor, hit);
      const show = (k) => {
        cursor.setAttribute('x1', x(times[k]));
        cursor.setAttribute('x2', x(times[k]));
        cursor.setAttribute('visibility', 'visible');
        readout.textContent = `${fmtClock(times[k], true)}  ·  ${series.map((sr) => `${sr.name} ${fmt(sr.values[k])}`).join('  ·  ')}`;
      };
      const nearest = (px) => {
        const t = tMin + ((px - m.l) / iw) * (tMax - tMin);
        let lo = 0;
        let hi = times.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (times[mid] < t) lo = mid + 1; else hi = mid;
        }
        return lo > 0 && t - times[lo - 1] < times[lo] - t ? lo - 1 : lo;
      };
      hit.addEventListener('pointermove', (ev) => {
        const box = svg.getBoundingClientRect();
        show(nearest(ev.clientX - box.left));
      });
      hit.addEventListener('pointerleave', () => {
        cursor.setAttribute('visibility', 'hidden');
        showLatest();
      });
      plot.replaceChildren(svg);
      showLatest();

      function showLatest() {
        const k = times.length - 1;
        readout.textContent = `Latest (${fmtClock(times[k], true)})  ·  ${series.map((sr) => `${sr.name} ${fmt(sr.values[k])}`).join('  ·  ')}`;
      }
    }

    const observer = new ResizeObserver(() => {
      if (Math.abs(Math.floor(plot.clientWidth) - drawnWidth) > 1) draw();
    });
    observer.observe(plot);

    return {
      el,
      update(times, series) {
        data = { times, series };
        draw();
      },
      destroy() { observer.disconnect(); },
    };
  }

  function historyPoints(history) {
    const points = history && Array.isArray(history.points) ? history.points : [];
    return points.filter((p) => isNum(p.t));
  }

  // ------------------------------------------------------------ overview

  function overviewPage(main) {
    const root = pageRoot('overview');
    const summary = h('div', { class: 'stats' });
    const st = {
      cluster: statValue('cluster-id'),
      node: statValue('this-node'),
      controller: statValue('controller-id'),
      brokers: statValue('brokers-count'),
      topics: statValue('topics-count'),
    };
    const health = {
      total: statValue('partitions-total'),
      offline: statValue('partitions-offline'),
      under: statValue('partitions-under-replicated'),
      minIsr: statValue('partitions-under-min-isr'),
    };
    const healthStats = [
      stat('Partitions', health.total),
      stat('Offline', health.offline),
      stat('Under-replicated', health.under),
      stat('Under min ISR', health.minIsr),
    ];
    const summaryStats = [
      stat('Cluster', st.cluster, 'wide-text'),
      stat('This broker', st.node),
      stat('Controller', st.controller),
      stat('Brokers', st.brokers),
      stat('Topics', st.topics),
    ];
    summary.append(...summaryStats);
    const brokersBody = h('tbody');
    const bytesChart = lineChart('chart-bytes', 'Bytes per second', fmtRate, { bytes: true });
    const msgChart = lineChart('chart-messages', 'Messages in per second', fmtNum);

    root.append(
      h('h1', null, 'Overview'),
      summary,
      card('Partitions', 'partitions-health', h('div', { class: 'stats' }, healthStats)),
      card('Brokers', 'brokers',
        tableWrap(h('table', { testid: 'brokers-table' },
          thead(['Broker', 'Address', 'Status', 'Role']), brokersBody))),
      h('h2', { class: 'section-title' }, 'Throughput, last hour'),
      h('div', { class: 'charts' }, bytesChart.el, msgChart.el),
    );
    main.append(root);

    function setHealth(el, statEl, n, badKind) {
      el.textContent = fmtInt(n);
      statEl.className = `stat ${isNum(n) ? (n > 0 ? badKind : 'ok') : ''}`.trim();
    }

    function render(o) {
      st.cluster.textContent = o.cluster_id || DASH;
      st.node.textContent = isNum(o.node_id) ? String(o.node_id) : DASH;
      st.controller.textContent = isNum(o.controller) ? String(o.controller) : 'none';
      summaryStats[2].className = `stat ${isNum(o.controller) ? '' : 'bad'}`.trim();
      const brokers = Array.isArray(o.brokers) ? o.brokers : [];
      const fenced = brokers.filter((b) => b.fenced).length;
      st.brokers.textContent = fenced ? `${brokers.length - fenced} alive, ${fenced} fenced` : `${brokers.length} alive`;
      summaryStats[3].className = `stat ${fenced ? 'bad' : ''}`.trim();
      st.topics.replaceChildren(h('a', { href: '#/topics' }, fmtInt(o.topics)));
      document.getElementById('top-info').textContent = o.cluster_id
        ? `cluster ${o.cluster_id} · broker ${o.node_id ?? DASH}` : '';

      const p = o.partitions || {};
      health.total.textContent = fmtInt(p.total);
      setHealth(health.offline, healthStats[1], p.offline, 'bad');
      setHealth(health.under, healthStats[2], p.under_replicated, 'warn');
      setHealth(health.minIsr, healthStats[3], p.under_min_isr, 'bad');

      brokersBody.replaceChildren(...(brokers.length ? brokers.map((b) => h('tr', {
        testid: 'broker-row',
        'data-broker-id': b.id,
        'data-fenced': b.fenced ? 'true' : 'false',
        class: b.this ? 'this' : null,
      },
      h('td', { class: 'strong' }, String(b.id)),
      h('td', { class: 'mono' }, `${b.host}:${b.port}`),
      h('td', null, b.fenced ? badge('fenced', 'bad', 'broker-status') : badge('alive', 'ok', 'broker-status')),
      h('td', null,
        b.controller ? badge('controller', 'info', 'broker-controller') : null,
        b.this ? badge('this broker', 'muted', 'broker-this') : null,
        !b.controller && !b.this ? DASH : null),
      )) : [emptyRow(4, 'No brokers known')]));

      const points = historyPoints(o.history);
      const times = points.map((q) => q.t);
      bytesChart.update(times, [
        { name: 'in', values: points.map((q) => q.bytes_in) },
        { name: 'out', values: points.map((q) => q.bytes_out) },
      ]);
      msgChart.update(times, [{ name: 'in', values: points.map((q) => q.messages_in), color: 2 }]);
    }

    const poll = poller(root, 'Loading the overview failed', () => api('GET', 'overview'), render);
    return {
      refresh: poll.refresh,
      destroy() { poll.destroy(); bytesChart.destroy(); msgChart.destroy(); },
    };
  }

  // ------------------------------------------------------- paged lists

  /**
   * A searchable, paged list with server-side paging: what the topics
   * and groups pages share. `state` ({search, offset, ...}) outlives the
   * page so that coming back shows the same page.
   */
  function pagedList(opts) {
    const { state, testPrefix, noun, placeholder } = opts;
    const search = h('input', {
      type: 'search', placeholder, testid: `${testPrefix}-search`,
      'aria-label': placeholder, value: state.search, autocomplete: 'off', spellcheck: 'false',
    });
    const total = h('span', { class: 'total-num', testid: `${testPrefix}-total` }, '…');
    const range = h('span', { class: 'muted', testid: `${testPrefix}-range` });
    const prev = h('button', { type: 'button', class: 'btn', testid: `${testPrefix}-prev`, disabled: true }, '← Previous');
    const next = h('button', { type: 'button', class: 'btn', testid: `${testPrefix}-next`, disabled: true }, 'Next →');
    const pageLabel = h('span', { class: 'muted page-label', testid: `${testPrefix}-page` });
    const tbody = h('tbody', { testid: `${testPrefix}-rows` });
    const table = h('table', { testid: `${testPrefix}-table` }, thead(opts.columns), tbody);
    const toolbar = h('div', { class: 'toolbar' },
      h('div', { class: 'toolbar-search' }, search, ...(opts.extraFilters || [])),
      h('div', { class: 'toolbar-count' }, total, ` ${noun}`, range));
    const pager = h('div', { class: 'pager' }, prev, pageLabel, next);
    const el = h('div', { class: 'card' }, toolbar, tableWrap(table), pager);
    let reload = () => {};

    const onSearch = debounce(() => {
      state.search = search.value.trim();
      state.offset = 0;
      reload();
    }, SEARCH_DEBOUNCE_MS);
    search.addEventListener('input', onSearch);
    search.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') { onSearch.cancel(); state.search = search.value.trim(); state.offset = 0; reload(); }
    });
    prev.addEventListener('click', () => { state.offset = Math.max(0, state.offset - PAGE_ROWS); reload(); });
    next.addEventListener('click', () => { state.offset += PAGE_ROWS; reload(); });

    function query() {
      const q = new URLSearchParams({ search: state.search, offset: String(state.offset), limit: String(PAGE_ROWS) });
      for (const [k, v] of Object.entries(opts.extraQuery ? opts.extraQuery() : {})) q.set(k, v);
      return q.toString();
    }

    /** Renders a page; false when the offset is past the end and it reloaded. */
    function render(n, rows) {
      if (!rows.length && state.offset > 0 && n > 0) {
        state.offset = Math.floor((n - 1) / PAGE_ROWS) * PAGE_ROWS;
        reload();
        return;
      }
      total.textContent = fmtInt(n);
      range.textContent = rows.length ? ` · showing ${fmtInt(state.offset + 1)}–${fmtInt(state.offset + rows.length)}` : '';
      prev.disabled = state.offset === 0;
      next.disabled = state.offset + rows.length >= n;
      const pages = Math.max(1, Math.ceil(n / PAGE_ROWS));
      pageLabel.textContent = `Page ${fmtInt(Math.floor(state.offset / PAGE_ROWS) + 1)} of ${fmtInt(pages)}`;
      tbody.replaceChildren(...(rows.length ? rows.map(opts.row)
        : [emptyRow(opts.columns.length, state.search ? `No ${noun} match "${state.search}"` : `No ${noun}`, `${testPrefix}-empty`)]));
    }

    return {
      el, query, render, search,
      setReload(fn) { reload = fn; },
      destroy() { onSearch.cancel(); },
    };
  }

  // -------------------------------------------------------------- topics

  const topicsState = { search: '', offset: 0, internal: false };

  function topicsPage(main) {
    const root = pageRoot('topics');
    const internal = h('input', { type: 'checkbox', testid: 'topics-internal', checked: topicsState.internal });
    const list = pagedList({
      state: topicsState,
      testPrefix: 'topics',
      noun: 'topics',
      placeholder: 'Search topics',
      extraFilters: [h('label', { class: 'check' }, internal, ' Show internal')],
      extraQuery: () => ({ internal: topicsState.internal ? 'true' : 'false' }),
      columns: ['Name', { text: 'Partitions', cls: 'num' }, { text: 'Replicas', cls: 'num' },
        { text: 'Size', cls: 'num' }, { text: 'In/s', cls: 'num' }, { text: 'Out/s', cls: 'num' }],
      row: (t) => h('tr', { testid: 'topic-row', 'data-topic-name': t.name },
        h('td', { class: 'name' },
          h('a', { href: topicHref(t.name), testid: 'topic-link' }, t.name),
          t.internal ? badge('internal', 'muted') : null),
        h('td', { class: 'num' }, fmtInt(t.partitions)),
        h('td', { class: 'num' }, fmtInt(t.replication_factor)),
        h('td', { class: 'num', testid: 'topic-size' }, fmtBytes(t.size_bytes)),
        h('td', { class: 'num' }, fmtRate(t.bytes_in_per_sec)),
        h('td', { class: 'num' }, fmtRate(t.bytes_out_per_sec))),
    });
    internal.addEventListener('change', () => {
      topicsState.internal = internal.checked;
      topicsState.offset = 0;
      poll.refresh(false);
    });

    // The create form.
    const cName = h('input', { type: 'text', testid: 'topic-create-name', required: true, maxlength: 249,
      pattern: '[a-zA-Z0-9._\\-]+', placeholder: 'orders', autocomplete: 'off', spellcheck: 'false' });
    const cParts = h('input', { type: 'number', testid: 'topic-create-partitions', min: 1, step: 1, placeholder: 'default', inputmode: 'numeric' });
    const cRf = h('input', { type: 'number', testid: 'topic-create-rf', min: 1, step: 1, placeholder: 'default', inputmode: 'numeric' });
    const cConfigs = h('textarea', { testid: 'topic-create-configs', rows: 2, placeholder: 'retention.ms=86400000', spellcheck: 'false' });
    const cSubmit = h('button', { type: 'submit', class: 'btn primary', testid: 'topic-create-submit' }, 'Create topic');
    const cResult = h('div', { class: 'result', testid: 'topic-create-result', 'data-state': 'idle', 'aria-live': 'polite' });
    const form = h('form', { class: 'form-grid', testid: 'topic-create-form', novalidate: true },
      field('Name', cName),
      field('Partitions', cParts),
      field('Replication factor', cRf),
      field('Configs (optional, name=value a line)', cConfigs, { wide: true }),
      h('div', { class: 'actions' }, cSubmit, cResult));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let body;
      try {
        const name = cName.value.trim();
        if (!/^[a-zA-Z0-9._-]{1,249}$/.test(name)) {
          throw new Error('Name: 1 to 249 of the letters a-z A-Z, digits, ".", "_" and "-"');
        }
        if (name === '.' || name === '..') throw new Error('Name: "." and ".." are not topic names');
        body = { name };
        const parts = intOrNull(cParts.value, 'Partitions', 1);
        const rf = intOrNull(cRf.value, 'Replication factor', 1);
        if (parts !== null) body.partitions = parts;
        if (rf !== null) body.replication_factor = rf;
        const configs = parsePairs(cConfigs.value);
        if (Object.keys(configs).length) body.configs = configs;
      } catch (e) {
        report(cResult, 'error', e.message);
        return;
      }
      report(cResult, 'pending', `Creating ${body.name}…`);
      cSubmit.disabled = true;
      try {
        const answer = await api('POST', 'topics', body);
        const name = (answer && answer.name) || body.name;
        report(cResult, 'ok', 'Created ', h('a', { href: topicHref(name), testid: 'topic-create-link' }, name));
        form.reset();
        poll.refresh(false);
      } catch (e) {
        report(cResult, 'error', `Creating ${body.name} failed: ${e.detail || e.message}`);
      } finally {
        cSubmit.disabled = false;
      }
    });

    root.append(
      h('h1', null, 'Topics'),
      list.el,
      card('Create a topic', 'topic-create', form),
    );
    main.append(root);

    const poll = poller(root, 'Loading topics failed',
      () => api('GET', `topics?${list.query()}`),
      (d) => list.render(isNum(d.total) ? d.total : 0, Array.isArray(d.topics) ? d.topics : []));
    list.setReload(() => poll.refresh(false));
    return {
      refresh: poll.refresh,
      destroy() { poll.destroy(); list.destroy(); },
    };
  }

  // --------------------------------------------------------------- topic

  /** A payload of the messages API as DOM, and as text for the search box. */
  function payloadView(p, testid) {
    if (p == null) return { node: h('span', { class: 'null', testid }, 'null'), text: '' };
    const data = typeof p.data === 'string' ? p.data : '';
    const size = isNum(p.size) ? p.size : null;
    let node;
    let text = data;
    let cut = false;
    if (p.encoding === 'binary') {
      cut = size !== null && data.length / 2 < size;
      const hex = data.replace(/(..)(?!$)/g, '$1 ');
      node = h('code', { class: 'hex', testid }, hex || '(empty)');
      text = `${data} ${hex}`;
    } else if (p.encoding === 'json') {
      cut = size !== null && utf8Bytes(data) < size;
      let pretty = data;
      try { pretty = JSON.stringify(JSON.parse(data), null, 2); } catch (_) { /* cut short: shown as sent */ }
      node = h('pre', { class: 'json', testid }, pretty);
      text = `${data}\n${pretty}`;
    } else {
      cut = size !== null && utf8Bytes(data) < size;
      node = h('div', { class: 'text', testid }, data === '' ? h('span', { class: 'muted' }, '(empty)') : data);
    }
    const meta = h('div', { class: 'payload-meta' },
      `${p.encoding || 'text'} · ${fmtBytes(size)}`,
      cut ? badge(`first ${fmtBytes(p.encoding === 'binary' ? data.length / 2 : utf8Bytes(data))} shown`, 'warn') : null);
    return { node: h('div', { class: 'payload' }, node, meta), text };
  }

  function headerText(value) {
    if (value == null) return '(null)';
    return typeof value.data === 'string' ? value.data : '';
  }

  function topicPage(main, name) {
    const root = pageRoot('topic');
    root.dataset.topic = name;
    const title = h('h1', { class: 'title-name', testid: 'topic-name' }, name);
    const titleBadges = h('span', { class: 'title-badges' });
    const missing = h('div', { class: 'note bad', testid: 'topic-missing', hidden: true });
    const summary = {
      partitions: statValue('topic-partitions-count'),
      messages: statValue('topic-messages'),
      size: statValue('topic-size'),
      health: statValue('topic-health'),
    };
    const healthStat = stat('Health', summary.health);

    // Partitions.
    const partsBody = h('tbody', { testid: 'partitions-rows' });
    const partsCard = card('Partitions', 'partitions',
      tableWrap(h('table', { testid: 'partitions-table' },
        thead([{ text: 'Partition', cls: 'num' }, { text: 'Leader', cls: 'num' }, 'Replicas', 'ISR',
          { text: 'Start offset', cls: 'num' }, { text: 'End offset', cls: 'num' },
          { text: 'Messages', cls: 'num' }, { text: 'Size', cls: 'num' }]),
        partsBody)));

    // Message browser.
    const mPartition = h('select', { testid: 'messages-partition' }, h('option', { value: 'all' }, 'All partitions'));
    const mStart = h('select', { testid: 'messages-start' },
      h('option', { value: 'beginning' }, 'Beginning'),
      h('option', { value: 'end' }, 'End (latest)'),
      h('option', { value: 'offset' }, 'Offset'),
      h('option', { value: 'timestamp' }, 'Timestamp'));
    const mOffset = h('input', { type: 'number', testid: 'messages-offset', min: 0, step: 1, value: '0', inputmode: 'numeric' });
    const mTime = h('input', { type: 'datetime-local', testid: 'messages-timestamp', step: 1 });
    const mLimit = h('input', { type: 'number', testid: 'messages-limit', min: 1, max: MESSAGES_LIMIT_MAX, step: 1, value: '50', inputmode: 'numeric' });
    const mLoad = h('button', { type: 'submit', class: 'btn primary', testid: 'messages-load' }, 'Load messages');
    const offsetField = field('Offset', mOffset, { hidden: true });
    const timeField = field('From (local time)', mTime, { hidden: true });
    const mForm = h('form', { class: 'form-grid', testid: 'messages-form', novalidate: true },
      field('Partition', mPartition), field('Start at', mStart), offsetField, timeField,
      field('Limit', mLimit), h('div', { class: 'actions inline' }, mLoad));
    const mStatus = h('div', { class: 'result', testid: 'messages-status', 'data-state': 'idle' });
    const mSearch = h('input', { type: 'search', testid: 'messages-search', placeholder: 'Filter by key, value or header',
      'aria-label': 'Filter loaded messages', autocomplete: 'off', spellcheck: 'false' });
    const mCount = h('span', { class: 'muted', testid: 'messages-count' });
    const mBody = h('tbody', { testid: 'messages-rows' });
    const mTable = h('table', { class: 'messages', testid: 'messages-table' },
      thead([{ text: 'Partition', cls: 'num' }, { text: 'Offset', cls: 'num' }, 'Timestamp', 'Key', 'Value', 'Headers']),
      mBody);
    const mResults = h('div', { class: 'messages-results', hidden: true, testid: 'messages-results' },
      h('div', { class: 'toolbar' }, h('div', { class: 'toolbar-search' }, mSearch), mCount),
      tableWrap(mTable));
    const messagesCard = card('Messages', 'messages', mForm, mStatus, mResults);
    const syncStart = () => {
      offsetField.hidden = mStart.value !== 'offset';
      timeField.hidden = mStart.value !== 'timestamp';
    };
    mStart.addEventListener('change', syncStart);
    let shown = [];

    function filterMessages() {
      const q = mSearch.value.trim().toLowerCase();
      let visible = 0;
      for (const { row, text } of shown) {
        const match = !q || text.includes(q);
        row.hidden = !match;
        if (match) visible += 1;
      }
      mCount.textContent = q ? `${visible} of ${shown.length} loaded match` : `${shown.length} loaded`;
    }
    mSearch.addEventListener('input', filterMessages);

    mForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      try {
        if (mPartition.value !== 'all') q.set('partition', mPartition.value);
        if (mStart.value === 'offset') {
          const off = intOrNull(mOffset.value, 'Offset', 0);
          if (off === null) throw new Error('Offset: enter the offset to start at');
          q.set('offset', String(off));
        } else if (mStart.value === 'timestamp') {
          q.set('timestamp', String(localToMs(mTime.value, 'From')));
        } else {
          q.set('position', mStart.value);
        }
        const limit = intOrNull(mLimit.value, 'Limit', 1) ?? 50;
        if (limit > MESSAGES_LIMIT_MAX) throw new Error(`Limit: at most ${MESSAGES_LIMIT_MAX}`);
        q.set('limit', String(limit));
      } catch (e) {
        report(mStatus, 'error', e.message);
        return;
      }
      report(mStatus, 'pending', 'Loading…');
      mLoad.disabled = true;
      try {
        const d = await api('GET', `topics/${enc(name)}/messages?${q}`);
        const msgs = Array.isArray(d.messages) ? d.messages : [];
        renderMessages(msgs);
        report(mStatus, 'ok', msgs.length ? '' : 'No messages there.');
      } catch (e) {
        report(mStatus, 'error', `Loading messages failed: ${e.detail || e.message}`);
      } finally {
        mLoad.disabled = false;
      }
    });

    function renderMessages(msgs) {
      shown = msgs.map((m) => {
        const key = payloadView(m.key, 'message-key');
        const value = payloadView(m.value, 'message-value');
        const headers = Array.isArray(m.headers) ? m.headers : [];
        const headerLines = headers.map((hd) => `${hd.key}=${headerText(hd.value)}`);
        const row = h('tr', { testid: 'message-row', 'data-partition': m.partition, 'data-offset': m.offset },
          h('td', { class: 'num', 'data-label': 'Partition' }, String(m.partition)),
          h('td', { class: 'num', 'data-label': 'Offset' }, String(m.offset)),
          h('td', { class: 'mono nowrap', 'data-label': 'Timestamp' }, fmtIso(m.timestamp)),
          h('td', { class: 'payload-cell key-cell', 'data-label': 'Key' }, key.node),
          h('td', { class: 'payload-cell value-cell', 'data-label': 'Value' }, value.node),
          h('td', { class: 'headers-cell', testid: 'message-headers', 'data-label': 'Headers' },
            headerLines.length ? headerLines.map((l) => h('div', { class: 'header-line' }, l)) : h('span', { class: 'muted' }, DASH)));
        const text = [key.text, value.text, ...headerLines].join('\n').toLowerCase();
        return { row, text };
      });
      mBody.replaceChildren(...(shown.length ? shown.map((x) => x.row) : [emptyRow(6, 'No messages', 'messages-empty')]));
      mResults.hidden = false;
      filterMessages();
    }

    // Produce form.
    const pPartition = h('select', { testid: 'produce-partition' }, h('option', { value: '' }, 'Any (by key)'));
    const pKey = h('input', { type: 'text', testid: 'produce-key', placeholder: 'none', autocomplete: 'off', spellcheck: 'false' });
    const pValue = h('textarea', { testid: 'produce-value', rows: 4, placeholder: '{"hello": "world"}', spellcheck: 'false' });
    const pHeaders = h('textarea', { testid: 'produce-headers', rows: 2, placeholder: 'source=console', spellcheck: 'false' });
    const pSubmit = h('button', { type: 'submit', class: 'btn primary', testid: 'produce-submit' }, 'Produce');
    const pResult = h('div', { class: 'result', testid: 'produce-result', 'data-state': 'idle', 'aria-live': 'polite' });
    const pForm = h('form', { class: 'form-grid', testid: 'produce-form', novalidate: true },
      field('Partition', pPartition), field('Key (optional)', pKey),
      field('Value', pValue, { wide: true }),
      field('Headers (key=value a line)', pHeaders, { wide: true }),
      h('div', { class: 'actions' }, pSubmit, pResult));
    pForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = { value: pValue.value };
      try {
        if (pPartition.value !== '') body.partition = Number(pPartition.value);
        if (pKey.value !== '') body.key = pKey.value;
        const headers = parsePairs(pHeaders.value);
        if (Object.keys(headers).length) body.headers = headers;
      } catch (e) {
        report(pResult, 'error', `Headers: ${e.message}`);
        return;
      }
      report(pResult, 'pending', 'Producing…');
      pSubmit.disabled = true;
      try {
        const a = await api('POST', `topics/${enc(name)}/messages`, body);
        pResult.dataset.partition = a.partition;
        pResult.dataset.offset = a.offset;
        report(pResult, 'ok', `Written to partition ${a.partition} at offset ${a.offset}.`);
        poll.refresh(false);
      } catch (e) {
        report(pResult, 'error', `Producing failed: ${e.detail || e.message}`);
      } finally {
        pSubmit.disabled = false;
      }
    });
    const produceCard = card('Produce a message', 'produce', pForm);

    // Configs.
    const listId = newListId();
    const configNames = h('datalist', { id: listId });
    const cfgFilter = h('input', { type: 'search', testid: 'configs-filter', placeholder: 'Filter configs',
      'aria-label': 'Filter configs', autocomplete: 'off', spellcheck: 'false' });
    const cfgOverrides = h('input', { type: 'checkbox', testid: 'configs-overrides' });
    const cfgBody = h('tbody', { testid: 'configs-rows' });
    const cfgResult = h('div', { class: 'result', testid: 'config-result', 'data-state': 'idle', 'aria-live': 'polite' });
    const sName = h('input', { type: 'text', testid: 'config-set-name', list: listId, placeholder: 'retention.ms', autocomplete: 'off', spellcheck: 'false' });
    const sValue = h('input', { type: 'text', testid: 'config-set-value', placeholder: 'value', autocomplete: 'off', spellcheck: 'false' });
    const sSubmit = h('button', { type: 'submit', class: 'btn', testid: 'config-set-submit' }, 'Set');
    const sForm = h('form', { class: 'form-grid', testid: 'config-set-form', novalidate: true },
      field('Config', sName), field('Value', sValue), h('div', { class: 'actions inline' }, sSubmit));
    const configsCard = card('Configs', 'configs',
      h('div', { class: 'toolbar' }, h('div', { class: 'toolbar-search' }, cfgFilter,
        h('label', { class: 'check' }, cfgOverrides, ' Only overrides'))),
      tableWrap(h('table', { testid: 'configs-table' }, thead(['Name', 'Value', 'Source', '']), cfgBody)),
      h('h3', null, 'Set a config'), sForm, cfgResult, configNames);
    let configs = [];
    /** The row being edited: {name, draft}; the table is not redrawn under it by a refresh. */
    let editing = null;

    async function changeConfigs(set, del, what) {
      report(cfgResult, 'pending', `${what}…`);
      try {
        await api('PUT', `topics/${enc(name)}/configs`, { set, delete: del });
        report(cfgResult, 'ok', `${what}: done.`);
        return true;
      } catch (e) {
        report(cfgResult, 'error', `${what} failed: ${e.detail || e.message}`);
        return false;
      }
    }

    sForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const key = sName.value.trim();
      if (!key) { report(cfgResult, 'error', 'Config: enter a config name'); return; }
      sSubmit.disabled = true;
      if (await changeConfigs({ [key]: sValue.value }, [], `Setting ${key}`)) {
        sName.value = '';
        sValue.value = '';
        editing = null;
        poll.refresh(false);
      }
      sSubmit.disabled = false;
    });

    function renderConfigs() {
      const q = cfgFilter.value.trim().toLowerCase();
      const rows = configs.filter((c) => (!q || String(c.name).toLowerCase().includes(q))
        && (!cfgOverrides.checked || String(c.source || '').startsWith('DYNAMIC_TOPIC')));
      cfgBody.replaceChildren(...(rows.length ? rows.map(configRow) : [emptyRow(4, configs.length ? 'No config matches' : 'No configs')]));
    }

    function configRow(c) {
      const source = String(c.source || '');
      const override = source.startsWith('DYNAMIC_TOPIC');
      const valueText = c.sensitive ? '(sensitive)' : (c.value == null ? 'null' : String(c.value));
      const row = h('tr', { testid: 'config-row', 'data-config-name': c.name, class: override ? 'override' : null });
      const valueCell = h('td', { class: 'config-value-cell' });
      const actions = h('td', { class: 'row-actions' });
      if (editing && editing.name === c.name) {
        const input = h('input', { type: 'text', testid: 'config-edit-input', value: editing.draft, 'aria-label': `New value of ${c.name}`, spellcheck: 'false' });
        input.addEventListener('input', () => { editing.draft = input.value; });
        const save = async () => {
          const ok = await changeConfigs({ [c.name]: input.value }, [], `Setting ${c.name}`);
          if (ok) { editing = null; renderConfigs(); poll.refresh(false); }
        };
        const cancel = () => { editing = null; renderConfigs(); };
        input.addEventListener('keydown', (ev) => {
          if (ev.key === 'Enter') { ev.preventDefault(); save(); }
          if (ev.key === 'Escape') cancel();
        });
        valueCell.append(input);
        actions.append(
          h('button', { type: 'button', class: 'btn small primary', testid: 'config-save', onclick: save }, 'Save'),
          h('button', { type: 'button', class: 'btn small', testid: 'config-cancel', onclick: cancel }, 'Cancel'));
        setTimeout(() => input.focus(), 0);
      } else {
        valueCell.append(h('span', { class: `mono ${c.value == null || c.sensitive ? 'muted' : ''}`.trim(), testid: 'config-value' }, valueText));
        if (!c.read_only) {
          actions.append(h('button', {
            type: 'button', class: 'btn small', testid: 'config-edit',
            onclick: () => { editing = { name: c.name, draft: c.sensitive || c.value == null ? '' : String(c.value) }; renderConfigs(); },
          }, 'Edit'));
        }
        if (override && !c.read_only) {
          actions.append(h('button', {
            type: 'button', class: 'btn small danger', testid: 'config-delete', title: 'Delete this override (back to the default)',
            onclick: async () => {
              if (await changeConfigs({}, [c.name], `Deleting the override of ${c.name}`)) poll.refresh(false);
            },
          }, 'Delete override'));
        }
        if (c.read_only) actions.append(badge('read-only', 'muted'));
      }
      row.append(
        h('td', { class: 'mono', testid: 'config-name' }, c.name),
        valueCell,
        h('td', null, h('span', { class: `badge ${override ? 'info' : 'muted'}`, testid: 'config-source' }, source || DASH)),
        actions);
      return row;
    }
    cfgFilter.addEventListener('input', () => { if (!editing) renderConfigs(); });
    cfgOverrides.addEventListener('change', () => { if (!editing) renderConfigs(); });

    const content = h('div', { class: 'page-body' },
      h('div', { class: 'stats' },
        stat('Partitions', summary.partitions), stat('Messages', summary.messages),
        stat('Size', summary.size), healthStat),
      partsCard, messagesCard, produceCard, configsCard);
    root.append(
      h('div', { class: 'crumbs' }, h('a', { href: '#/topics' }, 'Topics'), ' / '),
      h('div', { class: 'title-row' }, title, titleBadges),
      missing,
      content,
    );
    main.append(root);
    document.title = `${name} · Rill`;

    function render(t) {
      missing.hidden = true;
      content.hidden = false;
      const parts = Array.isArray(t.partitions) ? t.partitions.slice().sort((a, b) => a.partition - b.partition) : [];
      titleBadges.replaceChildren(t.internal ? badge('internal', 'muted') : '');
      let messages = 0;
      let size = 0;
      let knownSize = false;
      let offline = 0;
      let under = 0;
      partsBody.replaceChildren(...(parts.length ? parts.map((p) => {
        const replicas = Array.isArray(p.replicas) ? p.replicas : [];
        const isr = Array.isArray(p.isr) ? p.isr : [];
        const off = Array.isArray(p.offline_replicas) ? p.offline_replicas : [];
        const leaderless = !isNum(p.leader) || p.leader < 0;
        const shrunk = isr.length < replicas.length;
        if (leaderless) offline += 1; else if (shrunk) under += 1;
        const count = isNum(p.start_offset) && isNum(p.end_offset) ? p.end_offset - p.start_offset : null;
        if (count !== null) messages += count;
        if (isNum(p.size_bytes)) { size += p.size_bytes; knownSize = true; }
        return h('tr', { testid: 'partition-row', 'data-partition': p.partition, class: leaderless ? 'row-bad' : shrunk ? 'row-warn' : null },
          h('td', { class: 'num strong' }, String(p.partition)),
          h('td', { class: 'num' }, leaderless ? badge('offline', 'bad') : String(p.leader)),
          h('td', null, fmtList(replicas)),
          h('td', null, fmtList(isr),
            shrunk && !leaderless ? [' ', badge('under-replicated', 'warn')] : null,
            off.length ? [' ', badge(`offline: ${off.join(', ')}`, 'bad')] : null),
          h('td', { class: 'num' }, fmtInt(p.start_offset)),
          h('td', { class: 'num' }, fmtInt(p.end_offset)),
          h('td', { class: 'num' }, fmtInt(count)),
          h('td', { class: 'num' }, fmtBytes(p.size_bytes)));
      }) : [emptyRow(8, 'No partitions')]));
      summary.partitions.textContent = fmtInt(parts.length);
      summary.messages.textContent = fmtInt(messages);
      summary.size.textContent = knownSize ? fmtBytes(size) : DASH;
      summary.health.textContent = offline ? `${offline} offline` : under ? `${under} under-replicated` : 'ok';
      healthStat.className = `stat ${offline ? 'bad' : under ? 'warn' : 'ok'}`;

      const partOptions = parts.map((p) => [String(p.partition), `Partition ${p.partition}`]);
      setOptions(mPartition, [['all', 'All partitions'], ...partOptions]);
      setOptions(pPartition, [['', 'Any (by key)'], ...partOptions]);

      configs = (Array.isArray(t.configs) ? t.configs : []).slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
      setDatalist(configNames, configs.filter((c) => !c.read_only).map((c) => String(c.name)));
      if (!editing) renderConfigs();
    }

    function onError(e) {
      if (e.status === 404) {
        missing.hidden = false;
        missing.textContent = `There is no topic named "${name}".`;
        content.hidden = true;
      }
    }

    const poll = poller(root, `Loading topic ${name} failed`, () => api('GET', `topics/${enc(name)}`), render, onError);
    return { refresh: poll.refresh, destroy: poll.destroy };
  }

  // -------------------------------------------------------------- groups

  const groupsState = { search: '', offset: 0 };

  function groupsPage(main) {
    const root = pageRoot('groups');
    const list = pagedList({
      state: groupsState,
      testPrefix: 'groups',
      noun: 'groups',
      placeholder: 'Search groups',
      columns: ['Group', 'State', 'Type', { text: 'Members', cls: 'num' }, { text: 'Lag', cls: 'num' }],
      row: (g) => h('tr', { testid: 'group-row', 'data-group-id': g.id },
        h('td', { class: 'name' }, h('a', { href: groupHref(g.id), testid: 'group-link' }, g.id === '' ? '(empty id)' : g.id)),
        h('td', null, badge(g.state || 'Unknown', stateKind(g.state), 'group-state')),
        h('td', null, g.protocol_type || DASH),
        h('td', { class: 'num' }, fmtInt(g.members)),
        h('td', { class: 'num', testid: 'group-row-lag' }, fmtInt(g.lag))),
    });
    root.append(h('h1', null, 'Consumer groups'), list.el);
    main.append(root);
    const poll = poller(root, 'Loading groups failed',
      () => api('GET', `groups?${list.query()}`),
      (d) => list.render(isNum(d.total) ? d.total : 0, Array.isArray(d.groups) ? d.groups : []));
    list.setReload(() => poll.refresh(false));
    return {
      refresh: poll.refresh,
      destroy() { poll.destroy(); list.destroy(); },
    };
  }

  // --------------------------------------------------------------- group

  function groupPage(main, id) {
    const root = pageRoot('group');
    root.dataset.group = id;
    const missing = h('div', { class: 'note bad', testid: 'group-missing', hidden: true });
    const sum = {
      state: statValue('group-state'),
      protocol: statValue('group-protocol'),
      coordinator: statValue('group-coordinator'),
      members: statValue('group-members-count'),
      lag: statValue('group-lag'),
    };
    const stateStat = stat('State', sum.state);
    const lagChart = lineChart('chart-lag', 'Total lag (messages)', fmtInt, { integer: true });
    lagChart.el.classList.add('wide');

    const membersBody = h('tbody', { testid: 'members-rows' });
    const membersCard = card('Members', 'members',
      tableWrap(h('table', { testid: 'members-table' }, thead(['Member', 'Client', 'Host', 'Assignment']), membersBody)));
    const offsetsBody = h('tbody', { testid: 'offsets-rows' });
    const offsetsCard = card('Offsets', 'offsets',
      tableWrap(h('table', { testid: 'offsets-table' },
        thead(['Topic', { text: 'Partition', cls: 'num' }, { text: 'Committed', cls: 'num' },
          { text: 'End offset', cls: 'num' }, { text: 'Lag', cls: 'num' }]),
        offsetsBody)));

    // Reset form.
    const listId = newListId();
    const topicList = h('datalist', { id: listId });
    const rTopic = h('input', { type: 'text', testid: 'reset-topic', list: listId, placeholder: 'topic', autocomplete: 'off', spellcheck: 'false' });
    const rTo = h('select', { testid: 'reset-to' },
      h('option', { value: 'earliest' }, 'Earliest'),
      h('option', { value: 'latest' }, 'Latest'),
      h('option', { value: 'offset' }, 'Offset'),
      h('option', { value: 'timestamp' }, 'Timestamp'),
      h('option', { value: 'shift' }, 'Shift by'));
    const rValue = h('input', { type: 'number', testid: 'reset-value', step: 1, inputmode: 'numeric' });
    const rTime = h('input', { type: 'datetime-local', testid: 'reset-timestamp', step: 1 });
    const rParts = h('input', { type: 'text', testid: 'reset-partitions', placeholder: 'all, or 0,1,4-7', autocomplete: 'off', spellcheck: 'false' });
    const rPreview = h('button', { type: 'button', class: 'btn', testid: 'reset-preview' }, 'Preview');
    const rApply = h('button', { type: 'button', class: 'btn danger', testid: 'reset-apply' }, 'Apply');
    const rResult = h('div', { class: 'result', testid: 'reset-result', 'data-state': 'idle', 'aria-live': 'polite' });
    const rNote = h('div', { class: 'note warn', testid: 'reset-members-note', hidden: true });
    const valueField = field('Offset', rValue, { hidden: true });
    const timeField = field('Timestamp (local time)', rTime, { hidden: true });
    const rChangesBody = h('tbody', { testid: 'reset-preview-rows' });
    const rChangesTitle = h('h3', null, 'Preview');
    const rChanges = h('div', { hidden: true, testid: 'reset-changes' }, rChangesTitle,
      tableWrap(h('table', { testid: 'reset-preview-table' },
        thead(['Topic', { text: 'Partition', cls: 'num' }, { text: 'Current', cls: 'num' }, { text: 'New', cls: 'num' }, { text: 'Change', cls: 'num' }]),
        rChangesBody)));
    const rForm = h('form', { class: 'form-grid', testid: 'reset-form', novalidate: true },
      field('Topic', rTopic), field('Reset to', rTo), valueField, timeField,
      field('Partitions (optional)', rParts),
      h('div', { class: 'actions' }, rPreview, rApply));
    const syncTo = () => {
      valueField.hidden = !['offset', 'shift'].includes(rTo.value);
      valueField.querySelector('.field-label').textContent = rTo.value === 'shift' ? 'Shift by (negative: back)' : 'Offset';
      timeField.hidden = rTo.value !== 'timestamp';
    };
    rTo.addEventListener('change', syncTo);
    rForm.addEventListener('submit', (ev) => { ev.preventDefault(); reset(true); });
    rPreview.addEventListener('click', () => reset(true));
    rApply.addEventListener('click', () => reset(false));
    const resetCard = card('Reset offsets', 'reset', rNote,
      h('p', { class: 'muted small' }, 'Like kafka-consumer-groups --reset-offsets: only a group with no members can be reset. Preview first; Apply commits the new offsets.'),
      rForm, rResult, rChanges, topicList);

    async function reset(dryRun) {
      const body = { topic: rTopic.value.trim(), to: rTo.value, value: null, dry_run: dryRun };
      try {
        if (!body.topic) throw new Error('Topic: enter the topic to reset');
        if (body.to === 'offset') {
          body.value = intOrNull(rValue.value, 'Offset', 0);
          if (body.value === null) throw new Error('Offset: enter the offset');
        } else if (body.to === 'shift') {
          body.value = intOrNull(rValue.value, 'Shift by');
          if (body.value === null) throw new Error('Shift by: enter how many to move (negative: back)');
        } else if (body.to === 'timestamp') {
          body.value = localToMs(rTime.value, 'Timestamp');
        }
        const parts = parsePartitions(rParts.value);
        if (parts.length) body.partitions = parts;
      } catch (e) {
        report(rResult, 'error', e.message);
        return;
      }
      const what = dryRun ? 'Preview' : 'Reset';
      report(rResult, 'pending', dryRun ? 'Computing the new offsets…' : 'Committing the new offsets…');
      rPreview.disabled = true;
      rApply.disabled = true;
      try {
        const a = await api('POST', `groups/${enc(id)}/reset`, body);
        const changes = Array.isArray(a.changes) ? a.changes : [];
        rChanges.dataset.applied = a.applied ? 'true' : 'false';
        rChangesTitle.textContent = a.applied ? 'Applied' : 'Preview (nothing committed yet)';
        rChangesBody.replaceChildren(...(changes.length ? changes.map((c) => h('tr', {
          testid: 'reset-preview-row', 'data-topic': c.topic, 'data-partition': c.partition,
        },
        h('td', { class: 'name' }, c.topic),
        h('td', { class: 'num' }, String(c.partition)),
        h('td', { class: 'num', testid: 'reset-current' }, fmtInt(c.current)),
        h('td', { class: 'num strong', testid: 'reset-new' }, fmtInt(c.new)),
        h('td', { class: 'num' }, isNum(c.current) && isNum(c.new) ? `${c.new - c.current >= 0 ? '+' : ''}${fmtInt(c.new - c.current)}` : DASH)))
          : [emptyRow(5, 'No partitions to change')]));
        rChanges.hidden = false;
        report(rResult, 'ok', a.applied
          ? `Committed new offsets for ${changes.length} partition${changes.length === 1 ? '' : 's'}.`
          : `${changes.length} partition${changes.length === 1 ? '' : 's'} would change. Apply to commit.`);
        if (a.applied) poll.refresh(false);
      } catch (e) {
        const hint = e.status === 409 && !/member/i.test(e.detail || '')
          ? ' (only a group with no members can be reset: stop its consumers first)' : '';
        report(rResult, 'error', `${what} failed: ${e.detail || e.message}${hint}`);
      } finally {
        rPreview.disabled = false;
        rApply.disabled = false;
      }
    }

    const content = h('div', { class: 'page-body' },
      h('div', { class: 'stats' },
        stateStat, stat('Protocol', sum.protocol), stat('Coordinator', sum.coordinator),
        stat('Members', sum.members), stat('Total lag', sum.lag, 'lag')),
      lagChart.el, offsetsCard, membersCard, resetCard);
    root.append(
      h('div', { class: 'crumbs' }, h('a', { href: '#/groups' }, 'Groups'), ' / '),
      h('div', { class: 'title-row' }, h('h1', { class: 'title-name', testid: 'group-id' }, id === '' ? '(empty id)' : id)),
      missing,
      content,
    );
    main.append(root);
    document.title = `${id} · groups · Rill`;

    function render(g) {
      missing.hidden = true;
      content.hidden = false;
      sum.state.replaceChildren(badge(g.state || 'Unknown', stateKind(g.state)));
      stateStat.dataset.state = g.state || '';
      sum.protocol.textContent = [g.protocol_type, g.protocol].filter(Boolean).join(' / ') || DASH;
      sum.coordinator.textContent = isNum(g.coordinator) ? `broker ${g.coordinator}` : DASH;
      const members = Array.isArray(g.members) ? g.members : [];
      sum.members.textContent = fmtInt(members.length);
      sum.lag.textContent = fmtInt(g.lag);
      sum.lag.dataset.value = isNum(g.lag) ? String(g.lag) : '';

      rNote.hidden = members.length === 0;
      rNote.textContent = `The group has ${members.length} member${members.length === 1 ? '' : 's'}: a reset is refused until its consumers stop.`;

      membersBody.replaceChildren(...(members.length ? members.map((m) => h('tr', { testid: 'member-row' },
        h('td', { class: 'mono wrap' }, m.member_id || DASH),
        h('td', null, m.client_id || DASH),
        h('td', { class: 'mono' }, m.host || DASH),
        h('td', null, Array.isArray(m.assignments) && m.assignments.length
          ? m.assignments.map((a) => h('div', null, h('a', { href: topicHref(a.topic) }, a.topic), `: ${fmtList(a.partitions)}`))
          : DASH))) : [emptyRow(4, 'No members (the group is not consuming now)')]));

      const offsets = (Array.isArray(g.offsets) ? g.offsets : []).slice()
        .sort((a, b) => String(a.topic).localeCompare(String(b.topic)) || a.partition - b.partition);
      let lastTopic = null;
      offsetsBody.replaceChildren(...(offsets.length ? offsets.map((o) => {
        const first = o.topic !== lastTopic;
        lastTopic = o.topic;
        return h('tr', { testid: 'offset-row', 'data-topic': o.topic, 'data-partition': o.partition, class: first ? 'group-start' : null },
          h('td', { class: 'name' }, h('a', { href: topicHref(o.topic), class: first ? null : 'repeat' }, o.topic)),
          h('td', { class: 'num' }, String(o.partition)),
          h('td', { class: 'num', testid: 'offset-committed', 'data-value': isNum(o.committed) ? o.committed : '' }, fmtInt(o.committed)),
          h('td', { class: 'num', testid: 'offset-end' }, fmtInt(o.end_offset)),
          h('td', { class: `num ${isNum(o.lag) && o.lag > 0 ? 'strong' : ''}`.trim(), testid: 'offset-lag' }, fmtInt(o.lag)));
      }) : [emptyRow(5, 'No committed offsets')]));
      setDatalist(topicList, [...new Set(offsets.map((o) => String(o.topic)))]);

      const points = historyPoints(g.history);
      lagChart.update(points.map((p) => p.t), [{ name: 'lag', values: points.map((p) => p.lag), color: 3 }]);
    }

    function onError(e) {
      if (e.status === 404) {
        missing.hidden = false;
        missing.textContent = `There is no group "${id}" (or it is Dead with nothing committed).`;
        content.hidden = true;
      }
    }

    const poll = poller(root, `Loading group ${id} failed`, () => api('GET', `groups/${enc(id)}`), render, onError);
    return {
      refresh: poll.refresh,
      destroy() { poll.destroy(); lagChart.destroy(); },
    };
  }

  // ------------------------------------------------------------ security

  const SCRAM_MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-512'];
  const SCRAM_ITERATIONS_DEFAULT = 8192;
  const SCRAM_ITERATIONS_MIN = 4096;
  const ACL_RESOURCE_TYPES = ['TOPIC', 'GROUP', 'CLUSTER', 'TRANSACTIONAL_ID'];
  const ACL_PATTERN_TYPES = ['LITERAL', 'PREFIXED'];
  const ACL_OPERATIONS = ['ALL', 'READ', 'WRITE', 'CREATE', 'DELETE', 'ALTER', 'DESCRIBE', 'CLUSTER_ACTION',
    'DESCRIBE_CONFIGS', 'ALTER_CONFIGS', 'IDEMPOTENT_WRITE'];
  const ACL_PERMISSIONS = ['ALLOW', 'DENY'];
  /** The one name a CLUSTER resource has. */
  const CLUSTER_RESOURCE = 'kafka-cluster';
  /** An ACL's fields: what the API sends, and exactly what a delete sends back. */
  const ACL_FIELDS = ['resource_type', 'resource_name', 'pattern_type', 'principal', 'host', 'operation', 'permission'];

  const aclOf = (a) => Object.fromEntries(ACL_FIELDS.map((k) => [k, a[k] == null ? '' : String(a[k])]));
  const aclKey = (a) => JSON.stringify(ACL_FIELDS.map((k) => a[k]));
  const describeAcl = (a) => `${a.permission} ${a.principal} ${a.operation} on ${a.resource_type} `
    + `${a.pattern_type === 'PREFIXED' ? `${a.resource_name}*` : a.resource_name} from host ${a.host}`;

  function selectOf(testid, values, value) {
    return h('select', { testid, value }, values.map((v) => h('option', { value: v }, v)));
  }

  const securityState = { aclFilter: '' };

  function securityPage(main) {
    const root = pageRoot('security');

    // Users: a row a credential.
    let users = null;
    let usersError = null;
    const usersBody = h('tbody', { testid: 'users-rows' });
    const usersResult = h('div', { class: 'result', testid: 'users-result', 'data-state': 'idle', 'aria-live': 'polite' });
    const userDeletes = confirmDeletes(() => drawUsers());

    const uName = h('input', { type: 'text', testid: 'user-create-name', placeholder: 'alice', autocomplete: 'off', spellcheck: 'false' });
    const uPassword = h('input', { type: 'password', testid: 'user-create-password', autocomplete: 'new-password' });
    const uMechanism = selectOf('user-create-mechanism', SCRAM_MECHANISMS, SCRAM_MECHANISMS[0]);
    const uIterations = h('input', { type: 'number', testid: 'user-create-iterations', min: SCRAM_ITERATIONS_MIN, step: 1,
      value: String(SCRAM_ITERATIONS_DEFAULT), inputmode: 'numeric' });
    const uSubmit = h('button', { type: 'submit', class: 'btn primary', testid: 'user-create-submit' }, 'Save user');
    const uResult = h('div', { class: 'result', testid: 'user-create-result', 'data-state': 'idle', 'aria-live': 'polite' });
    const uForm = h('form', { class: 'form-grid', testid: 'user-create-form', novalidate: true },
      field('Name', uName), field('Password', uPassword), field('Mechanism', uMechanism),
      field(`Iterations (at least ${fmtInt(SCRAM_ITERATIONS_MIN)})`, uIterations),
      h('div', { class: 'actions' }, uSubmit, uResult));
    uForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let body;
      try {
        const name = uName.value.trim();
        if (!name) throw new Error('Name: enter the user\'s name');
        if (!uPassword.value) throw new Error('Password: enter a password');
        const iterations = intOrNull(uIterations.value, 'Iterations', SCRAM_ITERATIONS_MIN) ?? SCRAM_ITERATIONS_DEFAULT;
        body = { name, password: uPassword.value, mechanism: uMechanism.value, iterations };
      } catch (e) {
        report(uResult, 'error', e.message);
        return;
      }
      report(uResult, 'pending', `Saving the ${body.mechanism} credential of ${body.name}…`);
      uSubmit.disabled = true;
      try {
        await api('POST', 'users', body);
        uPassword.value = '';
        report(uResult, 'ok', `Saved: ${body.name} can authenticate with ${body.mechanism}.`);
        poll.refresh(false);
      } catch (e) {
        report(uResult, 'error', `Saving user ${body.name} failed: ${e.detail || e.message}`);
      } finally {
        uSubmit.disabled = false;
      }
    });

    const usersCard = card('Users (SCRAM credentials)', 'users',
      tableWrap(h('table', { class: 'cards', testid: 'users-table' },
        thead(['User', 'Mechanism', { text: 'Iterations', cls: 'num' }, '']), usersBody)),
      usersResult,
      h('h3', null, 'Add a user or change a password'),
      h('p', { class: 'muted small' }, 'Saving a mechanism the user already has replaces that credential.'),
      uForm);

    function drawUsers() {
      if (users === null) {
        usersBody.replaceChildren(emptyRow(4, usersError ? `Could not load the users: ${usersError}` : 'Loading…', 'users-empty'));
        return;
      }
      const rows = [];
      for (const u of users) {
        const creds = Array.isArray(u.credentials) && u.credentials.length
          ? u.credentials.slice().sort((a, b) => String(a.mechanism).localeCompare(String(b.mechanism))) : [null];
        creds.forEach((c, i) => rows.push(h('tr', {
          testid: 'user-row', 'data-user': u.name, 'data-mechanism': c ? c.mechanism : '',
          'data-iterations': c && isNum(c.iterations) ? c.iterations : '', class: i === 0 ? 'group-start' : null,
        },
        h('td', { class: 'name', 'data-label': 'User' }, h('span', { class: i === 0 ? 'strong' : 'repeat', testid: 'user-name' }, u.name)),
        h('td', { class: 'mono', testid: 'user-mechanism', 'data-label': 'Mechanism' }, c ? c.mechanism : DASH),
        h('td', { class: 'num', testid: 'user-iterations', 'data-label': 'Iterations' }, c ? fmtInt(c.iterations) : DASH),
        h('td', { class: 'row-actions' }, c ? userDeletes.button(`${u.name}\u0000${c.mechanism}`, 'user-delete',
          `Delete the ${c.mechanism} credential of ${u.name}`, () => deleteUser(u.name, c.mechanism)) : null))));
      }
      usersBody.replaceChildren(...(rows.length ? rows : [emptyRow(4, 'No users with SCRAM credentials', 'users-empty')]));
    }

    async function deleteUser(name, mechanism) {
      const what = `the ${mechanism} credential of ${name}`;
      report(usersResult, 'pending', `Deleting ${what}…`);
      try {
        await api('DELETE', `users/${enc(name)}?${new URLSearchParams({ mechanism })}`);
        report(usersResult, 'ok', `Deleted ${what}.`);
        await poll.refresh(false);
      } catch (e) {
        report(usersResult, 'error', `Deleting ${what} failed: ${e.detail || e.message}`);
      }
    }

    // ACLs.
    let acls = null;
    let aclsError = null;
    const aclFilter = h('input', { type: 'search', testid: 'acls-filter', placeholder: 'Filter ACLs', value: securityState.aclFilter,
      'aria-label': 'Filter ACLs', autocomplete: 'off', spellcheck: 'false' });
    const aclCount = h('span', { class: 'muted', testid: 'acls-count' });
    const aclsBody = h('tbody', { testid: 'acls-rows' });
    const aclsResult = h('div', { class: 'result', testid: 'acls-result', 'data-state': 'idle', 'aria-live': 'polite' });
    const aclDeletes = confirmDeletes(() => drawAcls());
    const aclColumns = ['Principal', 'Permission', 'Operation', 'Resource type', 'Resource name', 'Pattern', 'Host', ''];
    aclFilter.addEventListener('input', () => {
      securityState.aclFilter = aclFilter.value;
      drawAcls();
    });

    const principals = h('datalist', { id: newListId() });
    const aPrincipal = h('input', { type: 'text', testid: 'acl-create-principal', placeholder: 'User:alice', list: principals.id,
      autocomplete: 'off', spellcheck: 'false' });
    const aType = selectOf('acl-create-resource-type', ACL_RESOURCE_TYPES, 'TOPIC');
    const aName = h('input', { type: 'text', testid: 'acl-create-resource-name', placeholder: 'orders', autocomplete: 'off', spellcheck: 'false' });
    const aPattern = selectOf('acl-create-pattern-type', ACL_PATTERN_TYPES, 'LITERAL');
    const aOperation = selectOf('acl-create-operation', ACL_OPERATIONS, 'READ');
    const aPermission = selectOf('acl-create-permission', ACL_PERMISSIONS, 'ALLOW');
    const aHost = h('input', { type: 'text', testid: 'acl-create-host', value: '*', placeholder: '*', autocomplete: 'off', spellcheck: 'false' });
    const aSubmit = h('button', { type: 'submit', class: 'btn primary', testid: 'acl-create-submit' }, 'Add ACL');
    const aResult = h('div', { class: 'result', testid: 'acl-create-result', 'data-state': 'idle', 'aria-live': 'polite' });
    const aForm = h('form', { class: 'form-grid', testid: 'acl-create-form', novalidate: true },
      field('Principal', aPrincipal), field('Permission', aPermission), field('Operation', aOperation),
      field('Resource type', aType), field('Resource name', aName), field('Pattern type', aPattern),
      field('Host', aHost),
      h('div', { class: 'actions' }, aSubmit, aResult));
    // A CLUSTER resource is always named kafka-cluster: the name is fixed while it is chosen.
    let typedName = '';
    aType.addEventListener('change', () => {
      const cluster = aType.value === 'CLUSTER';
      if (cluster && !aName.readOnly) {
        typedName = aName.value;
        aName.value = CLUSTER_RESOURCE;
      } else if (!cluster && aName.readOnly) {
        aName.value = typedName;
      }
      aName.readOnly = cluster;
    });
    aForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let body;
      try {
        const principal = aPrincipal.value.trim();
        if (!/^[^:]+:.+$/.test(principal)) throw new Error('Principal: enter it as Type:name, e.g. User:alice (User:* for anyone)');
        const name = aType.value === 'CLUSTER' ? CLUSTER_RESOURCE : aName.value.trim();
        if (!name) throw new Error('Resource name: enter the name (with pattern type PREFIXED, its prefix)');
        const host = aHost.value.trim();
        if (!host) throw new Error('Host: enter a host, or * for any');
        body = {
          resource_type: aType.value, resource_name: name, pattern_type: aPattern.value,
          principal, host, operation: aOperation.value, permission: aPermission.value,
        };
      } catch (e) {
        report(aResult, 'error', e.message);
        return;
      }
      report(aResult, 'pending', 'Adding the ACL…');
      aSubmit.disabled = true;
      try {
        await api('POST', 'acls', body);
        report(aResult, 'ok', `Added: ${describeAcl(body)}.`);
        poll.refresh(false);
      } catch (e) {
        report(aResult, 'error', `Adding the ACL failed: ${e.detail || e.message}`);
      } finally {
        aSubmit.disabled = false;
      }
    });

    const aclsCard = card('ACLs', 'acls',
      h('div', { class: 'toolbar' }, h('div', { class: 'toolbar-search' }, aclFilter), aclCount),
      tableWrap(h('table', { class: 'cards', testid: 'acls-table' }, thead(aclColumns), aclsBody)),
      aclsResult,
      h('h3', null, 'Add an ACL'),
      aForm, principals);

    function drawAcls() {
      if (acls === null) {
        aclCount.textContent = '';
        aclsBody.replaceChildren(emptyRow(aclColumns.length, aclsError ? `Could not load the ACLs: ${aclsError}` : 'Loading…', 'acls-empty'));
        return;
      }
      const q = aclFilter.value.trim().toLowerCase();
      const rows = acls.filter((a) => !q || ACL_FIELDS.some((k) => a[k].toLowerCase().includes(q)));
      aclCount.textContent = q ? `${fmtInt(rows.length)} of ${fmtInt(acls.length)} match` : `${fmtInt(acls.length)} ACL${acls.length === 1 ? '' : 's'}`;
      aclsBody.replaceChildren(...(rows.length ? rows.map((a) => h('tr', {
        testid: 'acl-row', 'data-principal': a.principal, 'data-permission': a.permission, 'data-operation': a.operation,
        'data-resource-type': a.resource_type, 'data-resource-name': a.resource_name, 'data-pattern-type': a.pattern_type,
        'data-host': a.host,
      },
      h('td', { class: 'mono', 'data-label': aclColumns[0] }, a.principal),
      h('td', { 'data-label': aclColumns[1] },
        badge(a.permission, a.permission === 'ALLOW' ? 'ok' : a.permission === 'DENY' ? 'bad' : 'muted', 'acl-permission')),
      h('td', { class: 'mono', 'data-label': aclColumns[2] }, a.operation),
      h('td', { 'data-label': aclColumns[3] }, a.resource_type),
      h('td', { class: 'name', 'data-label': aclColumns[4] }, a.resource_type === 'TOPIC' && a.pattern_type === 'LITERAL' && a.resource_name !== '*'
        ? h('a', { href: topicHref(a.resource_name) }, a.resource_name)
        : a.resource_type === 'GROUP' && a.pattern_type === 'LITERAL' && a.resource_name !== '*'
          ? h('a', { href: groupHref(a.resource_name) }, a.resource_name) : a.resource_name),
      h('td', { 'data-label': aclColumns[5] }, a.pattern_type),
      h('td', { class: 'mono', 'data-label': aclColumns[6] }, a.host),
      h('td', { class: 'row-actions' }, aclDeletes.button(aclKey(a), 'acl-delete', `Delete: ${describeAcl(a)}`, () => deleteAcl(a)))))
        : [emptyRow(aclColumns.length, q ? `No ACL matches "${aclFilter.value.trim()}"` : 'No ACLs', 'acls-empty')]));
    }

    async function deleteAcl(a) {
      report(aclsResult, 'pending', `Deleting ${describeAcl(a)}…`);
      try {
        const d = await api('DELETE', 'acls', aclOf(a));
        const n = d && isNum(d.deleted) ? d.deleted : null;
        report(aclsResult, 'ok', n === 0 ? 'Nothing deleted: the ACL was gone already.' : `Deleted ${describeAcl(a)}.`);
        await poll.refresh(false);
      } catch (e) {
        report(aclsResult, 'error', `Deleting the ACL failed: ${e.detail || e.message}`);
      }
    }

    root.append(
      h('h1', null, 'Security'),
      h('p', { class: 'muted small intro' }, 'SCRAM users and ACLs, changed with the authority of this broker, like every change made here. '
        + 'A password goes to the broker only to derive a salted credential; it is never stored.'),
      usersCard, aclsCard);
    main.append(root);

    /** Both lists at once; one failing still shows the other. */
    async function load() {
      const [u, a] = await Promise.allSettled([api('GET', 'users'), api('GET', 'acls')]);
      return { u, a };
    }

    function render({ u, a }) {
      const failed = [];
      if (u.status === 'fulfilled') {
        users = (u.value && Array.isArray(u.value.users) ? u.value.users : [])
          .filter((x) => x && x.name != null).map((x) => ({ ...x, name: String(x.name) }))
          .sort((x, y) => x.name.localeCompare(y.name));
        usersError = null;
      } else {
        usersError = u.reason.message;
        failed.push(`users: ${usersError}`);
      }
      if (a.status === 'fulfilled') {
        acls = (a.value && Array.isArray(a.value.acls) ? a.value.acls : []).map(aclOf)
          .sort((x, y) => x.resource_type.localeCompare(y.resource_type) || x.resource_name.localeCompare(y.resource_name)
            || x.principal.localeCompare(y.principal) || x.operation.localeCompare(y.operation));
        aclsError = null;
      } else {
        aclsError = a.reason.message;
        failed.push(`ACLs: ${aclsError}`);
      }
      drawUsers();
      drawAcls();
      setDatalist(principals, (users || []).map((x) => `User:${x.name}`));
      // What loaded is shown; a failure still marks the page and shows the banner (through the poller).
      if (failed.length) throw new Error(failed.join('; '));
    }

    const poll = poller(root, 'Loading users and ACLs failed', load, render);
    drawUsers();
    drawAcls();
    return {
      refresh: poll.refresh,
      destroy() { poll.destroy(); userDeletes.destroy(); aclDeletes.destroy(); },
    };
  }

  // ------------------------------------------------------------- routing

  function notFoundPage(main) {
    const root = pageRoot('not-found');
    root.dataset.state = 'ready';
    root.append(h('h1', null, 'Not found'), h('p', null, 'No such page. ', h('a', { href: '#/' }, 'Back to the overview'), '.'));
    main.append(root);
    return { refresh() {}, destroy() {} };
  }

  /** `#/topics/NAME` and friends; names are URI-encoded and may hold anything. */
  function parseRoute(hash) {
    const path = hash.replace(/^#/, '').replace(/^\/+/, '');
    if (path === '') return { section: 'overview', make: overviewPage };
    const slash = path.indexOf('/');
    const head = slash < 0 ? path : path.slice(0, slash);
    const rest = slash < 0 ? null : path.slice(slash + 1);
    let arg = null;
    if (rest !== null && rest !== '') {
      try { arg = decodeURIComponent(rest); } catch (_) { return { section: null, make: notFoundPage }; }
    }
    if (head === 'topics') return arg === null ? { section: 'topics', make: topicsPage } : { section: 'topics', make: (m) => topicPage(m, arg) };
    if (head === 'groups') return arg === null ? { section: 'groups', make: groupsPage } : { section: 'groups', make: (m) => groupPage(m, arg) };
    if (head === 'security' && arg === null) return { section: 'security', make: securityPage };
    return { section: null, make: notFoundPage };
  }

  let current = null;

  function route() {
    if (current) current.destroy();
    banner.clear('refresh');
    banner.clear('action');
    const r = parseRoute(location.hash);
    for (const a of document.querySelectorAll('.nav a')) {
      const on = a.dataset.section === r.section;
      a.classList.toggle('active', on);
      if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    document.title = 'Rill console';
    const main = document.getElementById('main');
    main.replaceChildren();
    current = r.make(main);
    window.scrollTo(0, 0);
    current.refresh(false);
  }

  document.getElementById('banner-close').addEventListener('click', () => banner.clear());
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && current) current.refresh(true);
  });
  setInterval(() => {
    if (current && !document.hidden) current.refresh(true);
  }, REFRESH_INTERVAL_MS);
  route();
})();
