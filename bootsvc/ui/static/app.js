// imgctl boot dashboard. Plain JavaScript, no build step: the page holds the
// rows of the selected nodes, applies the event stream's changes to them and
// renders only the rows in view (virtualised), so 10,000 nodes stay cheap.
(() => {
  'use strict';
  const ORDER = ['dhcp', 'ipxe', 'kernel', 'rootfs', 'booted', 'failed'];
  const ROW_H = 24, OVERSCAN = 8;
  // Figures for tests and benchmarks (read with Runtime.evaluate).
  const ui = window.__ui = { loads: 0, renders: 0, applied: 0, events: 0, hellos: 0, resyncs: 0, firstRender: 0 };
  ui.stateOf = (name) => rows.get(name)?._state;
  const $ = (id) => document.getElementById(id);
  const collator = new Intl.Collator(undefined, { numeric: true });

  let rows = new Map(); // name → row, for the nodes the hostlist selects
  let view = []; // rows after the group and state filters, sorted
  let viewDirty = true, frame = 0, skew = 0, loadSeq = 0;
  let sortKey = 'name', sortDir = 1, hostlistExpr = '', tab = 'nodes';

  const serverNow = () => Date.now() + skew;
  const ms = (s) => (s ? Date.parse(s) : 0);

  async function api(path) {
    const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
    if (r.status === 401) throw new Error('signed out: sign in again');
    if (!r.ok) throw new Error((await r.text()).trim() || r.statusText);
    return r.json();
  }

  function prep(r) {
    r._since = ms(r.since);
    r._seen = ms(r.seen);
    r._phases = Object.entries(r.phases || {}).filter(([s]) => ORDER.includes(s))
      .map(([s, t]) => [s, ms(t)]).sort((a, b) => a[1] - b[1]);
    r._state = r.state || 'unknown';
    r._group = (r.groups || []).join(',');
    return r;
  }

  // load replaces every row (on first connect, reconnect, resync, new filter).
  async function load() {
    const seq = ++loadSeq;
    const q = hostlistExpr ? '?hostlist=' + encodeURIComponent(hostlistExpr) : '';
    try {
      const l = await api('/ui/api/nodes' + q);
      if (seq !== loadSeq) return;
      skew = ms(l.now) - Date.now();
      const next = new Map();
      for (const r of l.nodes) next.set(r.name, prep(r));
      rows = next;
      fillGroups(l.groups);
      $('filter-error').textContent = '';
      ui.loads++;
      invalidate();
    } catch (e) {
      if (seq === loadSeq) $('filter-error').textContent = e.message;
    }
    refreshTab();
  }

  // apply takes the event stream's rows; an older copy never replaces a newer one.
  function apply(list) {
    let n = 0;
    for (const r of list) {
      const old = rows.get(r.name);
      if (!old) continue; // not selected by the hostlist (new nodes come with a resync)
      prep(r);
      if (old._seen > r._seen) continue;
      rows.set(r.name, r);
      n++;
    }
    ui.applied += n;
    if (n) invalidate();
  }

  function fillGroups(groups) {
    const sel = $('f-group'), cur = sel.value;
    sel.length = 1;
    for (const g of groups) sel.add(new Option(g, g));
    sel.value = groups.includes(cur) ? cur : '';
  }

  const sorters = {
    name: (a, b) => collator.compare(a.name, b.name),
    group: (a, b) => collator.compare(a._group, b._group),
    image: (a, b) => collator.compare(a.image || '', b.image || ''),
    mode: (a, b) => collator.compare(a.mode || '', b.mode || ''),
    state: (a, b) => ORDER.indexOf(a.state) - ORDER.indexOf(b.state),
    since: (a, b) => (b._since || Infinity) - (a._since || Infinity),
    phases: (a, b) => span(a) - span(b),
    digest: (a, b) => collator.compare(a.digest || '', b.digest || ''),
    seen: (a, b) => a._seen - b._seen,
    reason: (a, b) => collator.compare(a.reason || '', b.reason || ''),
  };

  function span(r) {
    const p = r._phases;
    return p.length ? (r.state === 'booted' || r.state === 'failed' ? p[p.length - 1][1] : serverNow()) - p[0][1] : 0;
  }

  function rebuildView() {
    const g = $('f-group').value, st = $('f-state').value;
    view = [];
    for (const r of rows.values()) {
      if (g && !(r.groups || []).includes(g)) continue;
      if (st && r._state !== st) continue;
      view.push(r);
    }
    const cmp = sorters[sortKey], byName = sorters.name;
    view.sort((a, b) => sortDir * cmp(a, b) || byName(a, b));
  }

  function invalidate() { viewDirty = true; schedule(); }
  function schedule() { if (!frame) frame = requestAnimationFrame(render); }

  const CELLS = ['name', 'group', 'image', 'mode', 'state', 'since', 'phases', 'digest', 'seen', 'reason'];
  function makeRowEl() {
    const el = document.createElement('div');
    el.className = 'grid row';
    for (const c of CELLS) {
      const s = document.createElement('span');
      s.className = 'c-' + c;
      el.appendChild(s);
    }
    return el;
  }

  function dur(msec) {
    if (!(msec >= 0)) return '';
    let s = Math.round(msec / 1000);
    if (s < 60) return s + 's';
    let m = Math.floor(s / 60); s %= 60;
    if (m < 60) return m + 'm' + String(s).padStart(2, '0') + 's';
    const h = Math.floor(m / 60); m %= 60;
    if (h < 48) return h + 'h' + String(m).padStart(2, '0') + 'm';
    return Math.floor(h / 24) + 'd';
  }

  function fillRow(el, r, now) {
    const c = el.children;
    el.dataset.node = r.name;
    el.dataset.state = r._state;
    c[0].textContent = r.name;
    c[1].textContent = r._group;
    c[2].textContent = r.image || '';
    c[3].textContent = r.mode || '';
    c[4].innerHTML = '';
    const st = document.createElement('span');
    st.className = 'st st-' + r._state;
    st.textContent = r._state;
    c[4].appendChild(st);
    c[5].textContent = r._since ? dur(now - r._since) : '';
    c[6].replaceChildren(bar(r, now));
    c[7].textContent = '';
    c[7].className = 'c-digest mono';
    if (r.digest) {
      const short = r.digest.replace(/^sha256:/, '').slice(0, 12);
      c[7].textContent = short + (r.stale ? ' stale' : r.current ? ' current' : '');
      c[7].classList.add(r.stale ? 'stale' : r.current ? 'current' : 'x');
      c[7].title = r.digest + (r.current ? '\ncurrent: ' + r.current : '');
    }
    c[8].textContent = r._seen ? dur(now - r._seen) + ' ago' : '';
    c[9].textContent = r.reason || '';
    c[9].title = r.reason || r.detail || '';
  }

  // bar draws the boot under way: one segment per phase, as long as it lasted.
  function bar(r, now) {
    const b = document.createElement('div');
    b.className = 'bar';
    const p = r._phases;
    if (!p.length) return b;
    const done = r.state === 'booted' || r.state === 'failed';
    const end = done ? p[p.length - 1][1] : now;
    const total = Math.max(end - p[0][1], 1);
    const title = [];
    p.forEach(([s, t], i) => {
      const next = i + 1 < p.length ? p[i + 1][1] : end;
      const seg = document.createElement('i');
      seg.className = 'ph-' + s;
      seg.style.flex = (done && i === p.length - 1) ? '0 0 4px' : String(Math.max(next - t, 1) / total);
      b.appendChild(seg);
      title.push(s + ' +' + dur(t - p[0][1]));
    });
    b.title = title.join(', ');
    return b;
  }

  function render() {
    frame = 0;
    if (viewDirty) { rebuildView(); viewDirty = false; }
    const vp = $('viewport'), box = $('rows'), now = serverNow();
    $('spacer').style.height = view.length * ROW_H + 'px';
    const first = Math.max(0, Math.floor(vp.scrollTop / ROW_H) - OVERSCAN);
    const last = Math.min(view.length, first + Math.ceil(vp.clientHeight / ROW_H) + 2 * OVERSCAN);
    box.style.transform = 'translateY(' + first * ROW_H + 'px)';
    while (box.children.length < last - first) box.appendChild(makeRowEl());
    while (box.children.length > Math.max(last - first, 0)) box.lastChild.remove();
    for (let i = first; i < last; i++) fillRow(box.children[i - first], view[i], now);
    $('count').textContent = view.length + ' of ' + rows.size + ' nodes';
    summary();
    ui.renders++;
    if (ui.loads && !ui.firstRender) ui.firstRender = performance.now();
    ui.renderedApplied = ui.applied;
  }

  function summary() {
    const counts = {};
    let stale = 0;
    for (const r of rows.values()) {
      counts[r._state] = (counts[r._state] || 0) + 1;
      if (r.stale) stale++;
    }
    const parts = [...ORDER, 'unknown'].filter((s) => counts[s]).map((s) => s + ' ' + counts[s]);
    if (stale) parts.push('stale ' + stale);
    $('summary').textContent = parts.join(' · ');
  }

  // Storm view.
  let stormTimer = 0, stormAt = 0;
  function stormSoon() {
    if (tab !== 'storm' || stormTimer) return;
    stormTimer = setTimeout(() => { stormTimer = 0; loadStorm(); }, Math.max(0, 2000 - (Date.now() - stormAt)));
  }

  async function loadStorm() {
    stormAt = Date.now();
    let s;
    try { s = await api('/ui/api/storm'); } catch (e) { $('storm-stats').textContent = e.message; return; }
    const fmt = (v) => (v ? v.toFixed(1) + ' s' : '–');
    $('storm-stats').replaceChildren(...[['booted', s.booted], ['p50 to booted', fmt(s.p50_s)], ['p95 to booted', fmt(s.p95_s)],
      ['failed', s.counts.failed || 0]].map(([k, v]) => {
      const d = document.createElement('div');
      d.append(k + ' ');
      const b = document.createElement('b');
      b.textContent = v;
      d.appendChild(b);
      return d;
    }));
    drawChart(s);
    $('storm-slow').replaceChildren(...s.slowest.map((n) => tr([n.name, n.state, n.seconds.toFixed(1), n.reason || ''])));
  }

  function drawChart(s) {
    const cv = $('storm-chart'), g = cv.getContext('2d'), W = cv.width, H = cv.height, pad = 30;
    g.clearRect(0, 0, W, H);
    let maxY = 1;
    for (let i = 0; i < s.points; i++) maxY = Math.max(maxY, ORDER.reduce((a, st) => a + s.series[st][i], 0));
    const x = (i) => pad + (W - 2 * pad) * i / Math.max(s.points - 1, 1);
    const y = (v) => H - pad - (H - 2 * pad) * v / maxY;
    const base = new Array(s.points).fill(0);
    const css = getComputedStyle(document.documentElement);
    for (const st of ORDER) {
      const top = base.map((b, i) => b + s.series[st][i]);
      g.beginPath();
      top.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
      for (let i = s.points - 1; i >= 0; i--) g.lineTo(x(i), y(base[i]));
      g.closePath();
      g.fillStyle = css.getPropertyValue('--' + st).trim();
      g.fill();
      top.forEach((v, i) => { base[i] = v; });
    }
    g.fillStyle = '#333';
    g.fillText(String(maxY), 2, pad);
    g.fillText('0', 2, H - pad);
    const t0 = new Date(ms(s.start)), t1 = new Date(ms(s.start) + s.step_s * 1000 * (s.points - 1));
    g.fillText(t0.toLocaleTimeString(), pad, H - 8);
    g.fillText(t1.toLocaleTimeString(), W - pad - 60, H - 8);
    $('storm-legend').replaceChildren(...ORDER.map((st) => {
      const l = document.createElement('span');
      const i = document.createElement('i');
      i.className = 'ph-' + st;
      l.append(i, st);
      return l;
    }));
  }

  // Images view.
  async function loadImages() {
    let sets;
    try { sets = await api('/ui/api/images'); } catch (e) { $('images-body').replaceChildren(tr([e.message])); return; }
    const size = (b) => (b >= 1 << 30 ? (b / (1 << 30)).toFixed(2) + ' GiB' : b >= 1 << 20 ? (b / (1 << 20)).toFixed(1) + ' MiB' : (b / 1024).toFixed(0) + ' KiB');
    $('images-body').replaceChildren(...sets.map((s) => tr([s.name, s.digest.replace(/^sha256:/, '').slice(0, 12), s.current ? 'yes' : '',
      s.created ? new Date(ms(s.created)).toLocaleString() : '', s.kernel_version || '', size(s.size),
      Object.entries(s.files).map(([k, v]) => k + ' ' + size(v)).join(', '),
      s.assigned ? s.assigned + ' (' + s.assigned_count + ')' : '', s.booted ? s.booted + ' (' + s.booted_count + ')' : ''])));
  }

  function tr(cells) {
    const row = document.createElement('tr');
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      row.appendChild(td);
    }
    return row;
  }

  function refreshTab() {
    if (tab === 'storm') loadStorm();
    if (tab === 'images') loadImages();
  }

  function setConn(up) {
    const c = $('conn');
    c.className = 'conn ' + (up ? 'up' : 'down');
    c.textContent = up ? 'live' : 'reconnecting';
  }

  // connect opens the event stream. EventSource reconnects by itself after a
  // dropped connection (the stream's retry: 2000); every hello reloads, so
  // nothing missed while the server was away stays missing.
  function connect() {
    const es = new EventSource('/ui/events');
    es.addEventListener('hello', () => { ui.hellos++; setConn(true); load(); });
    es.addEventListener('nodes', (e) => {
      const d = JSON.parse(e.data);
      skew = ms(d.now) - Date.now();
      ui.events++;
      apply(d.rows);
      stormSoon();
    });
    es.addEventListener('resync', () => { ui.resyncs++; load(); });
    es.onerror = () => {
      setConn(false);
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 5000); // refused (e.g. 401, 502): try again later
    };
  }

  function init() {
    const sel = $('f-state');
    for (const s of [...ORDER, 'unknown']) sel.add(new Option(s, s));
    sel.onchange = invalidate;
    $('f-group').onchange = invalidate;
    let debounce = 0;
    $('f-hostlist').addEventListener('input', (e) => {
      clearTimeout(debounce);
      debounce = setTimeout(() => { hostlistExpr = e.target.value.trim(); load(); }, 250);
    });
    $('viewport').addEventListener('scroll', schedule, { passive: true });
    window.addEventListener('resize', schedule);
    for (const h of document.querySelectorAll('#thead [data-sort]')) {
      h.onclick = () => {
        const k = h.dataset.sort;
        sortDir = k === sortKey ? -sortDir : 1;
        sortKey = k;
        for (const o of document.querySelectorAll('#thead [data-sort]')) o.className = o === h ? (sortDir > 0 ? 'asc' : 'desc') : '';
        invalidate();
      };
    }
    for (const b of document.querySelectorAll('nav .tab')) {
      b.onclick = () => {
        tab = b.dataset.tab;
        for (const o of document.querySelectorAll('nav .tab')) o.classList.toggle('active', o === b);
        for (const p of document.querySelectorAll('.panel')) p.hidden = p.id !== 'tab-' + tab;
        if (tab === 'nodes') schedule(); else refreshTab();
      };
    }
    setInterval(schedule, 1000); // "in state" and "last seen" tick; nothing is fetched
    connect();
  }

  init();
})();
