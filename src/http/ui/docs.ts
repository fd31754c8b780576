/**
 * The API reference served at `/docs`: a small renderer of `/openapi.json` in one
 * self-contained page. Swagger UI, Redoc and Scalar all load from a CDN or need a bundle
 * step, so the page renders paths, parameters, bodies and responses itself (no CDN).
 * `__NONCE__` is replaced per response (CSP nonce); the script avoids backticks and dollar-brace.
 */
import { pageHead } from './page.ts'

export const DOCS_HTML = String.raw`${pageHead('runrelay API reference')}
:root{--bg:#f6f7f9;--panel:#fff;--text:#1b1f24;--muted:#667085;--line:#e4e7ec;--accent:#4f46e5;--accent-2:#eef2ff;--code:#f2f4f7}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--panel:#161b22;--text:#e6edf3;--muted:#8b949e;--line:#30363d;--accent:#818cf8;--accent-2:#1e1b4b;--code:#0d1117}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--text);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
a{color:var(--accent);text-decoration:none}
header{position:sticky;top:0;z-index:3;display:flex;flex-wrap:wrap;gap:8px 12px;align-items:center;padding:10px 20px;background:var(--panel);border-bottom:1px solid var(--line)}
header .links{display:flex;gap:12px;margin-left:auto;font-size:.9rem}
.brand{font-weight:700;display:flex;gap:8px;align-items:center;color:var(--text)}.logo{width:22px;height:22px;border-radius:6px;background:linear-gradient(135deg,#6366f1,#06b6d4)}
header input{flex:1 1 200px;min-width:0;max-width:360px;font:inherit;padding:6px 10px;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--text)}
.layout{display:grid;grid-template-columns:280px minmax(0,1fr);max-width:1360px;margin:0 auto}
nav{position:sticky;top:53px;align-self:start;max-height:calc(100vh - 53px);overflow:auto;padding:16px 10px 40px 20px;font-size:.85rem}
nav h4{margin:14px 0 4px;text-transform:uppercase;font-size:.7rem;letter-spacing:.06em;color:var(--muted)}
nav a{display:flex;gap:6px;align-items:flex-start;padding:3px 6px;border-radius:6px;color:var(--text);overflow-wrap:anywhere}nav a .m{flex:none}nav a:hover{background:var(--accent-2)}
main{padding:20px;min-width:0;overflow-wrap:anywhere}
.intro{margin-bottom:18px}.intro h1{margin:0 0 4px;font-size:1.5rem}
.muted{color:var(--muted)}
section.tag>h2{text-transform:capitalize;margin:26px 0 10px;font-size:1.15rem}
.op{background:var(--panel);border:1px solid var(--line);border-radius:10px;margin-bottom:12px;overflow:hidden}
.op>summary{list-style:none;cursor:pointer;display:flex;gap:10px;align-items:center;padding:10px 14px;flex-wrap:wrap}
.op>summary::-webkit-details-marker{display:none}
.op[open]>summary{border-bottom:1px solid var(--line)}
.m{font:700 .72rem ui-monospace,monospace;text-transform:uppercase;padding:3px 7px;border-radius:5px;color:#fff;min-width:58px;text-align:center}
.m.get{background:#0e9384}.m.post{background:#4f46e5}.m.patch{background:#b54708}.m.delete{background:#d92d20}.m.put{background:#7a5af8}
.path{font:600 .9rem ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}.sum{color:var(--muted);font-size:.9rem}
.body{padding:12px 16px}
h3{font-size:.78rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);margin:14px 0 6px}
table{border-collapse:collapse;width:100%;font-size:.86rem}td,th{padding:6px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:.72rem;color:var(--muted);text-transform:uppercase}
code,.t{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.82rem}
.t{color:#0e9384}.req{color:#d92d20;font-size:.72rem;margin-left:4px}
.schema{font-size:.85rem;border-left:2px solid var(--line);padding-left:10px;margin:4px 0}
.prop{padding:3px 0}.prop>.n{font:600 .84rem ui-monospace,monospace}.d{color:var(--muted);font-size:.82rem}
.badge{display:inline-block;font-size:.72rem;padding:1px 7px;border-radius:999px;background:var(--accent-2);color:var(--accent);margin-left:6px}
.code{display:inline-block;font:700 .78rem ui-monospace,monospace;padding:1px 6px;border-radius:5px;background:var(--code);border:1px solid var(--line)}
.resp{margin:6px 0 10px}
.hidden{display:none!important}
.ref{font:600 .78rem ui-monospace,monospace;color:var(--accent)}
.desc p{margin:0 0 8px}
@media (max-width:800px){.layout{grid-template-columns:1fr}nav{display:none}main{padding:12px}}
@media (max-width:600px){header{padding:8px 12px}header .sub{display:none}header input{order:3;flex-basis:100%;max-width:none}.op>summary{padding:10px}.body{padding:10px}.m{min-width:0}table.params,table.params tbody,table.params tr,table.params td{display:block;width:100%}table.params tr.head{display:none}table.params tr{padding:6px 0;border-bottom:1px solid var(--line)}table.params td{border:0;padding:1px 0}}
</style>
</head>
<body>
<header><a class="brand" href="/"><span class="logo"></span>runrelay</a><span class="muted sub">API reference</span><input id="q" type="search" placeholder="Filter: path, summary, tag…" aria-label="Filter operations"><span class="links"><a href="/openapi.json">openapi.json</a><a href="/asyncapi.json">asyncapi.json</a></span></header>
<div class="layout"><nav id="nav"></nav><main id="main"><p class="muted">Loading /openapi.json…</p></main></div>
<script nonce="__NONCE__">
(function () {
  'use strict'
  function h(tag, attrs) {
    var el = document.createElement(tag)
    if (attrs) for (var k in attrs) {
      var v = attrs[k]; if (v === undefined || v === null || v === false) continue
      if (k === 'text') el.textContent = v; else if (k === 'class') el.className = v; else el.setAttribute(k, v === true ? '' : v)
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i]; if (c === null || c === undefined || c === false) continue
      if (Array.isArray(c)) c.forEach(function (x) { if (x) el.appendChild(typeof x === 'string' ? document.createTextNode(x) : x) })
      else el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c)
    }
    return el
  }
  var spec
  function deref(s) {
    var seen = 0
    while (s && s.$ref && seen++ < 20) { var parts = s.$ref.replace(/^#\//, '').split('/'); s = parts.reduce(function (o, p) { return o && o[p] }, spec) }
    return s || {}
  }
  /** The component name of a schema reference (\x23/components/schemas/Run gives Run). */
  function refName(s) { return s && s.$ref ? s.$ref.split('/').pop() : null }
  function typeOf(s) {
    var name = refName(s)
    s = deref(s)
    if (name && (s.properties || s.enum)) return name
    if (s.const !== undefined) return JSON.stringify(s.const)
    if (s.enum) return s.enum.map(function (v) { return JSON.stringify(v) }).join(' | ')
    if (s.anyOf || s.oneOf) return (s.anyOf || s.oneOf).map(typeOf).join(' | ')
    if (s.type === 'array') return typeOf(s.items || {}) + '[]'
    var t = Array.isArray(s.type) ? s.type.join(' | ') : s.type || (s.properties ? 'object' : 'any')
    if (s.format) t += ' (' + s.format + ')'
    if (s.nullable) t += ' | null'
    return t
  }
  function constraints(s) {
    var c = []
    // zod bounds every integer by the safe-integer range: not worth a line.
    if (s.minimum !== undefined && s.minimum > -9007199254740991) c.push('≥ ' + s.minimum)
    if (s.maximum !== undefined && s.maximum < 9007199254740991) c.push('≤ ' + s.maximum)
    if (s.minLength !== undefined) c.push('min length ' + s.minLength)
    if (s.maxLength !== undefined) c.push('max length ' + s.maxLength)
    if (s.maxItems !== undefined) c.push('at most ' + s.maxItems + ' items')
    // A format (date-time, uri) says it better than the long pattern zod derives for it.
    if (s.pattern && !s.format) c.push('pattern ' + s.pattern)
    if (s.default !== undefined) c.push('default ' + JSON.stringify(s.default))
    return c.join(', ')
  }
  /** A JSON Schema as a nested list of properties (objects and arrays of objects expand). */
  function schemaView(s, depth) {
    var name = refName(s)
    s = deref(s); depth = depth || 0
    if (name && s.properties && depth === 0) return h('div', null, h('span', { class: 'ref', text: name }), schemaView(s, 1))
    if (depth > 6) return h('span', { class: 't', text: typeOf(s) })
    var variants = s.anyOf || s.oneOf
    if (variants && variants.some(function (v) { return deref(v).properties })) return h('div', null, variants.map(function (v, i) { return h('div', null, h('span', { class: 'd', text: i ? 'or' : 'one of' }), schemaView(v, depth + 1)) }))
    if (s.type === 'array' && deref(s.items).properties) return h('div', null, h('span', { class: 't', text: 'array of' }), schemaView(s.items, depth + 1))
    if (!s.properties) {
      var extra = s.additionalProperties && typeof s.additionalProperties === 'object' ? ' map of ' + typeOf(s.additionalProperties) : ''
      return h('div', null, h('span', { class: 't', text: typeOf(s) + extra }), s.description ? h('div', { class: 'd', text: s.description }) : null)
    }
    var req = s.required || []
    return h('div', { class: 'schema' }, Object.keys(s.properties).map(function (name) {
      var p = deref(s.properties[name])
      var nested = (p.properties || (p.type === 'array' && deref(p.items).properties) || ((p.anyOf || p.oneOf) && (p.anyOf || p.oneOf).some(function (v) { return deref(v).properties })))
      return h('div', { class: 'prop' }, h('span', { class: 'n', text: name }), req.indexOf(name) >= 0 ? h('span', { class: 'req', text: 'required' }) : null, ' ',
        h('span', { class: 't', text: typeOf(p) }), constraints(p) ? h('span', { class: 'd', text: ' · ' + constraints(p) }) : null,
        p.description ? h('div', { class: 'd', text: p.description }) : null, nested ? schemaView(p, depth + 1) : null)
    }))
  }
  /** Text with inline code spans (between backquotes) as code elements. */
  function md(text) {
    return String(text || '').split(/\x60([^\x60]*)\x60/).map(function (part, i) { return i % 2 ? h('code', { text: part }) : part })
  }
  /** Paragraphs (blank-line separated) of md text. */
  function paragraphs(text, cls) {
    return h('div', { class: 'desc ' + (cls || '') }, String(text || '').split(/\n\n+/).map(function (p) { return h('p', null, md(p)) }))
  }
  function opId(method, path) { return (method + path).replace(/[^\w]+/g, '-').replace(/-+$/, '') }
  function render(filter) {
    var f = (filter || '').toLowerCase()
    var byTag = {}
    Object.keys(spec.paths).forEach(function (path) {
      Object.keys(spec.paths[path]).forEach(function (method) {
        var op = spec.paths[path][method], tag = (op.tags && op.tags[0]) || 'other'
        if (f && (method + ' ' + path + ' ' + (op.summary || '') + ' ' + tag).toLowerCase().indexOf(f) < 0) return
        ;(byTag[tag] = byTag[tag] || []).push({ path: path, method: method, op: op })
      })
    })
    var nav = document.getElementById('nav'), main = document.getElementById('main')
    var tags = Object.keys(byTag)
    nav.replaceChildren.apply(nav, tags.map(function (t) {
      return h('div', null, h('h4', { text: t }), byTag[t].map(function (e) { return h('a', { href: '#' + opId(e.method, e.path) }, h('span', { class: 'm ' + e.method, text: e.method }), e.path) }))
    }))
    var info = spec.info || {}
    main.replaceChildren(h('div', null,
      h('div', { class: 'intro' }, h('h1', { text: (info.title || 'API') + ' ' + (info.version || '') }), paragraphs(info.description, 'muted'),
        h('p', { class: 'muted' }, 'Authenticate with ', h('code', { text: 'Authorization: Bearer <key>' }), ' or ', h('code', { text: 'X-API-Key' }), '. Streams also take a subscriber token as ', h('code', { text: '?token=' }), ' or the WebSocket subprotocol ', h('code', { text: 'runrelay.token.<token>' }), '. Errors are ', h('code', { text: '{"error":{"code","message","details"}}' }), '.')),
      tags.length ? null : h('p', { class: 'muted', text: 'No operation matches.' }),
      tags.map(function (t) { return h('section', { class: 'tag' }, h('h2', { text: t }), byTag[t].map(operation)) })))
  }
  function operation(e) {
    var op = e.op
    var params = (op.parameters || []).map(deref)
    var body = op.requestBody && op.requestBody.content && op.requestBody.content['application/json']
    var open = location.hash === '#' + opId(e.method, e.path)
    return h('details', { class: 'op', id: opId(e.method, e.path), open: open },
      h('summary', null, h('span', { class: 'm ' + e.method, text: e.method }), h('span', { class: 'path', text: e.path }), h('span', { class: 'sum' }, md(op.summary)),
        op.security && op.security.length === 0 ? h('span', { class: 'badge', text: 'no key' }) : null),
      h('div', { class: 'body' },
        op.description ? paragraphs(op.description, 'd') : null,
        params.length ? h('div', null, h('h3', { text: 'Parameters' }), h('table', { class: 'params' }, h('tr', { class: 'head' }, h('th', { text: 'name' }), h('th', { text: 'in' }), h('th', { text: 'type' }), h('th', { text: 'notes' })),
          params.map(function (p) { var s = deref(p.schema); return h('tr', null, h('td', null, h('code', { text: p.name }), p.required ? h('span', { class: 'req', text: 'required' }) : null), h('td', { text: p.in }), h('td', { class: 't', text: typeOf(s) }), h('td', { class: 'd' }, md([p.description || s.description, constraints(s)].filter(Boolean).join(' · ')))) }))) : null,
        body ? h('div', null, h('h3', { text: 'Request body (application/json)' }), schemaView(body.schema)) : null,
        h('h3', { text: 'Responses' }),
        Object.keys(op.responses || {}).map(function (code) {
          var r = deref(op.responses[code]), content = r.content || {}, headers = r.headers || {}
          return h('div', { class: 'resp' }, h('span', { class: 'code', text: code }), ' ', h('span', { class: 'd' }, md(r.description || '')),
            Object.keys(headers).map(function (name) { return h('div', { class: 'd' }, 'header ', h('code', { text: name }), ': ', md(deref(headers[name]).description || '')) }),
            Object.keys(content).map(function (ct) {
              var s = deref(content[ct].schema || {})
              if (ct !== 'application/json') return h('div', { class: 'd' }, h('code', { text: ct }), s.description ? ': ' : '', md(s.description || ''))
              // Error answers share one schema: name it instead of repeating it under every status.
              if (code !== '200' && code[0] !== '2' && refName(content[ct].schema)) return h('div', { class: 'd' }, ct + ': ', h('span', { class: 'ref', text: refName(content[ct].schema) }))
              return Object.keys(s).length ? h('div', null, h('div', { class: 'd', text: ct }), schemaView(content[ct].schema)) : null
            }))
        })))
  }
  fetch('/openapi.json').then(function (r) { return r.json() }).then(function (s) {
    spec = s; render('')
    var q = document.getElementById('q')
    q.addEventListener('input', function () { render(q.value) })
    if (location.hash) { var el = document.getElementById(location.hash.slice(1)); if (el) el.scrollIntoView() }
  }, function (err) { document.getElementById('main').textContent = 'Could not load /openapi.json: ' + err.message })
})()
</script>
</body>
</html>
`
