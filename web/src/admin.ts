// Administration of a tenant (docs/admin-api.md): users (invite, edit country and groups,
// disable, reset password, revoke sessions), groups and roles, API tokens, the audit ledger.
// Every action is the server's: policy decides, the ledger records; this only shows it.

import { api } from './api'
import { h, type Json } from './dom'

const SECTIONS = { users: 'Users', groups: 'Groups and roles', tokens: 'API tokens', audit: 'Audit' } as const
type Section = keyof typeof SECTIONS

export class Admin {
  private base: string
  private msg = h('p', { class: 'error', id: 'admin-error', role: 'alert' })
  private note = h('p', { class: 'notice', id: 'admin-notice' })

  constructor (private tenant: string, private shell: (...c: HTMLElement[]) => void) {
    this.base = `/api/t/${encodeURIComponent(tenant)}`
  }

  async show (section: string, rest: string[]): Promise<void> {
    const current = (section in SECTIONS ? section : 'users') as Section
    const body = h('div', { class: 'admin-body' })
    this.shell(h('section', { class: 'wide', id: 'admin' },
      h('h2', {}, `Administration of ${this.tenant}`),
      h('nav', { class: 'editors' }, ...(Object.keys(SECTIONS) as Section[]).map((s) =>
        h('a', { class: `tab${s === current ? ' active' : ''}`, id: `admin-${s}`, href: `#/t/${this.tenant}/admin/${s}` }, SECTIONS[s]))),
      this.msg, this.note, body))
    try {
      if (current === 'users') await (rest[0] ? this.user(body, rest[0]) : this.users(body))
      if (current === 'groups') await this.groups(body)
      if (current === 'tokens') await this.tokens(body)
      if (current === 'audit') await this.audit(body)
    } catch (e) { this.fail(e) }
  }

  private fail (e: unknown): void { this.msg.textContent = (e as Error).message }
  private done (text: string): void { this.msg.textContent = ''; this.note.textContent = text }

  // -- users ------------------------------------------------------------------------------

  private async users (body: HTMLElement): Promise<void> {
    const q = h('input', { type: 'search', id: 'user-filter', placeholder: 'find by username' })
    const table = h('table', { class: 'grid', id: 'users' })
    const load = async (): Promise<void> => {
      const data = await api('GET', `${this.base}/users?limit=500${q.value ? `&q=${encodeURIComponent(q.value)}` : ''}`)
      table.replaceChildren(h('tr', {}, ...['Username', 'Roles', 'Groups', 'Country', 'Status'].map((c) => h('th', {}, c))),
        ...data.items.map((u: Json) => h('tr', { 'data-user': u.username, class: u.disabled ? 'disabled' : '' },
          h('td', {}, h('a', { href: `#/t/${this.tenant}/admin/users/${u.id}` }, u.username)),
          h('td', {}, (u.roles ?? []).join(', ')), h('td', {}, (u.groups ?? []).join(', ')),
          h('td', {}, u.attrs?.country ?? ''), h('td', { 'data-status': u.disabled ? 'disabled' : 'active' }, u.disabled ? 'disabled' : 'active'))))
    }
    q.addEventListener('input', () => { void load().catch((e) => this.fail(e)) })
    const username = h('input', { type: 'text', id: 'invite-username', placeholder: 'username' })
    const role = h('select', { id: 'invite-role' })
    const country = h('input', { type: 'text', id: 'invite-country', placeholder: 'country (e.g. DE)', maxlength: 2 })
    const password = h('input', { type: 'password', id: 'invite-password', placeholder: 'password (empty: send an invite link)', autocomplete: 'new-password' })
    for (const r of await this.roleNames()) role.append(h('option', { value: r, selected: r === 'analyst' }, r))
    body.append(h('div', { class: 'row' }, q), table,
      h('h3', {}, 'Invite a user'),
      h('div', { class: 'row' }, username, role, country, password, h('button', {
        id: 'invite',
        onclick: async () => {
          const spec: Json = { username: username.value.trim(), roles: [role.value] }
          if (country.value.trim()) spec.attrs = { country: country.value.trim().toUpperCase() }
          if (password.value) spec.password = password.value
          try {
            const u = await api('POST', `${this.base}/users`, spec)
            this.done(u.invite ? `Invited ${u.username}: send them ${location.origin}${u.invite.url}` : `Created ${u.username}`)
            username.value = ''; password.value = ''
            await load()
          } catch (e) { this.fail(e) }
        }
      }, 'Invite')))
    await load()
  }

  private async roleNames (): Promise<string[]> {
    try { return (await api('GET', `${this.base}/roles`)).items.map((r: Json) => r.name) } catch { return ['analyst', 'designer', 'owner'] }
  }

