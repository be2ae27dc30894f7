// The shared draft: a Yjs document synced with the server room, presence, undo of one's own
// changes. Its shape mirrors src/plinth/designer/shape.py: maps keyed by stable id (or name),
// order kept in `pos`/`order` keys, nested maps created together with their node.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { appPath, token } from './api'
import type { Json } from './dom'

/** Origin of this person's own changes: the undo manager tracks only these. */
export const LOCAL = 'local-edit'
const COLORS = ['#d9480f', '#1971c2', '#2b8a3e', '#862e9c', '#c2255c', '#e67700', '#0b7285']

export interface Diagnostic { path: string, message: string, code: string }
export interface Person { id: number, name: string, color: string, me: boolean, selection: string | null }
export type YMap = Y.Map<Json>

export class Draft {
  readonly doc = new Y.Doc()
  readonly provider: WebsocketProvider
  readonly entities: Y.Map<YMap>
  readonly pages: Y.Map<YMap>
  readonly workflows: Y.Map<YMap>
  readonly policies: Y.Map<YMap>
  readonly sections: Y.Map<string> // other sections, JSON text edited whole
  readonly undo: Y.UndoManager
  readonly color = COLORS[Math.floor(Math.random() * COLORS.length)]
  diagnostics: Diagnostic[] = []
  canEdit = false
  synced = false
  status = 'connecting'
  private listeners = new Set<() => void>()

  constructor (public tenant: string, public app: string) {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws'
    // y-websocket appends the room name: …/draft + /sync is the server's sync endpoint.
    this.provider = new WebsocketProvider(`${proto}://${location.host}${appPath(tenant, app)}/draft`,
      'sync', this.doc, { params: { token: token() }, disableBc: true })
    this.entities = this.doc.getMap('entities')
    this.pages = this.doc.getMap('pages')
    this.workflows = this.doc.getMap('workflows')
    this.policies = this.doc.getMap('policies')
    this.sections = this.doc.getMap('sections')
    this.undo = new Y.UndoManager([this.entities, this.pages, this.workflows, this.policies, this.sections],
      { trackedOrigins: new Set([LOCAL]), captureTimeout: 300 })
    this.provider.awareness.setLocalStateField('user', { color: this.color })
    this.provider.on('status', (e: { status: string }) => {
      // a reconnect uses the current access token (a session's is renewed every few minutes)
      if (e.status !== 'connected') this.provider.params = { token: token() }
      this.status = e.status
      this.emit()
    })
    this.provider.on('sync', (ok: boolean) => { if (ok) { this.synced = true; this.emit() } })
    this.doc.on('update', () => this.emit())
    // My own awareness changes (a selection on focus) need no redraw: it would replace the
    // element being focused. Views that change with a selection call show().
    this.provider.awareness.on('change', (_: Json, origin: Json) => {
      if (origin === 'local') return
      this.readServerState()
      this.emit()
    })
  }

  destroy (): void { this.provider.destroy(); this.doc.destroy() }

  /** While a drag is under way, views hold their redraws (a redraw would cancel the drag). */
  dragging = false

  onChange (fn: () => void): void { this.listeners.add(fn) }
  /** Tell the views to redraw (also after a change of local view state). */
  emit (): void { for (const fn of this.listeners) fn() }

  /** Make a change as one undoable step of mine (nothing for a viewer: the server refuses it). */
  change (fn: () => void, ownStep = true): void {
    if (!this.canEdit) return
    if (ownStep) this.undo.stopCapturing()
    this.doc.transact(fn, LOCAL)
  }

  // -- presence ----------------------------------------------------------------------------

  /** Tell the room what I am looking at (a definition path, e.g. pages.home.components.x). */
  select (path: string | null): void {
    if (this.provider.awareness.getLocalState()?.selection === path) return
    this.provider.awareness.setLocalStateField('selection', path)
  }

  /** Select `path` after a click that changed what the view shows: select, then redraw. */
  show (path: string | null): void {
    this.select(path)
    this.emit()
  }

  private readServerState (): void {
    for (const st of this.provider.awareness.getStates().values()) {
      if (st.server) this.diagnostics = st.diagnostics || []
    }
  }

  people (): Person[] {
    const out: Person[] = []
    for (const [id, st] of this.provider.awareness.getStates()) {
      if (st.server || !st.user) continue
      const me = id === this.doc.clientID
      out.push({ id, me, name: st.user.name || (me ? 'me' : '?'), color: st.user.color || '#555', selection: st.selection ?? null })
    }
    return out
  }

  /** Everyone else's selection: path -> the person. */
  selections (): Map<string, Person> {
    return new Map(this.people().filter((p) => !p.me && p.selection).map((p) => [p.selection as string, p]))
  }

  /** Diagnostics at `path` or below it. */
  errorsAt (path: string): Diagnostic[] {
    return this.diagnostics.filter((d) => d.path === path || d.path.startsWith(path + '.') || d.path.startsWith(path + '['))
  }
}

/** Entries of a map of nodes in their `pos` order (ties by key, so every peer agrees). */
export function sorted<T extends YMap> (m: Y.Map<T>, key = 'pos', inAttrs = false): [string, T][] {
  const at = (v: T): number => Number((inAttrs ? v.get('attrs')?.get(key) : v.get(key)) ?? 0)
  return [...m.entries()].sort((a, b) => at(a[1]) - at(b[1]) || (a[0] < b[0] ? -1 : 1))
}

/** A fresh key: lower-case letters and digits (valid as a definition name). */
export function newKey (prefix: string): string {
  return `${prefix}_${Math.random().toString(36).slice(2, 8)}`
}

/** A Y.Map built with its nested maps in one go (never nested maps added afterwards). */
export function ymap (entries: Record<string, Json>): YMap {
  return new Y.Map<Json>(Object.entries(entries))
}

/** A plain value of a map attribute (Y.Map → object). */
export function plain (value: Json): Json {
  return value instanceof Y.Map ? value.toJSON() : value
}
