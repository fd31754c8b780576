/**
 * @runrelay/elements: `<runrelay-run>` and `<runrelay-runs>`, custom elements that show runs
 * live with no framework. Import `@runrelay/elements/define` (or load the server's `/embed.js`)
 * to register them; this module itself registers nothing and is safe to import on a server.
 */
import { watchRun, watchRuns, type Live, type RunsView, type RunSnapshot, type RunView } from '@runrelay/client'

// On a server there is no HTMLElement: the classes still load, they are just never defined.
const Base = (typeof HTMLElement === 'undefined' ? class {} : HTMLElement) as typeof HTMLElement

const CSS = `
:host{display:block;font:14px/1.4 system-ui,sans-serif;color:#1f2328}
.row{display:flex;gap:.5em;align-items:center;flex-wrap:wrap}
.status{font-weight:600;padding:.1em .5em;border-radius:1em;background:#eaeef2}
.status.completed{background:#dafbe1;color:#116329}.status.failed,.status.timed_out{background:#ffebe9;color:#a40e26}
.status.running{background:#ddf4ff;color:#0550ae}.status.canceled{background:#fff8c5;color:#7d4e00}
progress{width:10em}.muted{color:#656d76}.error{color:#a40e26}
table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:left;border-bottom:1px solid #d0d7de}
dl{margin:.4em 0}dt{font-weight:600}dd{margin:0 0 .3em 1em;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px}
`

/** Styles as a constructed stylesheet where the browser has them (a page's CSP does not block those), else a <style>. */
function style(root: ShadowRoot): void {
  if ('adoptedStyleSheets' in root && typeof CSSStyleSheet !== 'undefined' && 'replaceSync' in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet()
    sheet.replaceSync(CSS)
    root.adoptedStyleSheets = [sheet]
  } else {
    const el = document.createElement('style')
    el.textContent = CSS
    root.append(el)
  }
}

/** An element with text only (never innerHTML: run data comes from upstreams). */
function h(tag: string, attrs: Record<string, string> = {}, ...children: Array<Node | string | null | undefined>): HTMLElement {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v)
  for (const c of children) if (c !== null && c !== undefined) el.append(c)
  return el
}

