/**
 * The live dashboard served at `/`: an HTML shell with inline CSS and the bundled page
 * (src/http/ui/dashboard/*.tsx, hono/jsx/dom, bundled by `npm run build:ui` into
 * dashboard.generated.ts), so every runtime serves it from memory with no CDN. `__NONCE__`
 * is replaced per response (CSP nonce).
 */
import { DASHBOARD_JS } from './dashboard.generated.ts'
import { pageHead } from './page.ts'

export const DASHBOARD_HTML = String.raw`${pageHead('runrelay')}
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
.dlg-body{padding:18px;display:flex;flex-direction:column;gap:12px}.dlg-body label{display:flex;flex-direction:column;gap:4px;font-size:.85rem}
nav{display:flex;gap:4px}nav a{padding:6px 10px;border-radius:8px;color:var(--muted)}nav a.on{background:var(--accent-2);color:var(--accent)}
.head{margin-bottom:14px}.crumbs{margin-bottom:10px}.section{margin-top:16px}.tags{margin-top:10px}
.filters .grow{flex:2 1 220px}.filters .grow input{width:100%}
.toggles{display:flex;flex-wrap:wrap;gap:6px;flex-basis:100%}
.toggle{padding:3px 10px;border-radius:999px;font-size:.8rem}.toggle.on{background:var(--accent);border-color:var(--accent);color:#fff}
.presets{display:flex;gap:4px;align-self:flex-end}
button.link{border:0;background:none;color:var(--accent);padding:4px 6px}
.more{padding:12px;text-align:center}
progress{width:80px;height:8px;accent-color:var(--accent)}
.modal{position:fixed;inset:0;background:rgba(0,0,0,.35);display:flex;align-items:center;justify-content:center;z-index:30;padding:12px}
.modal .card{width:min(520px,100%)}
.dlg-body{padding:18px;display:flex;flex-direction:column;gap:12px}.dlg-body label{display:flex;flex-direction:column;gap:4px;font-size:.85rem}
details.json{margin:8px 0;border:1px solid var(--line);border-radius:8px}
details.json>summary{display:flex;gap:8px;align-items:center;padding:6px 10px;cursor:pointer;font-weight:600;font-size:.9rem}
details.json>summary>span:first-child{flex:1}
details.json pre{margin:0;border:0;border-top:1px solid var(--line);border-radius:0 0 8px 8px}
.error-box details.json{border-color:var(--bad)}
.waterfall svg{width:100%;height:auto;max-height:220px;display:block;background:var(--bg);border-radius:8px}
.ph{fill:var(--idle)}.ph.running{fill:var(--run)}.ph.paused{fill:var(--warn)}.ph.queued,.ph.scheduled{fill:var(--idle)}
.mk{stroke-width:.3}.mk.output{stroke:var(--ok)}.mk.progress{stroke:var(--accent)}.mk.error{stroke:var(--bad)}.mk.command{stroke:var(--warn)}
.phase-list{list-style:none;padding:0;margin:10px 0 0;display:flex;flex-wrap:wrap;gap:8px 18px}
.marks{margin-top:8px;display:flex;flex-wrap:wrap;gap:4px 12px}.mark.error{color:var(--bad)}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px}
.stat{display:flex;flex-direction:column;gap:4px}.stat b{font-size:.72rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}.stat span{font-size:1.5rem;font-weight:700}
svg.chart{width:100%;height:160px;display:block;background:var(--bg);border-radius:8px;margin-bottom:16px}svg.small-chart{height:70px}
.bar-completed{fill:var(--ok)}.bar-failed{fill:var(--bad)}.bar-timed_out{fill:#f97066}.bar-canceled{fill:var(--idle)}.bar-running{fill:var(--run)}
.legend{display:flex;flex-wrap:wrap;gap:12px;margin:-8px 0 14px}.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.sw.bar-completed{background:var(--ok)}.sw.bar-failed{background:var(--bad)}.sw.bar-timed_out{background:#f97066}.sw.bar-canceled{background:var(--idle)}.sw.bar-running{background:var(--run)}
.axis{display:flex;justify-content:space-between}
.onboarding ol{padding-left:20px;line-height:1.8}.onboarding code{background:var(--bg);padding:1px 5px;border-radius:4px;word-break:break-all}
.bad{color:var(--bad)}
.live.live .dot{background:#12b76a;box-shadow:0 0 0 3px rgba(18,183,106,.2)}.live.retrying .dot,.live.connecting .dot{background:#f79009}.live.finished .dot{background:var(--ok)}.live.refused .dot{background:var(--bad)}
.form{display:flex;flex-direction:column;gap:12px}.form label{display:flex;flex-direction:column;gap:4px;font-size:.85rem}
.form label.check,label.check{flex-direction:row;align-items:center;gap:6px;font-size:.85rem}
fieldset{border:1px solid var(--line);border-radius:8px;padding:10px 12px;margin:0;min-width:0}legend{font-size:.85rem;font-weight:600;padding:0 4px}
.creds{display:flex;flex-direction:column;gap:8px}.cred-row input{flex:1 1 140px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:10px 14px}
.fields{display:flex;flex-direction:column;gap:10px}.fields label{display:flex;flex-direction:column;gap:4px;font-size:.85rem}.fields label.check{flex-direction:row}
a.btn{display:inline-block;color:var(--text)}a.btn.primary{background:var(--accent);border-color:var(--accent);color:#fff}a.btn:hover{text-decoration:none;border-color:var(--accent)}
.once{border-color:var(--warn);margin-bottom:16px}.secret{user-select:all;word-break:break-all;white-space:pre-wrap}
table.list tbody tr{cursor:default}td.actions{text-align:right;white-space:nowrap}td.wrap{word-break:break-all}tr.revoked{opacity:.55}tr.on{background:var(--accent-2)}
.ok{color:var(--ok)}.tag.bad{background:var(--bad-bg);color:var(--bad)}.delivery-succeeded{background:var(--ok-bg);color:var(--ok)}.delivery-failed{background:var(--bad-bg);color:var(--bad)}
header{flex-wrap:wrap}nav{overflow-x:auto;max-width:100%}
@media (max-width:760px){
 nav{order:10;flex-basis:100%;flex-wrap:wrap}td.actions{text-align:left}
 header{padding:10px 12px;gap:8px}main{padding:12px}#live-text{display:none}header button{padding:6px 9px}.cols{grid-template-columns:1fr}
 thead{display:none}table,tbody{display:block;width:100%}
 tbody tr{padding:10px 12px;border-bottom:1px solid var(--line);display:grid;grid-template-columns:minmax(0,1fr) auto;gap:3px 10px}
 td{display:block;border:0;padding:0;min-width:0;grid-column:1/3;overflow:hidden;text-overflow:ellipsis}
 td.c-id{grid-column:1;grid-row:1}td.c-status{grid-column:2;grid-row:1;text-align:right}
 td.c-wf,td.c-up,td.c-prog,td.c-created,td.c-dur{font-size:.85rem;color:var(--muted)}
 td.c-wf{grid-column:1}td.c-up{grid-column:2;text-align:right}td.c-dur{grid-column:1}td.c-created{grid-column:2;text-align:right}
 .hide-sm{display:none}
 .filters label{flex:1 1 40%}
 nav a{padding:6px 6px}.presets{flex-basis:100%}
}
</style>
</head>
<body>
<div id="root"></div>
<script nonce="__NONCE__">__BUNDLE__</script>
</body>
</html>
`.replace('__BUNDLE__', () => DASHBOARD_JS)