  private async user (body: HTMLElement, id: string): Promise<void> {
    const u = await api('GET', `${this.base}/users/${encodeURIComponent(id)}`)
    const path = `${this.base}/users/${encodeURIComponent(id)}`
    const again = (): void => { void this.show('users', [id]) }
    const patch = async (change: Json, said: string): Promise<void> => {
      try { await api('PATCH', path, change); again(); this.done(said) } catch (e) { this.fail(e) }
    }
    const country = h('input', { type: 'text', id: 'user-country', value: u.attrs?.country ?? '', maxlength: 2 })
    const groups = h('input', { type: 'text', id: 'user-groups', value: (u.groups ?? []).join(', '), placeholder: 'claims-team, managers' })
    const roles = h('div', { class: 'checklist', id: 'user-roles' }, ...(await this.roleNames()).map((r) =>
      h('label', { class: 'check' }, h('input', { type: 'checkbox', value: r, checked: (u.roles ?? []).includes(r), 'data-role': r }), r)))
    const list = (text: string): string[] => text.split(',').map((x) => x.trim()).filter(Boolean)
    body.append(h('div', { class: 'user-card', 'data-user': u.username },
      h('h3', {}, u.username, u.disabled ? h('span', { class: 'tag', id: 'user-disabled' }, ' disabled') : null),
      h('p', { class: 'hint' }, `${u.oidc ? 'signs in with OIDC' : u.has_password ? 'has a password' : 'invited, no password yet'} · created ${u.created_at ?? ''}`),
      h('label', { class: 'row' }, h('span', { class: 'label' }, 'Country'), country),
      h('label', { class: 'row' }, h('span', { class: 'label' }, 'Groups'), groups),
      h('div', { class: 'row' }, h('span', { class: 'label' }, 'Roles'), roles),
      h('div', { class: 'row' }, h('button', {
        id: 'save-user',
        onclick: () => {
          const attrs = { ...(u.attrs ?? {}) }
          if (country.value.trim()) attrs.country = country.value.trim().toUpperCase(); else delete attrs.country
          const chosen = [...roles.querySelectorAll('input:checked')].map((x) => (x as HTMLInputElement).value)
          void patch({ attrs, groups: list(groups.value), roles: chosen }, `Saved ${u.username}`)
        }
      }, 'Save')),
      h('h3', {}, 'Access'),
      h('div', { class: 'row' },
        h('button', { id: 'toggle-disabled', class: u.disabled ? '' : 'danger', onclick: () => { void patch({ disabled: !u.disabled }, u.disabled ? `Enabled ${u.username}` : `Disabled ${u.username}: their sessions are revoked`) } }, u.disabled ? 'Enable' : 'Disable'),
        h('button', {
          id: 'reset-password',
          onclick: async () => {
            try { const r = await api('POST', `${path}/password-reset`); this.done(`Reset link for ${u.username} (valid until ${r.expires_at}): ${location.origin}${r.url}`) } catch (e) { this.fail(e) }
          }
        }, 'Reset password'),
        h('button', {
          id: 'revoke-sessions',
          onclick: async () => {
            try { const r = await api('DELETE', `${path}/sessions`); this.done(`Revoked ${r.revoked} session(s) of ${u.username}`) } catch (e) { this.fail(e) }
          }
        }, 'Revoke sessions')),
      h('p', {}, h('a', { href: `#/t/${this.tenant}/admin/audit?resource=${encodeURIComponent(`user:${u.id}`)}`, id: 'user-audit' }, 'This user in the audit ledger'),
        ' · ', h('a', { href: `#/t/${this.tenant}/admin/users` }, 'All users'))))
  }

  // -- groups and roles -------------------------------------------------------------------

  private async groups (body: HTMLElement): Promise<void> {
    const [groups, roles] = await Promise.all([api('GET', `${this.base}/groups`), api('GET', `${this.base}/roles`)])
    body.append(h('h3', {}, 'Groups'),
      h('p', { class: 'hint' }, 'A group is a name on users: add people to one from their page; it lasts while it has members.'),
      h('table', { class: 'grid', id: 'groups' }, h('tr', {}, h('th', {}, 'Group'), h('th', {}, 'Members')),
        ...groups.items.map((g: Json) => h('tr', { 'data-group': g.name }, h('td', {}, g.name), h('td', {}, String(g.members))))),
      h('h3', {}, 'Roles'),
      h('table', { class: 'grid', id: 'roles' }, h('tr', {}, h('th', {}, 'Role'), h('th', {}, 'May')),
        ...roles.items.map((r: Json) => h('tr', { 'data-role': r.name }, h('td', {}, r.name, r.builtin ? h('small', {}, ' built-in') : null),
          h('td', {}, r.actions.length ? r.actions.join(', ') : 'what the tenant\'s policies grant')))))
  }

  // -- API tokens -------------------------------------------------------------------------