const short = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v, null, 1)
  return s.length > 500 ? `${s.slice(0, 500)}…` : s
}
const duration = (ms: number | undefined) => (ms === undefined ? '' : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`)

abstract class LiveElement<V> extends Base {
  protected live: Live<V> | undefined
  /** Called for a fresh token before the current one expires (set as a property). */
  refreshToken: (() => Promise<string>) | undefined
  private root: ShadowRoot | undefined
  private body: HTMLElement | undefined

  connectedCallback(): void {
    if (!this.root) {
      this.root = this.attachShadow({ mode: 'open' })
      style(this.root)
      this.body = h('div', { part: 'body' })
      this.root.append(this.body)
    }
    this.restart()
  }

  disconnectedCallback(): void {
    this.live?.close()
    this.live = undefined
  }

  attributeChangedCallback(_name: string, old: string | null, value: string | null): void {
    // During an upgrade this runs before connectedCallback, which starts the element anyway.
    if (old !== value && this.root && this.isConnected) this.restart()
  }

  protected get url(): string | undefined { return this.getAttribute('url') ?? undefined }
  protected get token(): string | undefined { return this.getAttribute('token') ?? undefined }

  protected abstract open(): Live<V> | undefined
  protected abstract render(value: V): Array<Node | string>

  private restart(): void {
    this.live?.close()
    this.live = this.open()
    this.live?.subscribe((v) => {
      this.body!.replaceChildren(...this.render(v))
      this.dispatchEvent(new CustomEvent('runrelay-update', { detail: v }))
    })
  }
}

/** `<runrelay-run run-id="run_…" token="…" url="https://relay.example.com">`: one run, live. */
export class RunRelayRunElement extends LiveElement<RunView> {
  static observedAttributes: string[] = ['run-id', 'token', 'url']

  /** The run's current snapshot. */
  get run(): RunSnapshot | undefined { return this.live?.get().run }

  protected open(): Live<RunView> | undefined {
    const runId = this.getAttribute('run-id')
    if (!runId) return undefined
    return watchRun({
      url: this.url, token: this.token, runId, refreshToken: this.refreshToken && (() => this.refreshToken!()),
      onComplete: (run) => this.dispatchEvent(new CustomEvent('runrelay-complete', { detail: run })),
    })
  }

  protected render({ run, state, error }: RunView): Array<Node | string> {
    const status = run.status ?? 'connecting'
    const outputs = Object.entries(run.outputs)
    return [
      h('div', { class: 'row' },
        h('span', { class: `status ${status}`, part: 'status' }, status),
        run.progress !== undefined ? h('progress', { max: '1', value: String(run.progress), part: 'progress' }) : null,
        run.message ? h('span', { part: 'message' }, run.message) : null,
        run.finished ? h('span', { class: 'muted' }, duration(run.durationMs)) : null,
        state !== 'open' && !run.finished ? h('span', { class: 'muted', part: 'connection' }, state) : null),
      run.error ? h('div', { class: 'error', part: 'error' }, `${run.error.code}: ${run.error.message}`) : '',
      outputs.length ? h('dl', { part: 'outputs' }, ...outputs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, short(v))])) : '',
      run.result !== undefined ? h('dl', { part: 'result' }, h('dt', {}, 'result'), h('dd', {}, short(run.result))) : '',
      error && !run.finished && state === 'closed' ? h('div', { class: 'error' }, error.message) : '',
    ]
  }
}

/**
 * `<runrelay-runs workflow-id="wf_…" status="running,failed" tag="…" token="…">`: a live table of
 * runs. With an API key it starts from the current list; a token cannot list, so it starts at
 * the live end, or replays the feed after the event id in `after` (`after="0"`: all history in scope).
 */
export class RunRelayRunsElement extends LiveElement<RunsView> {
  static observedAttributes: string[] = ['workflow-id', 'status', 'tag', 'token', 'url', 'limit', 'after']

  protected open(): Live<RunsView> {
    const list = (name: string) => this.getAttribute(name)?.split(',').map((s) => s.trim()).filter(Boolean)
    return watchRuns({
      url: this.url, token: this.token, refreshToken: this.refreshToken && (() => this.refreshToken!()),
      workflowId: list('workflow-id'), status: list('status') as never, tag: list('tag'), limit: Number(this.getAttribute('limit') ?? 50),
      after: this.hasAttribute('after') ? Number(this.getAttribute('after')) : undefined,
    })
  }

  protected render({ runs, state }: RunsView): Array<Node | string> {
    const rows = runs.map((r) => h('tr', { part: 'row' },
      h('td', {}, r.id), h('td', {}, h('span', { class: `status ${r.status ?? ''}` }, r.status ?? '')),
      h('td', {}, r.progress !== undefined ? `${Math.round(r.progress * 100)}%` : ''), h('td', {}, duration(r.durationMs))))
    return [
      h('table', { part: 'table' }, h('thead', {}, h('tr', {}, h('th', {}, 'run'), h('th', {}, 'status'), h('th', {}, 'progress'), h('th', {}, 'duration'))), h('tbody', {}, ...rows)),
      runs.length === 0 ? h('div', { class: 'muted' }, state === 'open' ? 'no runs yet' : state) : '',
    ]
  }
}

/** Register `<runrelay-run>` and `<runrelay-runs>` (once; a second call does nothing). */
export function defineRunRelayElements(registry: CustomElementRegistry = customElements): void {
  if (!registry.get('runrelay-run')) registry.define('runrelay-run', RunRelayRunElement)
  if (!registry.get('runrelay-runs')) registry.define('runrelay-runs', RunRelayRunsElement)
}
