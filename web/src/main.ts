// The Plinth web IDE: sign in, pick a tenant and app, co-edit the draft live through yjs.

import { Admin } from './admin'
import { api, login, me, oidcUrl, providers, refresh, sessionTenant, setToken, signOut, token } from './api'
import { h, type Json, Pending } from './dom'
import { loadRuntime } from './editors/canvas'
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
let restored = false

async function route (): Promise<void> {
  designer?.destroy()
  designer = null
  const parts = location.hash.split('?')[0].replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent)
  if (parts[0] === 'accept') return accept(new URLSearchParams(location.hash.split('?')[1] ?? ''))
  // A reload: renew the session of the tenant signed in last (its cookie), once.
  if (!token() && !restored) {
    restored = true
    const tenant = sessionTenant()
    if (tenant && await refresh(tenant)) return route()
  }
  if (!token()) return signIn(parts[0] === 't' ? parts[1] : sessionTenant() ?? '')
  if (parts[0] === 't' && parts[2] === 'apps' && parts[3]) {
    designer = new Designer(parts[1], parts[3], parts[4])
    return designer.start()
  }
  if (parts[0] === 't' && parts[2] === 'admin') return new Admin(parts[1], shell).show(parts[3] ?? 'users', parts.slice(4))
  if (parts[0] === 't' && parts[1]) return apps(parts[1])
  if (me()) { location.hash = `#/t/${me().tenant}`; return }
  return tenants()
}
window.addEventListener('hashchange', () => { void route() })

function shell (...content: HTMLElement[]): void {
  const user = me()
  root.replaceChildren(
    h('header', {}, h('h1', {}, 'Plinth designer'),
      user ? h('a', { href: `#/t/${user.tenant}` }, 'Apps') : h('a', { href: '#/' }, 'Tenants'),
      user?.can?.administer || user?.can?.audit || user?.can?.tokens ? h('a', { href: `#/t/${user.tenant}/admin/users`, id: 'nav-admin' }, 'Administration') : null,
      h('span', { class: 'spacer' }),
      user ? h('span', { class: 'who', id: 'who' }, user.name) : null,
      h('button', { id: 'signout', onclick: async () => { await signOut(); location.hash = '#/'; void route() } }, 'Sign out')),
    ...content)
}

/** Sign in as a person of a tenant (password, or the tenant's OIDC provider); an API token
 * stays possible for operators and scripts. */
function signIn (tenant: string): void {
  const tenantIn = h('input', { type: 'text', id: 'signin-tenant', value: tenant, autocomplete: 'organization' })
  const user = h('input', { type: 'text', id: 'signin-username', autocomplete: 'username' })
  const pass = h('input', { type: 'password', id: 'signin-password', autocomplete: 'current-password' })
  const msg = h('p', { class: 'error', role: 'alert', id: 'signin-error' })
  const oidc = h('div', { id: 'signin-oidc' })
  const tokenIn = h('input', { type: 'text', id: 'token', placeholder: 'API token (plt_…)' })
  const loadProviders = async (): Promise<void> => {
    oidc.replaceChildren()
    const t = tenantIn.value.trim()
    if (!t) return
    try {
      const p = await providers(t)
      if (p?.oidc) oidc.replaceChildren(h('p', { class: 'hint' }, 'or'), h('a', { class: 'button', id: 'signin-oidc-link', href: oidcUrl(p.oidc.url) }, `Sign in with ${p.oidc.label}`))
    } catch { /* unknown tenant: the password form says so on submit */ }
  }
  tenantIn.addEventListener('change', () => { void loadProviders() })
  const form = h('form', {
    class: 'signin',
    onsubmit: async (e: Event) => {
      e.preventDefault()
      msg.textContent = ''
      const t = tenantIn.value.trim()
      try {
        await login(t, user.value.trim(), pass.value)
        location.hash = location.hash.startsWith(`#/t/${t}/`) ? location.hash : `#/t/${t}`
        void route()
      } catch (err) { msg.textContent = (err as { status?: number }).status === 401 ? 'Wrong username or password.' : (err as Error).message }
    }
  },
  h('label', { for: 'signin-tenant' }, 'Organisation'), tenantIn,
  h('label', { for: 'signin-username' }, 'Username'), user,
  h('label', { for: 'signin-password' }, 'Password'), pass,
  msg, h('button', { type: 'submit', id: 'signin' }, 'Sign in'), oidc)
  root.replaceChildren(h('header', {}, h('h1', {}, 'Plinth designer')),
    h('section', { class: 'narrow' }, h('h2', {}, 'Sign in'), form,
      h('details', { class: 'token-signin' }, h('summary', {}, 'Use an API token'),
        h('div', { class: 'row' }, tokenIn, h('button', { id: 'signin-token', onclick: () => { setToken(tokenIn.value.trim()); void route() } }, 'Use token')))))
  void loadProviders()
  ;(tenant ? user : tenantIn).focus()
}