  private async tokens (body: HTMLElement): Promise<void> {
    const all = h('input', { type: 'checkbox', id: 'tokens-revoked' })
    const table = h('table', { class: 'grid', id: 'tokens' })
    const load = async (): Promise<void> => {
      const data = await api('GET', `${this.base}/tokens?include_revoked=${all.checked}`)
      table.replaceChildren(h('tr', {}, ...['Name', 'Role', 'Prefix', 'Created', 'Expires', ''].map((c) => h('th', {}, c))),
        ...data.items.map((t: Json) => h('tr', { 'data-token': t.name, class: t.revoked_at ? 'disabled' : '' },
          h('td', {}, t.name), h('td', {}, t.role), h('td', { class: 'mono' }, `${t.prefix}…`), h('td', {}, t.created_at ?? ''), h('td', {}, t.expires_at ?? 'never'),
          h('td', {}, t.revoked_at ? `revoked ${t.revoked_at}` : h('button', {
            class: 'danger', 'data-revoke': t.name,
            onclick: async () => {
              if (!confirm(`Revoke the token ${t.name}? Whatever uses it stops working.`)) return
              try { await api('DELETE', `${this.base}/tokens/${t.id}`); this.done(`Revoked ${t.name}`); await load() } catch (e) { this.fail(e) }
            }
          }, 'Revoke')))))
      if (!data.items.length) table.append(h('tr', {}, h('td', { class: 'hint' }, 'No API tokens.')))
    }
    all.addEventListener('change', () => { void load().catch((e) => this.fail(e)) })
    const name = h('input', { type: 'text', id: 'token-name', placeholder: 'name (what uses it)' })
    const role = h('select', { id: 'token-role' }, ...(await this.roleNames()).map((r) => h('option', { value: r }, r)))
    const secret = h('pre', { class: 'mono', id: 'token-secret' })
    body.append(h('label', { class: 'row' }, all, 'Show revoked tokens'), table,
      h('h3', {}, 'New token'),
      h('div', { class: 'row' }, name, role, h('button', {
        id: 'create-token',
        onclick: async () => {
          try {
            const t = await api('POST', `${this.base}/tokens`, { name: name.value.trim(), role: role.value })
            secret.textContent = t.token
            this.done(`Token ${t.name} created: copy it now, it is not shown again.`)
            await load()
          } catch (e) { this.fail(e) }
        }
      }, 'Create')), secret)
    await load()
  }

  // -- audit ------------------------------------------------------------------------------

  private async audit (body: HTMLElement): Promise<void> {
    const query = new URLSearchParams(location.hash.split('?')[1] ?? '')
    const field = (id: string, placeholder: string, type = 'text'): HTMLInputElement =>
      h('input', { type, id: `audit-${id}`, placeholder, value: query.get(id) ?? '' })
    const actor = field('actor', 'actor (user:…)')
    const action = field('action', 'action (user.* or user.created)')
    const resource = field('resource', 'resource (user:… or user:*)')
    const since = field('since', 'since', 'datetime-local')
    const until = field('until', 'until', 'datetime-local')
    const table = h('table', { class: 'grid', id: 'audit' })
    const more = h('button', { id: 'audit-more', hidden: true }, 'Older')
    let cursor: Json = null
    const load = async (append: boolean): Promise<void> => {
      const q = new URLSearchParams({ order: 'desc', limit: '100' })
      for (const [k, el] of Object.entries({ actor, action, resource })) if (el.value.trim()) q.set(k, el.value.trim())
      for (const [k, el] of Object.entries({ since, until })) if (el.value) q.set(k, new Date(el.value).toISOString())
      if (append && cursor !== null) q.set('cursor', String(cursor))
      const data = await api('GET', `${this.base}/audit?${q}`)
      if (!append) table.replaceChildren(h('tr', {}, ...['#', 'When', 'Who', 'Action', 'Resource', 'Outcome', 'Details'].map((c) => h('th', {}, c))))
      for (const e of data.items) {
        table.append(h('tr', { 'data-action': e.action, 'data-resource': e.resource ?? '' },
          h('td', {}, String(e.n)), h('td', {}, new Date(e.at).toLocaleString()), h('td', {}, e.actor ?? ''),
          h('td', {}, e.action), h('td', {}, e.resource ?? ''), h('td', {}, e.outcome ?? ''),
          h('td', { class: 'mono small' }, e.data && Object.keys(e.data).length ? JSON.stringify(e.data).slice(0, 200) : '')))
      }
      if (!append && !data.items.length) table.append(h('tr', {}, h('td', { class: 'hint', colspan: 7 }, 'Nothing matches these filters.')))
      cursor = data.next_cursor
      more.hidden = cursor === null || cursor === undefined
    }
    const apply = (): void => { void load(false).catch((e) => this.fail(e)) }
    for (const el of [actor, action, resource, since, until]) el.addEventListener('change', apply)
    more.addEventListener('click', () => { void load(true).catch((e) => this.fail(e)) })
    body.append(h('div', { class: 'row filters' }, actor, action, resource, since, until, h('button', { id: 'audit-apply', onclick: apply }, 'Filter')), table, more)
    await load(false)
  }
}
