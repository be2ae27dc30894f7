// The Plinth web IDE: sign in, pick a tenant and app, co-edit the draft live through yjs.

import { api, clearToken, setToken, token } from './api'
import { h, Pending } from './dom'
import { EntityEditor } from './editors/entity'
import { type Catalogue, PageEditor } from './editors/page'
import { PolicyEditor } from './editors/policy'
import { SectionsEditor } from './editors/sections'
import { WorkflowEditor } from './editors/workflow'
import { PublishPanel } from './publish'
import { Draft } from './sync'
import './style.css'

const root = document.getElementById('app')!

// -- routing -------------------------------------------------------------------------------

let designer: Designer | null = null

async function route (): Promise<void> {
  designer?.destroy()
  designer = null
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent)
  if (!token()) return signIn()
  if (parts[0] === 't' && parts[2] === 'apps' && parts[3]) {
    designer = new Designer(parts[1], parts[3], parts[4])
    return designer.start()
  }
  if (parts[0] === 't' && parts[1]) return apps(parts[1])
  return tenants()
}
window.addEventListener('hashchange', () => { void route() })

function shell (...content: HTMLElement[]): void {
  root.replaceChildren(
    h('header', {}, h('h1', {}, 'Plinth designer'), h('a', { href: '#/' }, 'Tenants'),
      h('button', { onclick: () => { clearToken(); location.hash = '#/'; void route() } }, 'Sign out')),
    ...content)
}

function signIn (): void {
  const input = h('input', { type: 'text', id: 'token', placeholder: 'API token (plt_…)' })
  shell(h('section', { class: 'narrow' }, h('h2', {}, 'Sign in'),
    h('div', { class: 'row' }, input),
    h('button', { id: 'signin', onclick: () => { setToken(input.value.trim()); void route() } }, 'Sign in')))
}

async function tenants (): Promise<void> {
  const list = h('ul', { class: 'list' })
  shell(h('section', { class: 'narrow' }, h('h2', {}, 'Tenants'), list))
  try {
    const data = await api('GET', '/api/tenants')
    for (const t of data.items) list.append(h('li', { onclick: () => { location.hash = `#/t/${t.slug}` } }, `${t.name} (${t.slug})`))
  } catch (e) { list.append(h('li', { class: 'error' }, (e as Error).message)) }
}

async function apps (tenant: string): Promise<void> {
  const list = h('ul', { class: 'list', id: 'apps' })
  const slug = h('input', { type: 'text', placeholder: 'new app slug' })
  const msg = h('div', { class: 'error' })
  shell(h('section', { class: 'narrow' }, h('h2', {}, `Apps of ${tenant}`), list,
    h('div', { class: 'row' }, slug, h('button', {
      onclick: async () => {
        try { await api('POST', `/api/t/${tenant}/apps`, { slug: slug.value }); location.hash = `#/t/${tenant}/apps/${slug.value}` } catch (e) { msg.textContent = (e as Error).message }
      }
    }, 'Create')), msg))
  try {
    const data = await api('GET', `/api/t/${tenant}/apps`)
    for (const a of data.items) list.append(h('li', { onclick: () => { location.hash = `#/t/${tenant}/apps/${a.slug}` } }, a.slug))
  } catch (e) { msg.textContent = (e as Error).message }
}

// -- the designer: editors on the shared draft -----------------------------------------------

const EDITORS = { model: 'Data model', pages: 'Pages', workflows: 'Workflows', policies: 'Policies', other: 'Other' } as const
type EditorName = keyof typeof EDITORS

class Designer {
  draft: Draft
  pending = new Pending()
  entity: EntityEditor
  page: PageEditor
  workflow: WorkflowEditor
  policy: PolicyEditor
  sections: SectionsEditor
  panel: PublishPanel
  editor: EditorName
  private queued = false

  constructor (public tenant: string, public app: string, editor?: string) {
    this.draft = new Draft(tenant, app)
    this.entity = new EntityEditor(this.draft)
    this.page = new PageEditor(this.draft)
    this.workflow = new WorkflowEditor(this.draft)
    this.policy = new PolicyEditor(this.draft)
    this.sections = new SectionsEditor(this.draft)
    this.panel = new PublishPanel(this.draft)
    this.editor = (editor && editor in EDITORS ? editor : 'model') as EditorName
    this.draft.onChange(() => this.redraw())
  }

  destroy (): void { this.draft.destroy() }

