// The Plinth web IDE: sign in, pick a tenant and app, co-edit the draft live through yjs.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import './style.css'

type Json = any // eslint-disable-line @typescript-eslint/no-explicit-any
const TYPES = ['string', 'text', 'integer', 'decimal', 'boolean', 'date', 'datetime', 'email',
  'url', 'enum', 'json', 'reference', 'attachment']
const COLORS = ['#d9480f', '#1971c2', '#2b8a3e', '#862e9c', '#c2255c', '#e67700', '#0b7285']
const app = document.getElementById('app')!

function h (tag: string, attrs: Record<string, Json> = {}, ...kids: (Node | string | null)[]): HTMLElement {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else if (k === 'value') (el as HTMLInputElement).value = v
    else if (k === 'checked') (el as HTMLInputElement).checked = v
    else if (k === 'disabled') (el as HTMLInputElement).disabled = v
    else if (v !== undefined && v !== null) el.setAttribute(k, String(v))
  }
  for (const kid of kids) if (kid !== null) el.append(kid)
  return el
}

const token = (): string => localStorage.getItem('plinth.token') || ''

async function api (method: string, path: string, body?: Json): Promise<Json> {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token()}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  const data = text ? JSON.parse(text) : null
  if (!res.ok) throw Object.assign(new Error(data?.detail || res.statusText), { data })
  return data
}

// -- routing -------------------------------------------------------------------------------

let session: Session | null = null

async function route (): Promise<void> {
  session?.destroy()
  session = null
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean)
  if (!token()) return signIn()
  if (parts[0] === 't' && parts[2] === 'apps' && parts[3]) {
    session = new Session(parts[1], parts[3])
    return session.render()
  }
  if (parts[0] === 't' && parts[1]) return apps(parts[1])
  return tenants()
}
window.addEventListener('hashchange', () => { void route() })

function shell (...content: HTMLElement[]): void {
  app.replaceChildren(
    h('header', {}, h('h1', {}, 'Plinth designer'), h('a', { href: '#/' }, 'Tenants'),
      h('button', { onclick: () => { localStorage.removeItem('plinth.token'); location.hash = '#/'; void route() } }, 'Sign out')),
    ...content)
}

function signIn (): void {
  const input = h('input', { type: 'text', id: 'token', placeholder: 'API token (plt_…)' }) as HTMLInputElement
  shell(h('section', { style: 'max-width:420px;margin:40px auto' }, h('h2', {}, 'Sign in'),
    h('div', { class: 'row' }, input),
    h('button', { id: 'signin', onclick: () => { localStorage.setItem('plinth.token', input.value.trim()); void route() } }, 'Sign in')))
}

async function tenants (): Promise<void> {
  const list = h('ul', { class: 'list' })
  shell(h('section', { style: 'max-width:520px;margin:24px auto' }, h('h2', {}, 'Tenants'), list))
  try {
    const data = await api('GET', '/api/tenants')
    for (const t of data.items) list.append(h('li', { onclick: () => { location.hash = `#/t/${t.slug}` } }, `${t.name} (${t.slug})`))
  } catch (e) { list.append(h('li', { class: 'error' }, String((e as Error).message))) }
}

async function apps (tenant: string): Promise<void> {
  const list = h('ul', { class: 'list', id: 'apps' })
  const slug = h('input', { type: 'text', placeholder: 'new app slug' }) as HTMLInputElement
  const msg = h('div', { class: 'error' })
  shell(h('section', { style: 'max-width:520px;margin:24px auto' }, h('h2', {}, `Apps of ${tenant}`), list,
    h('div', { class: 'row' }, slug, h('button', {
      onclick: async () => {
        try { await api('POST', `/api/t/${tenant}/apps`, { slug: slug.value }); location.hash = `#/t/${tenant}/apps/${slug.value}` } catch (e) { msg.textContent = (e as Error).message }
      }
    }, 'Create')), msg))
  const data = await api('GET', `/api/t/${tenant}/apps`)
  for (const a of data.items) list.append(h('li', { onclick: () => { location.hash = `#/t/${tenant}/apps/${a.slug}` } }, a.slug))
}