/** An invite or a password reset: the link's one-time token sets the person's password. */
function accept (query: URLSearchParams): void {
  const tenant = query.get('tenant') ?? ''
  const pass = h('input', { type: 'password', id: 'accept-password', autocomplete: 'new-password', minlength: 8 })
  const again = h('input', { type: 'password', id: 'accept-again', autocomplete: 'new-password' })
  const msg = h('p', { class: 'error', role: 'alert', id: 'accept-error' })
  const form = h('form', {
    class: 'signin',
    onsubmit: async (e: Event) => {
      e.preventDefault()
      if (pass.value !== again.value) { msg.textContent = 'The two passwords differ.'; return }
      try {
        await fetch(`/api/auth/${encodeURIComponent(tenant)}/password`, {
          method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: query.get('token'), password: pass.value })
        }).then(async (r) => { if (!r.ok) throw new Error((await r.json().catch(() => ({}))).detail ?? r.statusText) })
        location.hash = `#/t/${tenant}`
      } catch (err) { msg.textContent = (err as Error).message }
    }
  },
  h('label', { for: 'accept-password' }, 'New password (8 characters or more)'), pass,
  h('label', { for: 'accept-again' }, 'The same again'), again,
  msg, h('button', { type: 'submit', id: 'accept' }, 'Set password'))
  root.replaceChildren(h('header', {}, h('h1', {}, 'Plinth designer')),
    h('section', { class: 'narrow' }, h('h2', {}, `Choose your password for ${tenant}`), form))
  pass.focus()
}

async function tenants (): Promise<void> {
  const list = h('ul', { class: 'list' })
  shell(h('section', { class: 'narrow' }, h('h2', {}, 'Tenants'), list))
  try {
    const data = await api('GET', '/api/tenants')
    for (const t of data.items) list.append(h('li', { onclick: () => { location.hash = `#/t/${t.slug}` } }, `${t.name} (${t.slug})`))
  } catch (e) { list.append(h('li', { class: 'error' }, (e as Error).message)) }
}

/** A tenant's apps: open, create from nothing, clone, delete. */
async function apps (tenant: string): Promise<void> {
  const list = h('table', { class: 'grid', id: 'apps' })
  const slug = h('input', { type: 'text', id: 'new-app-slug', placeholder: 'slug (e.g. leave)' })
  const name = h('input', { type: 'text', id: 'new-app-name', placeholder: 'name (e.g. Leave requests)' })
  const msg = h('div', { class: 'error', id: 'apps-error' })
  const base = `/api/t/${encodeURIComponent(tenant)}/apps`
  const fail = (e: unknown): void => { msg.textContent = (e as Error).message }
  shell(h('section', { class: 'narrow' }, h('h2', {}, `Apps of ${tenant}`), list,
    h('h3', {}, 'New app'),
    h('div', { class: 'row' }, slug, name, h('button', {
      id: 'create-app',
      onclick: async () => {
        const s = slug.value.trim()
        try { await api('POST', base, { slug: s, name: name.value.trim() || s }); location.hash = `#/t/${tenant}/apps/${s}/model` } catch (e) { fail(e) }
      }
    }, 'Create')), msg))
  try {
    const data = await api('GET', base)
    for (const a of data.items as Json[]) {
      list.append(h('tr', { 'data-app': a.slug },
        h('td', {}, h('a', { href: `#/t/${tenant}/apps/${a.slug}` }, a.name && a.name !== a.slug ? `${a.name} (${a.slug})` : a.slug)),
        h('td', {}, h('button', {
          'data-clone': a.slug,
          onclick: async () => {
            const to = prompt(`Clone ${a.slug} as (slug):`, `${a.slug}-copy`)?.trim()
            if (!to) return
            try { await api('POST', `${base}/${a.slug}/clone`, { slug: to }); void apps(tenant) } catch (e) { fail(e) }
          }
        }, 'Clone')),
        h('td', {}, h('button', {
          class: 'danger', 'data-delete': a.slug,
          onclick: async () => {
            if (!confirm(`Delete the app ${a.slug} with its versions and data?`)) return
            try { await api('DELETE', `${base}/${a.slug}`); void apps(tenant) } catch (e) { fail(e) }
          }
        }, 'Delete'))))
    }
    if (!data.items.length) list.append(h('tr', {}, h('td', { class: 'hint' }, 'No apps yet: create the first one below.')))
  } catch (e) { fail(e) }
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
    this.page.stylesheet = catalogue.stylesheet ?? ''
    this.draw()
    // the canvas renders with the portal's runtime; roles name task assignees
    void loadRuntime(catalogue.runtime).then((rt) => { this.page.runtime = rt; this.redraw() })
    void api('GET', '/api/palette').then((p) => { if (p?.node_types?.length) { this.workflow.nodeTypes = p.node_types; this.redraw() } }, () => undefined)
    void api('GET', `/api/t/${encodeURIComponent(this.tenant)}/roles`).then((r) => { this.workflow.roles = r.items.map((x: Json) => x.name); this.redraw() },
      () => { this.workflow.roles = ['analyst', 'designer', 'manager', 'owner'] })
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