  async start (): Promise<void> {
    const base = `/api/t/${this.tenant}/apps/${this.app}`
    const [access, catalogue] = await Promise.all([
      api('GET', `${base}/draft/access`).catch(() => ({ can_edit: false })),
      api('GET', '/api/pages/components').catch(() => ({ kinds: {} }))
    ])
    this.draft.canEdit = !!access.can_edit
    this.page.catalogue = catalogue.kinds as Catalogue
    this.draw()
    void this.panel.load()
  }

  /** Redraw once per frame however many changes arrive (after a drag, not during it). */
  redraw (): void {
    if (this.queued || this.draft.dragging) return
    this.queued = true
    requestAnimationFrame(() => { this.queued = false; this.draw() })
  }

  private draw (): void {
    const d = this.draft
    const ro = !d.canEdit
    // Keep focus and uncommitted typing across the redraw.
    const focused = document.activeElement as HTMLInputElement | null
    const focusKey = focused?.dataset?.key
    const isText = focused?.tagName === 'TEXTAREA' || (focused?.tagName === 'INPUT' && focused.type === 'text')
    const typing = isText || (focused?.tagName === 'INPUT' && focused.type === 'number') ? focused!.value : null
    const caret = isText ? [focused!.selectionStart, focused!.selectionEnd] : null
    const status = h('span', { class: 'status', id: 'status', 'data-status': d.status, 'data-synced': d.synced ? 'yes' : 'no' }, d.status)
    const avatars = h('div', { class: 'avatars', id: 'avatars' }, ...d.people().map((p) =>
      h('div', { class: `avatar${p.me ? ' me' : ''}`, title: p.selection ? `${p.name}: ${p.selection}` : p.name, 'data-name': p.name, style: `background:${p.color}` },
        p.name.slice(0, 2).toUpperCase())))
    const tabs = h('nav', { class: 'editors' }, ...(Object.keys(EDITORS) as EditorName[]).map((name) => h('button', {
      class: name === this.editor ? 'active' : '', id: `editor-${name}`,
      onclick: () => {
        this.editor = name
        history.replaceState(null, '', `#/t/${this.tenant}/apps/${this.app}/${name}`)
        this.redraw()
      }
    }, EDITORS[name])))
    const body = this.editor === 'pages' ? this.page.render(this.pending)
      : this.editor === 'workflows' ? this.workflow.render(this.pending)
        : this.editor === 'policies' ? this.policy.render(this.pending)
          : this.editor === 'other' ? this.sections.render(this.pending)
            : this.entity.render(this.pending)
    root.replaceChildren(
      h('header', {}, h('h1', {}, 'Plinth designer'), h('a', { href: `#/t/${this.tenant}` }, this.tenant), h('span', {}, ` / ${this.app}`),
        status,
        h('button', { id: 'undo', disabled: ro || !this.draft.undo.canUndo(), title: 'Undo my last change', onclick: () => this.draft.undo.undo() }, 'Undo'),
        h('button', { id: 'redo', disabled: ro || !this.draft.undo.canRedo(), title: 'Redo', onclick: () => this.draft.undo.redo() }, 'Redo'),
        ro ? h('span', { class: 'readonly', id: 'readonly' }, 'read only') : null,
        avatars),
      h('main', {}, h('div', { class: 'work' }, tabs, body), this.panel.render()))
    if (focusKey) {
      const again = root.querySelector(`[data-key="${CSS.escape(focusKey)}"]`) as HTMLInputElement | null
      if (again && again !== focused) {
        if (typing !== null && again.value !== typing) again.value = typing
        again.focus()
        if (caret && caret[0] !== null) again.setSelectionRange(caret[0], caret[1])
      }
    }
  }
}

// A drag ends (dropped or not): redraw what arrived meanwhile.
for (const type of ['dragend', 'drop']) {
  document.addEventListener(type, () => {
    if (!designer?.draft.dragging) return
    designer.draft.dragging = false
    designer.redraw()
  }, true)
}

window.addEventListener('keydown', (e) => {
  const target = e.target as HTMLElement
  if (!designer || !(e.ctrlKey || e.metaKey) || ['INPUT', 'TEXTAREA'].includes(target.tagName)) return
  if (e.key === 'z') { e.preventDefault(); if (e.shiftKey) designer.draft.undo.redo(); else designer.draft.undo.undo() }
  if (e.key === 'y') { e.preventDefault(); designer.draft.undo.redo() }
})

void route()