// -- the co-editing session ----------------------------------------------------------------

interface Diagnostic { path: string, message: string, code: string }

class Session {
  doc = new Y.Doc()
  provider: WebsocketProvider
  entities: Y.Map<Y.Map<Json>>
  sections: Y.Map<string>
  undo: Y.UndoManager
  selectedEntity: string | null = null
  canEdit = false
  diagnostics: Diagnostic[] = []
  tab = 'publish'
  panel = h('div')
  status = h('span', { class: 'status', id: 'status' }, 'connecting…')
  avatars = h('div', { class: 'avatars', id: 'avatars' })
  color = COLORS[Math.floor(Math.random() * COLORS.length)]

  constructor (public tenant: string, public slug: string) {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws'
    this.provider = new WebsocketProvider(`${proto}://${location.host}/api/t/${tenant}/apps/${slug}/draft`,
      'sync', this.doc, { params: { token: token() }, disableBc: true })
    this.entities = this.doc.getMap('entities')
    this.sections = this.doc.getMap('sections')
    // Undo only one's own changes: the provider applies remote ones with itself as origin.
    this.undo = new Y.UndoManager([this.entities, this.sections], { captureTimeout: 300 })
    this.provider.awareness.setLocalStateField('user', { color: this.color })
    this.provider.on('status', (e: { status: string }) => { this.status.textContent = e.status; this.status.dataset.status = e.status })
    this.provider.on('sync', (ok: boolean) => { if (ok) { this.status.dataset.synced = 'yes'; this.draw() } })
    this.doc.on('update', () => this.draw())
    this.provider.awareness.on('change', () => this.drawPresence())
  }

  destroy (): void { this.provider.destroy(); this.doc.destroy() }

  async render (): Promise<void> {
    try { this.canEdit = (await api('GET', `/api/t/${this.tenant}/apps/${this.slug}/draft/access`)).can_edit } catch { this.canEdit = false }
    this.panel.replaceChildren() // rebuilt with the right permissions
    this.draw()
  }

  select (path: string): void {
    this.provider.awareness.setLocalStateField('selection', path)
  }

  byName (name: string): [string, Y.Map<Json>] | null {
    for (const [id, ent] of this.entities) if (ent.get('name') === name) return [id, ent]
    return null
  }

  sorted<T> (m: Y.Map<T>): [string, T][] {
    return [...m.entries()].sort((a, b) => ((a[1] as Json).get('pos') ?? 0) - ((b[1] as Json).get('pos') ?? 0) || (a[0] < b[0] ? -1 : 1))
  }

  errorsAt (prefix: string): Diagnostic[] {
    return this.diagnostics.filter((d) => d.path === prefix || d.path.startsWith(prefix + '.'))
  }

  // Everyone's selection (except mine): path -> [name, color]
  selections (): Map<string, [string, string]> {
    const out = new Map<string, [string, string]>()
    for (const [id, st] of this.provider.awareness.getStates()) {
      if (id === this.doc.clientID || !st.user || !st.selection) continue
      out.set(st.selection, [st.user.name, st.user.color || '#555'])
    }
    return out
  }

  drawPresence (): void {
    this.diagnostics = []
    const people: HTMLElement[] = []
    for (const [id, st] of this.provider.awareness.getStates()) {
      if (st.server) { this.diagnostics = st.diagnostics || []; continue }
      if (!st.user) continue
      const name: string = st.user.name || (id === this.doc.clientID ? 'me' : '?')
      people.push(h('div', { class: 'avatar', title: name, 'data-name': name, style: `background:${st.user.color || '#555'}` },
        name.slice(0, 2).toUpperCase()))
    }
    this.avatars.replaceChildren(...people)
    this.draw()
  }

