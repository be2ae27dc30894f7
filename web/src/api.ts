// The REST API of the Plinth server, with the signed-in token.

import type { Json } from './dom'

export const token = (): string => localStorage.getItem('plinth.token') || ''
export const setToken = (value: string): void => localStorage.setItem('plinth.token', value)
export const clearToken = (): void => localStorage.removeItem('plinth.token')

/** An error response: `data` is the problem body (detail, errors with paths). */
export class ApiError extends Error {
  constructor (message: string, public status: number, public data: Json) { super(message) }
}

export async function api (method: string, path: string, body?: Json): Promise<Json> {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token()}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  let data: Json = null
  try { data = text ? JSON.parse(text) : null } catch { data = { detail: text } }
  if (!res.ok) throw new ApiError(data?.detail || res.statusText, res.status, data)
  return data
}

/** The base path of an app's endpoints. */
export const appPath = (tenant: string, app: string): string =>
  `/api/t/${encodeURIComponent(tenant)}/apps/${encodeURIComponent(app)}`
