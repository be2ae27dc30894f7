// The page canvas renders a draft page with the portal's own runtime (the Lit elements of
// src/plinth/pages/runtime-js), so tables and forms show the app's records as they will in the
// portal. It lives in a shadow root with the portal's stylesheet, apart from the IDE's styles.
// Design mode: clicks select components instead of acting (no record is created by a click).

import { me, token } from '../api'
import type { Json } from '../dom'
import { type Draft, sorted } from '../sync'

export interface Runtime {
  bind: (value: Json, scope: Json) => Json
  auth: { keep: (app: Json, data: Json) => Json }
}

let loading: Promise<Runtime | null> | null = null

/** The portal runtime module (content-hashed URL from the component catalogue), loaded once. */
export function loadRuntime (url: string | null | undefined): Promise<Runtime | null> {
  if (!url) return Promise.resolve(null)
  loading ??= import(/* @vite-ignore */ url).catch((e) => { console.warn('plinth: canvas runtime', e); return null })
  return loading
}

const TAGS: Record<string, string> = { table: 'plinth-table', form: 'plinth-form', detail: 'plinth-detail', chart: 'plinth-chart', task_inbox: 'plinth-task-inbox', button: 'plinth-button', tabs: 'plinth-tabs' }
export const realTag = (kind: string): string | undefined => TAGS[kind]

/** The part of the draft the runtime needs (as src/plinth/compiler/targets/spec.py app_spec builds it). */
export function appSpec (draft: Draft): Json {
  const entities: Record<string, Json> = {}
  for (const [, e] of sorted(draft.entities)) {
    const fields: Record<string, Json> = {}
    for (const [, f] of sorted(e.get('fields'))) {
      const spec = { ...(f as Json).get('attrs').toJSON() }
      if (spec.computed) spec.computed = true
      fields[(f as Json).get('name')] = spec
    }
    const attrs = e.get('attrs').toJSON()
    entities[e.get('name')] = { label: attrs.label ?? e.get('name'), fields, title_field: attrs.title_field }
  }
  return { tenant: draft.tenant, slug: draft.app, name: draft.app, version: 0, hash: 'draft', pages: {}, components: {}, entities }
}

/** Real elements by component, reused while the component's definition is unchanged (a
 * redraw after someone else's edit must not reload every table on the page). */
export class ElementCache {
  private items = new Map<string, { sig: string, el: HTMLElement }>()
  private spec = ''

  constructor (private draft: Draft) {}

  element (rt: Runtime, id: string, node: Json, page: Json): HTMLElement {
    const tag = realTag(node.kind) as string
    const app = appSpec(this.draft)
    const specSig = JSON.stringify(app.entities)
    if (specSig !== this.spec) { this.items.clear(); this.spec = specSig }
    // The IDE's own credential reads the records, as the designer may see them; handed over
    // on every draw, since a session's access token is renewed every few minutes.
    rt.auth.keep(app, { access_token: token(), user: me() ?? { id: 'designer' }, expires_in: 86400 })
    const sig = JSON.stringify(node)
    const found = this.items.get(id)
    if (found && found.sig === sig) return found.el
    const el = document.createElement(tag)
    Object.assign(el, { node: { id, ...node }, scope: { state: {}, params: {}, user: me() ?? {}, page: { name: page.name, title: page.title } }, app, portal: PORTAL, page: PAGE })
    this.items.set(id, { sig, el })
    return el
  }
}

// What actions would reach: nothing happens in design mode.
const PORTAL = { user: {}, navigate: () => undefined }
const PAGE = { setState: () => undefined, refresh: () => undefined }

/** Styles of the canvas: the portal's, plus the outlines of selection and drop targets. */
export function canvasStyles (portalCss: string): string {
  return `${portalCss.replace(/:root/g, ':host')}
:host{display:block;background:#f5f6f8;padding:1rem;border-radius:8px;min-height:320px}
.comp{position:relative;outline:1px dashed transparent;outline-offset:2px;border-radius:4px;margin:2px 0}
.comp:hover{outline-color:#98a2b3}.comp.selected{outline:2px solid #1971c2}
.comp.selected-by{outline:2px solid var(--c)}.comp.invalid{outline:2px solid #b42318}
.comp-badge{position:absolute;top:-.7rem;left:.3rem;font:11px system-ui;background:#1971c2;color:#fff;padding:0 .35rem;border-radius:3px;display:none;z-index:2}
.comp.selected>.comp-badge,.comp:hover>.comp-badge{display:block}.comp.invalid>.comp-badge{display:block;background:#b42318}
.comp-errors{color:#b42318;font:12px system-ui}
.drop-before{box-shadow:0 -3px 0 #1971c2}
.dropzone{border:2px dashed #c4c9d4;border-radius:6px;padding:.6rem;color:#667085;font:13px system-ui;text-align:center}
.dropzone.over{border-color:#1971c2;background:#e7f0fb}
.placeholder{border:1px dashed #98a2b3;padding:.6rem;color:#667085;font:13px system-ui;border-radius:6px}`
}
