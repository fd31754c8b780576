/**
 * The live dashboard served at `/`: one self-contained page (inline CSS and JS, no CDN) so
 * every runtime serves it from memory. `__NONCE__` is replaced per response (CSP nonce).
 * The inline script avoids backticks and dollar-brace so this stays a plain String.raw.
 */
export const DASHBOARD_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<link rel="icon" href="data:,">
<title>runrelay</title>
<style nonce="__NONCE__">
:root{--bg:#f6f7f9;--panel:#fff;--text:#1b1f24;--muted:#667085;--line:#e4e7ec;--accent:#4f46e5;--accent-2:#eef2ff;
--ok:#067647;--ok-bg:#dcfae6;--bad:#b42318;--bad-bg:#fee4e2;--run:#175cd3;--run-bg:#d1e9ff;--warn:#b54708;--warn-bg:#fef0c7;--idle:#475467;--idle-bg:#eaecf0;
--radius:10px;--shadow:0 1px 2px rgba(16,24,40,.06),0 1px 3px rgba(16,24,40,.1);font-size:15px}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--panel:#161b22;--text:#e6edf3;--muted:#8b949e;--line:#30363d;--accent:#818cf8;--accent-2:#1e1b4b;
--ok:#4ade80;--ok-bg:#052e16;--bad:#f87171;--bad-bg:#450a0a;--run:#60a5fa;--run-bg:#0c2d5a;--warn:#fbbf24;--warn-bg:#422006;--idle:#9ca3af;--idle-bg:#1f2937}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:1rem/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
header{position:sticky;top:0;z-index:5;display:flex;align-items:center;gap:12px;padding:10px 20px;background:var(--panel);border-bottom:1px solid var(--line)}
.brand{font-weight:700;font-size:1.1rem;letter-spacing:-.01em;display:flex;align-items:center;gap:8px;color:var(--text)}
.logo{width:22px;height:22px;border-radius:6px;background:linear-gradient(135deg,#6366f1,#06b6d4);display:inline-block}
.spacer{flex:1}
.live{display:inline-flex;align-items:center;gap:6px;font-size:.85rem;color:var(--muted)}
.dot{width:8px;height:8px;border-radius:50%;background:var(--idle)}
.live.on .dot{background:#12b76a;box-shadow:0 0 0 3px rgba(18,183,106,.2)}.live.retry .dot{background:#f79009}
main{max-width:1200px;margin:0 auto;padding:20px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:var(--radius);box-shadow:var(--shadow)}
.pad{padding:16px 18px}
h1{font-size:1.35rem;margin:0 0 4px}h2{font-size:1.05rem;margin:0 0 12px}
.muted{color:var(--muted)}.small{font-size:.85rem}
button,.btn{font:inherit;border:1px solid var(--line);background:var(--panel);color:var(--text);padding:7px 12px;border-radius:8px;cursor:pointer;white-space:nowrap}
button:hover{border-color:var(--accent)}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button.danger{color:var(--bad);border-color:var(--bad)}
button:disabled{opacity:.5;cursor:default}
input,select,textarea{font:inherit;color:var(--text);background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:7px 10px;min-width:0}
input:focus,select:focus,textarea:focus{outline:2px solid var(--accent-2);border-color:var(--accent)}
textarea{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem;width:100%;min-height:80px}
.row{display:flex;gap:10px;align-items:center;flex-wrap:wrap}
.filters{display:flex;gap:10px;flex-wrap:wrap;align-items:center;padding:12px 14px;border-bottom:1px solid var(--line)}
.filters label{display:flex;flex-direction:column;gap:3px;font-size:.75rem;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
table{width:100%;border-collapse:collapse}
th{text-align:left;font-size:.75rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600;padding:10px 14px;border-bottom:1px solid var(--line)}
td{padding:11px 14px;border-bottom:1px solid var(--line);vertical-align:middle}
tbody tr{cursor:pointer;transition:background .3s}tbody tr:hover{background:var(--accent-2)}
tbody tr.flash{animation:flash 1.2s ease-out}@keyframes flash{from{background:var(--run-bg)}to{background:transparent}}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.83rem}
.chip{display:inline-flex;align-items:center;gap:6px;padding:2px 10px;border-radius:999px;font-size:.8rem;font-weight:600;background:var(--idle-bg);color:var(--idle);white-space:nowrap}
.chip::before{content:"";width:7px;height:7px;border-radius:50%;background:currentColor}
.chip.completed{background:var(--ok-bg);color:var(--ok)}.chip.failed,.chip.timed_out{background:var(--bad-bg);color:var(--bad)}
.chip.running{background:var(--run-bg);color:var(--run)}.chip.running::before{animation:pulse 1.2s infinite}
.chip.paused{background:var(--warn-bg);color:var(--warn)}.chip.queued,.chip.scheduled,.chip.canceled{background:var(--idle-bg);color:var(--idle)}
@keyframes pulse{50%{opacity:.25}}
.tag{display:inline-block;padding:1px 8px;margin:1px 2px 1px 0;border-radius:6px;background:var(--accent-2);color:var(--accent);font-size:.75rem}
.bar{height:6px;border-radius:3px;background:var(--line);overflow:hidden;min-width:60px}.bar>i{display:block;height:100%;background:var(--accent);transition:width .4s}
.empty{padding:40px;text-align:center;color:var(--muted)}
.signin{max-width:440px;margin:8vh auto}.signin input{width:100%}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px}
.kv{display:flex;flex-direction:column;gap:2px}.kv b{font-size:.72rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600}
.cols{display:grid;grid-template-columns:minmax(0,1.3fr) minmax(0,1fr);gap:16px;margin-top:16px}
.timeline{list-style:none;margin:0;padding:0}
.timeline li{position:relative;padding:0 0 14px 22px;border-left:2px solid var(--line);margin-left:6px}
.timeline li:last-child{border-left-color:transparent}
.timeline li::before{content:"";position:absolute;left:-7px;top:3px;width:12px;height:12px;border-radius:50%;background:var(--panel);border:2px solid var(--accent)}
.timeline li.completed::before{border-color:var(--ok);background:var(--ok)}.timeline li.failed::before,.timeline li.timed_out::before{border-color:var(--bad);background:var(--bad)}
.ev-head{display:flex;gap:8px;align-items:baseline;flex-wrap:wrap}
pre{margin:6px 0 0;padding:10px;border-radius:8px;background:var(--bg);border:1px solid var(--line);overflow:auto;max-height:320px;font-size:.8rem}
.toast{position:fixed;bottom:18px;left:50%;transform:translateX(-50%);background:#1b1f24;color:#fff;padding:10px 16px;border-radius:8px;box-shadow:var(--shadow);z-index:20;max-width:90vw}
.hidden{display:none!important}
dialog{border:1px solid var(--line);border-radius:var(--radius);background:var(--panel);color:var(--text);padding:0;width:min(520px,94vw)}
dialog::backdrop{background:rgba(0,0,0,.35)}
.dlg-body{padding:18px;display:flex;flex-direction:column;gap:12px}.dlg-body label{display:flex;flex-direction:column;gap:4px;font-size:.85rem}
@media (max-width:760px){
 header{padding:10px 12px}main{padding:12px}.cols{grid-template-columns:1fr}
 thead{display:none}table,tbody{display:block;width:100%}
 tbody tr{padding:10px 12px;border-bottom:1px solid var(--line);display:grid;grid-template-columns:minmax(0,1fr) auto;gap:3px 10px}
 td{display:block;border:0;padding:0;min-width:0;grid-column:1/3;overflow:hidden;text-overflow:ellipsis}
 td.c-id{grid-column:1;grid-row:1}td.c-status{grid-column:2;grid-row:1;text-align:right}
 td.c-wf,td.c-up,td.c-prog,td.c-created,td.c-dur{font-size:.85rem;color:var(--muted)}
 td.c-wf{grid-column:1}td.c-up{grid-column:2;text-align:right}td.c-dur{grid-column:1}td.c-created{grid-column:2;text-align:right}
 .hide-sm{display:none}
 .filters label{flex:1 1 40%}
}
</style>
</head>
<body>
<header>
  <a class="brand" href="#/"><span class="logo"></span>runrelay</a>
  <span class="spacer"></span>
  <span id="live" class="live hidden"><span class="dot"></span><span id="live-text">offline</span></span>
  <a class="small hide-sm" href="/docs">API reference</a>
  <button id="signout" class="hidden">Sign out</button>
</header>
<main id="app"></main>
<div id="toast" class="toast hidden"></div>
<dialog id="trigger-dlg"><form id="trigger-form" method="dialog" class="dlg-body">
  <h2>Trigger a run</h2>
  <label>Workflow<select id="tr-wf" required></select></label>
  <label>Variables (JSON)<textarea id="tr-vars">{}</textarea></label>
  <label>Tags (comma separated)<input id="tr-tags" placeholder="team:a, nightly"></label>
  <div class="row"><span class="spacer"></span><button type="button" id="tr-cancel">Cancel</button><button class="primary" id="tr-go" type="submit">Trigger</button></div>
</form></dialog>
<script nonce="__NONCE__">
(function () {
  'use strict'
  var STORE = 'runrelay.credential'
  var TERMINAL = { completed: 1, failed: 1, canceled: 1, timed_out: 1 }
  var STATUSES = ['scheduled', 'queued', 'running', 'paused', 'completed', 'failed', 'canceled', 'timed_out']
  var app = document.getElementById('app')
  var state = { cred: sessionStorage.getItem(STORE) || '', runs: new Map(), workflows: [], filters: { workflow: '', status: '', tag: '' }, feed: null, runSock: null, view: null }

  function h(tag, attrs) {
    var el = document.createElement(tag)
    if (attrs) for (var k in attrs) {
      var v = attrs[k]
      if (v === undefined || v === null || v === false) continue
      if (k === 'text') el.textContent = v
      else if (k === 'class') el.className = v
      else if (k === 'style') el.style.cssText = v // CSSOM, which the CSP allows (style attributes it does not)
      else if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v)
      else el.setAttribute(k, v === true ? '' : v)
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i]
      if (c === null || c === undefined || c === false) continue
      if (Array.isArray(c)) c.forEach(function (x) { if (x) el.appendChild(typeof x === 'string' ? document.createTextNode(x) : x) })
      else el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c)
    }
    return el
  }
  function toast(msg) {
    var t = document.getElementById('toast')
    t.textContent = msg; t.classList.remove('hidden')
    clearTimeout(toast.timer); toast.timer = setTimeout(function () { t.classList.add('hidden') }, 4000)
  }
  var isKey = function () { return state.cred.indexOf('rr_') === 0 }
  // Write buttons only for keys that may use them (GET /v1/me names the key's scopes).
  var canWrite = function () { return isKey() && (state.scopes || []).some(function (s) { return s === 'runs:write' || s === 'admin' }) }
  function tokenScope() {
    try {
      var p = state.cred.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
      return JSON.parse(atob(p + '==='.slice((p.length + 3) % 4))).scope || {}
    } catch (e) { return {} }
  }
  function api(method, path, body) {
    return fetch(path, { method: method, headers: Object.assign({ authorization: 'Bearer ' + state.cred }, body !== undefined ? { 'content-type': 'application/json' } : {}), body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (res) {
        return res.text().then(function (text) {
          var json = null; try { json = text ? JSON.parse(text) : null } catch (e) {}
          if (!res.ok) { var err = new Error((json && json.error && json.error.message) || ('HTTP ' + res.status)); err.status = res.status; throw err }
          return json
        })
      })
  }
  function fmtDur(ms) {
    if (ms === null || ms === undefined || ms < 0) return ''
    var s = Math.round(ms / 1000)
    if (s < 60) return s + 's'
    var m = Math.floor(s / 60); s = s % 60
    if (m < 60) return m + 'm ' + (s < 10 ? '0' : '') + s + 's'
    return Math.floor(m / 60) + 'h ' + (m % 60) + 'm'
  }
  function durationOf(r) {
    if (r.duration_ms !== null && r.duration_ms !== undefined) return r.duration_ms
    if (r.started_at && !TERMINAL[r.status]) return Date.now() - Date.parse(r.started_at)
    return null
  }
  function ago(iso) {
    if (!iso) return ''
    var s = Math.round((Date.now() - Date.parse(iso)) / 1000)
    if (s < 5) return 'just now'
    if (s < 60) return s + 's ago'
    if (s < 3600) return Math.floor(s / 60) + 'm ago'
    if (s < 86400) return Math.floor(s / 3600) + 'h ago'
    return new Date(iso).toLocaleString()
  }
  function chip(status) { return h('span', { class: 'chip ' + status, 'data-status': status, text: status.replace('_', ' ') }) }
  function wfName(id) { var w = state.workflows.find(function (x) { return x.id === id }); return w ? w.name : id }

  /** A WebSocket that reconnects (full-jitter backoff) and resumes after the last position. */
  function socket(path, opts) {
    var pos = opts.after, attempt = 0, ws = null, closed = false, watchdog = null, hb = 15000
    function url() {
      var q = path.indexOf('?') >= 0 ? '&' : '?'
      return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path + (pos !== undefined ? q + 'after=' + pos : '')
    }
    function arm() { clearTimeout(watchdog); watchdog = setTimeout(function () { if (ws) { var w = ws; ws = null; w.onclose = null; try { w.close() } catch (e) {} lost(1006) } }, hb * 2.5) }
    function lost(code) {
      clearTimeout(watchdog)
      if (closed || code === 1000) { opts.onState('idle'); return }
      if (code === 4001 || code === 4003 || code === 4004) { opts.onState('idle'); toast('The server refused the live connection (' + code + ')'); return }
      opts.onState('retry')
      var delay = Math.random() * Math.min(15000, 400 * Math.pow(2, attempt++))
      setTimeout(connect, delay)
    }
    function connect() {
      if (closed) return
      ws = new WebSocket(url(), ['runrelay.v1', 'runrelay.token.' + state.cred])
      var me = ws
      arm()
      ws.onmessage = function (m) {
        if (ws !== me) return
        arm()
        var msg; try { msg = JSON.parse(m.data) } catch (e) { return }
        if (msg.type === 'hello') { attempt = 0; hb = msg.heartbeatMs || hb; if (pos === undefined) pos = msg.after; opts.onState('on') }
        var evs = msg.type === 'event' ? [msg.event] : msg.type === 'batch' ? msg.events : []
        evs.forEach(function (e) {
          var p = opts.key(e)
          if (pos !== undefined && p <= pos) return
          pos = p; opts.onEvent(e)
        })
      }
      ws.onclose = function (e) { if (ws === me) { ws = null; lost(e.code) } }
    }
    connect()
    return { close: function () { closed = true; clearTimeout(watchdog); if (ws) { ws.onclose = null; ws.close() } ws = null } }
  }
  function setLive(s) {
    var el = document.getElementById('live')
    el.classList.remove('hidden', 'on', 'retry')
    if (s === 'on') el.classList.add('on')
    if (s === 'retry') el.classList.add('retry')
    document.getElementById('live-text').textContent = s === 'on' ? 'live' : s === 'retry' ? 'reconnecting' : 'offline'
  }

  // ---- sign in ----
  function renderSignIn(error) {
    document.getElementById('signout').classList.add('hidden')
    document.getElementById('live').classList.add('hidden')
    var input = h('input', { id: 'cred', type: 'password', placeholder: 'rr_… API key or subscriber token', autocomplete: 'off', required: true })
    app.replaceChildren(h('div', { class: 'card pad signin' },
      h('h1', { text: 'Sign in' }),
      h('p', { class: 'muted small', text: 'Paste an API key (runs:read, and runs:write to trigger and cancel) or a subscriber token. It is kept in this tab only (sessionStorage).' }),
      h('form', { class: 'row', onsubmit: function (e) {
        e.preventDefault()
        state.cred = input.value.trim()
        check().then(function () { sessionStorage.setItem(STORE, state.cred); route() }, function (err) { state.cred = ''; renderSignIn(err.message) })
      } }, input, h('button', { class: 'primary', id: 'signin-btn', type: 'submit', text: 'Sign in' })),
      error ? h('p', { class: 'small', text: error }) : null))
    input.focus()
  }
  function check() {
    if (isKey()) return api('GET', '/v1/runs?limit=1').then(function () { return api('GET', '/v1/me') }).then(function (me) { state.scopes = me.scopes })
    var s = tokenScope()
    if (s.r && s.r.length) return api('GET', '/v1/runs/' + encodeURIComponent(s.r[0]))
    if (!s.w && !s.t) return Promise.reject(new Error('not an API key or a subscriber token'))
    return Promise.resolve()
  }
  document.getElementById('signout').addEventListener('click', function () { sessionStorage.removeItem(STORE); state.cred = ''; state.scopes = null; stopSockets(); location.hash = '#/'; renderSignIn() })
  function stopSockets() {
    if (state.feed) { state.feed.close(); state.feed = null }
    if (state.runSock) { state.runSock.close(); state.runSock = null }
  }

  // ---- runs list ----
  function matches(r) {
    var f = state.filters
    return (!f.workflow || r.workflow_id === f.workflow) && (!f.status || r.status === f.status) && (!f.tag || (r.tags || []).indexOf(f.tag) >= 0)
  }
  function loadRuns() {
    if (!isKey()) {
      var s = tokenScope()
      return Promise.all((s.r || []).map(function (id) { return api('GET', '/v1/runs/' + encodeURIComponent(id)).then(upsert, function () {}) }))
    }
    var q = new URLSearchParams({ limit: '100' })
    if (state.filters.workflow) q.set('workflow_id', state.filters.workflow)
    if (state.filters.status) q.set('status', state.filters.status)
    if (state.filters.tag) q.set('tag', state.filters.tag)
    return api('GET', '/v1/runs?' + q).then(function (page) { state.runs.clear(); page.items.forEach(function (r) { state.runs.set(r.id, r) }) })
  }
  function upsert(r) { state.runs.set(r.id, r) }
  var refetching = new Map()
  function refetch(id) {
    if (refetching.has(id)) return
    refetching.set(id, setTimeout(function () {
      api('GET', '/v1/runs/' + encodeURIComponent(id)).then(function (r) { refetching.delete(id); upsert(r); paintRows([id]) }, function () { refetching.delete(id) })
    }, 120))
  }
  function onFeedEvent(e) {
    var r = state.runs.get(e.run_id)
    if (r) { r.status = e.status; if (typeof e.data.progress === 'number') r.progress = e.data.progress; if (e.data.message) r.message = e.data.message }
    else state.runs.set(e.run_id, r = { id: e.run_id, workflow_id: e.workflow_id, status: e.status, tags: e.tags, created_at: e.at, started_at: null, duration_ms: null, upstream_id: null, progress: null })
    paintRows([e.run_id])
    refetch(e.run_id)
  }
  function row(r) {
    var p = typeof r.progress === 'number' ? Math.round(r.progress * 100) : null
    return h('tr', { 'data-run': r.id, onclick: function () { location.hash = '#/runs/' + r.id } },
      h('td', { class: 'c-id' }, h('a', { class: 'mono', href: '#/runs/' + r.id, text: r.id }), h('div', { class: 'small muted' }, (r.tags || []).map(function (t) { return h('span', { class: 'tag', text: t }) }))),
      h('td', { class: 'c-status' }, chip(r.status)),
      h('td', { class: 'c-wf', text: wfName(r.workflow_id) }),
      h('td', { class: 'c-up mono', text: r.upstream_id || '—' }),
      h('td', { class: 'c-prog' }, p === null ? h('span', { class: 'muted', text: r.message || '' }) : h('div', { class: 'row' }, h('div', { class: 'bar', title: p + '%' }, h('i', { style: 'width:' + p + '%' })), h('span', { class: 'small muted', text: p + '%' }))),
      h('td', { class: 'c-dur', 'data-dur': r.id, text: fmtDur(durationOf(r)) }),
      h('td', { class: 'c-created small muted', text: ago(r.created_at) }))
  }
  function sorted() { return Array.from(state.runs.values()).filter(matches).sort(function (a, b) { return a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0 }).slice(0, 200) }
  function paintRows(changed) {
    var body = document.getElementById('runs-body')
    if (!body) return
    var list = sorted()
    var rows = list.map(function (r) {
      var el = row(r)
      if (changed && changed.indexOf(r.id) >= 0) el.classList.add('flash')
      return el
    })
    body.replaceChildren.apply(body, rows)
    document.getElementById('runs-empty').classList.toggle('hidden', list.length > 0)
    document.getElementById('runs-count').textContent = list.length + (list.length === 1 ? ' run' : ' runs')
  }
  function renderList() {
    state.view = 'list'
    var wfSel = h('select', { id: 'f-workflow', onchange: function () { state.filters.workflow = wfSel.value; reload() } }, h('option', { value: '', text: 'All workflows' }),
      state.workflows.map(function (w) { return h('option', { value: w.id, text: w.name, selected: state.filters.workflow === w.id }) }))
    var stSel = h('select', { id: 'f-status', onchange: function () { state.filters.status = stSel.value; reload() } }, h('option', { value: '', text: 'Any status' }),
      STATUSES.map(function (s) { return h('option', { value: s, text: s.replace('_', ' '), selected: state.filters.status === s }) }))
    var tagIn = h('input', { id: 'f-tag', placeholder: 'tag', value: state.filters.tag, onchange: function () { state.filters.tag = tagIn.value.trim(); reload() } })
    app.replaceChildren(
      h('div', { class: 'row', style: 'margin-bottom:14px' }, h('div', null, h('h1', { text: 'Runs' }), h('div', { class: 'small muted', id: 'runs-count' })), h('span', { class: 'spacer' }),
        canWrite() ? h('button', { class: 'primary', id: 'trigger-btn', onclick: openTrigger, text: 'Trigger run' }) : null),
      h('div', { class: 'card' },
        h('div', { class: 'filters' }, h('label', null, 'Workflow', wfSel), h('label', null, 'Status', stSel), h('label', null, 'Tag', tagIn),
          h('span', { class: 'spacer' }), h('button', { onclick: function () { state.filters = { workflow: '', status: '', tag: '' }; renderList(); reload() }, text: 'Clear' })),
        h('table', null, h('thead', null, h('tr', null, ['Run', 'Status', 'Workflow', 'Upstream id', 'Progress', 'Duration', 'Created'].map(function (t) { return h('th', { text: t }) }))),
          h('tbody', { id: 'runs-body' })),
        h('div', { id: 'runs-empty', class: 'empty hidden', text: 'No runs match. Trigger one, or clear the filters.' })))
    paintRows()
  }
  function reload() { return loadRuns().then(function () { paintRows() }, function (e) { toast(e.message) }) }
  function startFeed() {
    if (state.feed) return
    var after
    if (!isKey()) {
      var s = tokenScope(), kinds = (s.r ? 1 : 0) + (s.w ? 1 : 0) + (s.t ? 1 : 0)
      if (kinds !== 1) return
      after = 0 // a token's feed replays its scope from the start: that is how its runs are found
    }
    state.feed = socket('/v1/stream', { after: after, key: function (e) { return e.id }, onEvent: onFeedEvent, onState: setLive })
  }

  // ---- trigger ----
  function openTrigger() {
    var sel = document.getElementById('tr-wf')
    sel.replaceChildren.apply(sel, state.workflows.map(function (w) { return h('option', { value: w.id, text: w.name }) }))
    if (state.filters.workflow) sel.value = state.filters.workflow
    document.getElementById('trigger-dlg').showModal()
  }
  document.getElementById('tr-cancel').addEventListener('click', function () { document.getElementById('trigger-dlg').close() })
  document.getElementById('trigger-form').addEventListener('submit', function (e) {
    e.preventDefault()
    var vars
    try { vars = JSON.parse(document.getElementById('tr-vars').value || '{}') } catch (err) { toast('Variables must be JSON'); return }
    var tags = document.getElementById('tr-tags').value.split(',').map(function (s) { return s.trim() }).filter(Boolean)
    api('POST', '/v1/workflows/' + encodeURIComponent(document.getElementById('tr-wf').value) + '/runs', { variables: vars, tags: tags }).then(function (r) {
      document.getElementById('trigger-dlg').close(); upsert(r); paintRows([r.id]); toast('Triggered ' + r.id)
    }, function (err) { toast(err.status === 403 ? 'This key may not trigger runs (runs:write)' : err.message) })
  })

  // ---- one run ----
  function renderRun(id) {
    state.view = 'run'; state.runId = id
    var timeline = h('ol', { class: 'timeline', id: 'timeline' })
    var head = h('div', { id: 'run-head' })
    var result = h('div', { id: 'run-result' })
    app.replaceChildren(h('div', { class: 'small', style: 'margin-bottom:10px' }, h('a', { href: '#/', text: '← All runs' })), head,
      h('div', { class: 'cols' }, h('div', { class: 'card pad' }, h('h2', { text: 'Timeline' }), timeline), h('div', { class: 'card pad' }, h('h2', { text: 'Result' }), result)))
    var run = null
    function paint() {
      if (!run) return
      var canAct = canWrite() && !TERMINAL[run.status]
      head.replaceChildren(h('div', { class: 'card pad' },
        h('div', { class: 'row' }, h('h1', { class: 'mono', text: run.id }), chip(run.status), h('span', { class: 'spacer' }),
          canAct && run.status === 'running' ? h('button', { onclick: function () { command('pause') }, text: 'Pause' }) : null,
          canAct && run.status === 'paused' ? h('button', { onclick: function () { command('resume') }, text: 'Resume' }) : null,
          canAct ? h('button', { class: 'danger', id: 'cancel-btn', onclick: function () { if (confirm('Cancel this run?')) command('cancel') }, text: 'Cancel' }) : null),
        h('div', { class: 'grid', style: 'margin-top:12px' },
          kv('Workflow', wfName(run.workflow_id)), kv('Upstream id', run.upstream_id || '—', true), kv('Upstream status', run.upstream_status || '—'),
          kv('Created', run.created_at ? new Date(run.created_at).toLocaleString() : '—'), kv('Duration', fmtDur(durationOf(run)) || '—', false, 'run-dur'),
          kv('Progress', typeof run.progress === 'number' ? Math.round(run.progress * 100) + '%' : '—'), kv('Message', run.message || '—')),
        (run.tags || []).length ? h('div', { style: 'margin-top:10px' }, run.tags.map(function (t) { return h('span', { class: 'tag', text: t }) })) : null))
      result.replaceChildren.apply(result, [
        run.error ? h('div', null, h('div', { class: 'chip failed', text: 'error' }), h('pre', { text: JSON.stringify(run.error, null, 2) })) : null,
        run.result !== null && run.result !== undefined ? h('pre', { id: 'result-json', text: JSON.stringify(run.result, null, 2) }) : (!run.error ? h('p', { class: 'muted', text: TERMINAL[run.status] ? 'No result.' : 'The result appears here when the run finishes.' }) : null)].filter(Boolean))
    }
    function kv(k, v, mono, id) { return h('div', { class: 'kv' }, h('b', { text: k }), h('span', { class: mono ? 'mono' : '', id: id, text: v })) }
    function command(name) {
      api('POST', '/v1/runs/' + encodeURIComponent(id) + '/' + name, {}).then(function (r) { run = r; paint() }, function (err) { toast(err.status === 403 ? 'This key may not ' + name + ' runs (runs:write)' : err.message) })
    }
    function refresh() { return api('GET', '/v1/runs/' + encodeURIComponent(id)).then(function (r) { if (state.runId === id) { run = r; upsert(r); paint() } }) }
    refresh().then(function () {
      state.runSock = socket('/v1/runs/' + encodeURIComponent(id) + '/stream', { after: 0, key: function (e) { return e.seq }, onState: setLive, onEvent: function (e) {
        timeline.appendChild(h('li', { class: e.type === 'run.status_changed' ? e.status : '' },
          h('div', { class: 'ev-head' }, h('b', { text: e.type.replace('run.', '') }), e.type === 'run.status_changed' ? chip(e.status) : null, h('span', { class: 'small muted', text: '#' + e.seq + ' · ' + new Date(e.at).toLocaleTimeString() })),
          Object.keys(e.data || {}).length ? h('pre', { text: JSON.stringify(e.data, null, 2) }) : null))
        if (run) { run.status = e.status; paint() }
        clearTimeout(renderRun.t); renderRun.t = setTimeout(refresh, 150)
      } })
    }, function (err) { app.replaceChildren(h('div', { class: 'card pad' }, h('h1', { text: 'Run not found' }), h('p', { class: 'muted', text: err.message }), h('a', { href: '#/', text: '← All runs' }))) })
  }

  // ---- routing ----
  function route() {
    if (!state.cred) return renderSignIn()
    document.getElementById('signout').classList.remove('hidden')
    if (state.runSock) { state.runSock.close(); state.runSock = null }
    var m = /^#\/runs\/([\w-]+)/.exec(location.hash)
    var wf = isKey() ? api('GET', '/v1/workflows?limit=200').then(function (p) { state.workflows = p.items }, function () {}) : Promise.resolve()
    var me = isKey() && !state.scopes ? api('GET', '/v1/me').then(function (r) { state.scopes = r.scopes }, function () {}) : Promise.resolve()
    Promise.all([wf, me]).then(function () {
      if (m) { if (state.feed) { state.feed.close(); state.feed = null } return renderRun(m[1]) }
      renderList(); reload().then(startFeed)
    })
  }
  window.addEventListener('hashchange', route)
  setInterval(function () {
    document.querySelectorAll('[data-dur]').forEach(function (el) { var r = state.runs.get(el.getAttribute('data-dur')); if (r) el.textContent = fmtDur(durationOf(r)) })
    var d = document.getElementById('run-dur'); var r = state.runs.get(state.runId); if (d && r && state.view === 'run') d.textContent = fmtDur(durationOf(r)) || '—'
  }, 1000)
  route()
})()
</script>
</body>
</html>
`
