// The REST API of the Plinth server, under the signed-in identity: a person's session (password
// or OIDC; its access token kept in memory, renewed through an HttpOnly cookie) or an API token.

import type { Json } from './dom'

// An API token (for scripts and operators) is kept across reloads; a session's access token
// is not: a reload renews it through the refresh cookie of the tenant remembered here.
const TOKEN = 'plinth.token'
const TENANT = 'plinth.tenant'
let session: { tenant: string, token: string, user: Json, timer: number } | null = null

export const token = (): string => session?.token || localStorage.getItem(TOKEN) || ''
export const setToken = (value: string): void => localStorage.setItem(TOKEN, value)
export const me = (): Json => session?.user ?? null
export const sessionTenant = (): string | null => session?.tenant ?? localStorage.getItem(TENANT)

/** An error response: `data` is the problem body (detail, errors with paths). */
export class ApiError extends Error {
  constructor (message: string, public status: number, public data: Json) { super(message) }
}

async function parse (res: Response): Promise<Json> {
  const text = await res.text()
  let data: Json = null
  try { data = text ? JSON.parse(text) : null } catch { data = { detail: text } }
  if (!res.ok) throw new ApiError(data?.detail || res.statusText, res.status, data)
  return data
}

export async function api (method: string, path: string, body?: Json, retried = false): Promise<Json> {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token()}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  if (res.status === 401 && session && !retried && await refresh(session.tenant)) return api(method, path, body, true)
  return parse(res)
}

// -- sessions ---------------------------------------------------------------------------------

const authPath = (tenant: string, rest: string): string => `/api/auth/${encodeURIComponent(tenant)}/session/${rest}`

async function post (tenant: string, rest: string, body?: Json): Promise<Json> {
  return parse(await fetch(authPath(tenant, rest), {
    method: 'POST', credentials: 'same-origin',
    headers: { 'X-Plinth-IDE': '1', 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  }))
}

function keep (tenant: string, data: Json): Json {
  if (session) clearTimeout(session.timer)
  // renewed a minute before it expires
  const timer = window.setTimeout(() => { void refresh(tenant) }, Math.max(5, (data.expires_in ?? 900) - 60) * 1000)
  session = { tenant, token: data.access_token, user: data.user, timer }
  localStorage.setItem(TENANT, tenant)
  localStorage.removeItem(TOKEN)
  return data.user
}

/** Sign in with a password; the user (`Me`). Throws ApiError (401: wrong username or password). */
export async function login (tenant: string, username: string, password: string): Promise<Json> {
  return keep(tenant, await post(tenant, 'login', { username, password }))
}

/** Renew the access token from the refresh cookie: the user, or null when signed out. */
export async function refresh (tenant: string): Promise<Json> {
  try { return keep(tenant, await post(tenant, 'refresh')) } catch { drop(); return null }
}

export async function providers (tenant: string): Promise<Json> {
  return parse(await fetch(authPath(tenant, 'providers')))
}

export const oidcUrl = (url: string): string => `${url}?next=${encodeURIComponent('/' + location.hash)}`

function drop (): void {
  if (session) clearTimeout(session.timer)
  session = null
}

/** Sign out: end the session on the server (revoking its refresh token) or forget the API token. */
export async function signOut (): Promise<void> {
  const tenant = session?.tenant
  drop()
  localStorage.removeItem(TOKEN)
  if (tenant) { try { await post(tenant, 'logout') } catch { /* already ended */ } }
}

/** The base path of an app's endpoints. */
export const appPath = (tenant: string, app: string): string =>
  `/api/t/${encodeURIComponent(tenant)}/apps/${encodeURIComponent(app)}`