  draw (): void {
    const d = !this.canEdit
    const entityList = h('ul', { class: 'list', id: 'entities' })
    for (const [id, ent] of this.sorted(this.entities)) {
      const name = ent.get('name')
      if (this.selectedEntity === null) this.selectedEntity = id
      entityList.append(h('li', {
        class: id === this.selectedEntity ? 'active' : '', 'data-entity': name,
        onclick: () => { this.selectedEntity = id; this.select(`entities.${name}`); this.draw() }
      }, name, this.errorsAt(`entities.${name}`).length ? h('span', { class: 'error' }, ' ●') : null))
    }
    const newEntity = this.pending('new-entity', 'new entity', d)
    const left = h('section', {}, h('h2', {}, 'Entities'), entityList,
      h('div', { class: 'row' }, newEntity, h('button', { id: 'add-entity', disabled: d, onclick: () => this.addEntity(this.typed['new-entity'] ?? newEntity.value) }, 'Add')))

    const focused = document.activeElement as HTMLElement | null
    const focusKey = focused?.dataset?.key
    app.replaceChildren(
      h('header', {}, h('h1', {}, 'Plinth designer'), h('a', { href: `#/t/${this.tenant}` }, this.tenant), h('span', {}, ` / ${this.slug}`),
        this.status,
        h('button', { id: 'undo', disabled: d, onclick: () => this.undo.undo() }, 'Undo'),
        h('button', { id: 'redo', disabled: d, onclick: () => this.undo.redo() }, 'Redo'),
        d ? h('span', { class: 'readonly', id: 'readonly' }, 'read only') : null,
        this.avatars),
      h('main', {}, left, this.entityEditor(d), this.sidePanel()))
    if (focusKey) {
      const again = app.querySelector(`[data-key="${CSS.escape(focusKey)}"]`) as HTMLInputElement | null
      if (again && again !== focused) { again.focus(); if (again.type === 'text') { const n = again.value.length; again.setSelectionRange(n, n) } }
    }
  }

  entityEditor (d: boolean): HTMLElement {
    const ent = this.selectedEntity ? this.entities.get(this.selectedEntity) : undefined
    if (!ent) return h('section', {}, h('h2', {}, 'Data model'), h('p', {}, 'No entity yet.'))
    const name: string = ent.get('name')
    const attrs: Y.Map<Json> = ent.get('attrs')
    const fields: Y.Map<Y.Map<Json>> = ent.get('fields')
    const sel = this.selections()
    const rows = h('tbody')
    for (const [fid, f] of this.sorted(fields)) {
      const fname: string = f.get('name')
      const fa: Y.Map<Json> = f.get('attrs')
      const path = `entities.${name}.fields.${fname}`
      const who = sel.get(path)
      const rest: Record<string, Json> = {}
      for (const [k, v] of fa.entries()) if (k !== 'type' && k !== 'required') rest[k] = v
      const errs = this.errorsAt(path)
      const tr = h('tr', { 'data-field': fname, class: who ? 'selected-by' : '', style: who ? `--c:${who[1]}` : '' },
        h('td', {}, h('input', {
          type: 'text', value: fname, disabled: d, 'data-key': `${fid}.name`, class: 'field-name',
          onfocus: () => this.select(path),
          onchange: (e: Event) => f.set('name', (e.target as HTMLInputElement).value.trim())
        }), who ? h('span', { class: 'tag', style: `background:${who[1]}` }, who[0]) : null,
        ...errs.map((x) => h('div', { class: 'error', 'data-error': x.path }, `${x.path.slice(path.length) || ''} ${x.message}`))),
        h('td', {}, h('select', { disabled: d, 'data-key': `${fid}.type`, class: 'field-type', onfocus: () => this.select(path), onchange: (e: Event) => fa.set('type', (e.target as HTMLSelectElement).value) },
          ...[...new Set([...TYPES, fa.get('type')])].map((t) => h('option', { value: t, ...(t === fa.get('type') ? { selected: 'selected' } : {}) }, String(t))))),
        h('td', {}, h('input', { type: 'checkbox', checked: !!fa.get('required'), disabled: d, onchange: (e: Event) => fa.set('required', (e.target as HTMLInputElement).checked) })),
        h('td', {}, h('input', {
          type: 'text', value: JSON.stringify(rest), disabled: d, 'data-key': `${fid}.constraints`,
          onfocus: () => this.select(path),
          onchange: (e: Event) => {
            try {
              const next = JSON.parse((e.target as HTMLInputElement).value || '{}')
              this.doc.transact(() => {
                for (const k of [...fa.keys()]) if (k !== 'type' && k !== 'required' && !(k in next)) fa.delete(k)
                for (const [k, v] of Object.entries(next)) fa.set(k, v)
              })
            } catch { (e.target as HTMLInputElement).setCustomValidity('not JSON') }
          }
        })),
        h('td', {}, h('button', { disabled: d, title: 'delete field', onclick: () => fields.delete(fid) }, '✕')))
      rows.append(tr)
    }
    const newField = this.pending('new-field', 'new field name', d)
    const rules = h('textarea', { id: 'rules', disabled: d, 'data-key': `${this.selectedEntity}.rules` }) as HTMLTextAreaElement
    rules.value = JSON.stringify(attrs.get('rules') ?? [], null, 1)
    rules.addEventListener('change', () => { try { attrs.set('rules', JSON.parse(rules.value)) } catch { rules.setCustomValidity('not JSON') } })
    return h('section', { id: 'editor' },
      h('h2', {}, `Entity ${name}`),
      h('div', { class: 'row' }, 'Label', h('input', {
        type: 'text', id: 'entity-label', value: attrs.get('label') ?? '', disabled: d, 'data-key': `${this.selectedEntity}.label`,
        onchange: (e: Event) => attrs.set('label', (e.target as HTMLInputElement).value)
      })),
      ...this.errorsAt(`entities.${name}`).filter((x) => !x.path.includes('.fields.')).map((x) => h('div', { class: 'error' }, `${x.path}: ${x.message}`)),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Field'), h('th', {}, 'Type'), h('th', {}, 'Req.'), h('th', {}, 'Constraints (JSON)'), h('th', {}, ''))), rows),
      h('div', { class: 'row' }, newField, h('button', { id: 'add-field', disabled: d, onclick: () => this.addField(this.typed['new-field'] ?? newField.value) }, 'Add field')),
      h('h2', {}, 'CEL rules'), rules,
      ...this.errorsAt(`entities.${name}.rules`).map((x) => h('div', { class: 'error' }, `${x.path}: ${x.message}`)))
  }

  // Inputs not yet applied to the doc survive the redraw a remote change causes.
  typed: Record<string, string> = {}
  pending (id: string, placeholder: string, disabled: boolean): HTMLInputElement {
    return h('input', {
      type: 'text', id, placeholder, disabled, value: this.typed[id] ?? '', 'data-key': id,
      oninput: (e: Event) => { this.typed[id] = (e.target as HTMLInputElement).value }
    }) as HTMLInputElement
  }

  addEntity (name: string): void {
    this.typed['new-entity'] = ''
    this.undo.stopCapturing()
    const id = 'ent_' + Math.random().toString(36).slice(2, 12)
    // A node's nested maps are created together with it (pitfall: separate creation races).
    this.entities.set(id, new Y.Map<Json>([['name', name.trim()], ['pos', this.entities.size],
      ['attrs', new Y.Map()], ['fields', new Y.Map()]]))
    this.selectedEntity = id
  }

  addField (name: string): void {
    const ent = this.selectedEntity && this.entities.get(this.selectedEntity)
    if (!ent || !name.trim()) return
    this.typed['new-field'] = ''
    this.undo.stopCapturing() // each added field is its own undo step
    const fields: Y.Map<Json> = ent.get('fields')
    const id = 'fld_' + Math.random().toString(36).slice(2, 12)
    fields.set(id, new Y.Map<Json>([['name', name.trim()], ['pos', Date.now() / 1e12 + fields.size],
      ['attrs', new Y.Map<Json>([['type', 'string']])]]))
  }

  sidePanel (): HTMLElement {
    const tabs = ['publish', 'versions', 'history', 'other'].map((t) => h('button', {
      class: t === this.tab ? 'active' : '', id: `tab-${t}`, onclick: () => { this.tab = t; this.panel.replaceChildren(); void this.loadTab(); this.draw() }
    }, t))
    const diag = this.diagnostics.length
      ? h('div', { class: 'error', id: 'diagnostics' }, `${this.diagnostics.length} problem(s) in the draft`)
      : h('div', { class: 'ok', id: 'diagnostics' }, 'Draft is valid')
    if (!this.panel.childElementCount) void this.loadTab()
    return h('section', {}, h('div', { class: 'tabs row' }, ...tabs), diag, this.panel)
  }

  async loadTab (): Promise<void> {
    const base = `/api/t/${this.tenant}/apps/${this.slug}`
    const p = this.panel
    p.replaceChildren(h('span', {}, '…'))
    try {
      if (this.tab === 'publish') {
        const msg = h('input', { type: 'text', id: 'publish-message', placeholder: 'message' }) as HTMLInputElement
        const out = h('pre', { id: 'publish-result' })
        p.replaceChildren(msg, h('button', {
          id: 'publish', disabled: !this.canEdit,
          onclick: async () => {
            try { out.textContent = JSON.stringify(await api('POST', `${base}/publish`, { message: msg.value }), null, 1) } catch (e) { out.textContent = JSON.stringify((e as Json).data ?? String(e), null, 1) }
          }
        }, 'Publish'), out)
      } else if (this.tab === 'versions') {
        const data = await api('GET', `${base}/versions`)
        const out = h('pre', { id: 'diff' })
        const list = h('ul', { class: 'list', id: 'versions' })
        for (const v of data.items) {
          list.append(h('li', { 'data-version': v.number }, `v${v.number} ${v.number === data.active ? '(active) ' : ''}${v.message || ''} `,
            h('button', { onclick: async () => { out.textContent = JSON.stringify((await api('GET', `${base}/diff?from=${v.number}&to=draft`)).changes, null, 1) } }, 'diff'),
            h('button', { disabled: !this.canEdit, onclick: async () => { out.textContent = JSON.stringify(await api('POST', `${base}/rollback`, { version: v.number }), null, 1) } }, 'rollback')))
        }
        p.replaceChildren(list, out)
      } else if (this.tab === 'history') {
        const data = await api('GET', `${base}/draft/history?limit=50`)
        p.replaceChildren(h('ul', { class: 'list', id: 'history' }, ...data.items.map((c: Json) =>
          h('li', {}, `${c.at.slice(11, 19)} ${c.author}: ${c.paths.slice(0, 3).join(', ')}`))))
      } else {
        // Pages, workflows and policies: plain JSON editors for now.
        const area = h('textarea', { id: 'sections', disabled: !this.canEdit, style: 'min-height:200px' }) as HTMLTextAreaElement
        area.value = JSON.stringify(Object.fromEntries([...this.sections.entries()].map(([k, v]) => [k, JSON.parse(v)])), null, 1)
        p.replaceChildren(h('p', {}, 'Pages, workflows, policies (JSON)'), area, h('button', {
          disabled: !this.canEdit,
          onclick: () => {
            const next = JSON.parse(area.value || '{}')
            this.doc.transact(() => {
              for (const k of [...this.sections.keys()]) if (!(k in next)) this.sections.delete(k)
              for (const [k, v] of Object.entries(next)) this.sections.set(k, JSON.stringify(v))
            })
          }
        }, 'Apply'))
      }
    } catch (e) { p.replaceChildren(h('div', { class: 'error' }, (e as Error).message)) }
  }
}

void route()
