// A stock yjs + y-websocket client against the Plinth designer (no Plinth code on this side).
// Usage: node protocol.mjs <serverUrl> <token>; prints one JSON line with what it observed.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [serverUrl, token] = process.argv.slice(2)

function join (name) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(serverUrl, 'sync', doc, {
    WebSocketPolyfill: WebSocket, params: { token }, disableBc: true
  })
  provider.awareness.setLocalStateField('user', { name: name, color: '#123456' })
  return { doc, provider }
}

function synced (p) {
  return new Promise((resolve) => {
    if (p.synced) resolve()
    else p.once('sync', (s) => s && resolve())
  })
}

async function until (check, ms = 5000) {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function fieldNames (doc, entityName) {
  const ents = doc.getMap('entities')
  for (const [, ent] of ents) {
    if (ent.get('name') === entityName) {
      return [...ent.get('fields').values()].map((f) => f.get('name')).sort()
    }
  }
  return null
}

const a = join('node-a')
const b = join('node-b')
await Promise.all([synced(a.provider), synced(b.provider)])
const before = fieldNames(b.doc, 'claim')

const ents = a.doc.getMap('entities')
let claim = null
for (const [, ent] of ents) if (ent.get('name') === 'claim') claim = ent
claim.get('fields').set('fld_node', new Y.Map([
  ['name', 'from_node'], ['pos', 10], ['attrs', new Y.Map([['type', 'string']])]
]))
await until(() => (fieldNames(b.doc, 'claim') || []).includes('from_node'))

let presence = null
let diagnostics = null
await until(() => {
  for (const [id, state] of b.provider.awareness.getStates()) {
    if (id === a.doc.clientID && state.user) presence = state.user
    if (state.server) diagnostics = state.diagnostics
  }
  return presence !== null && diagnostics !== null
})

console.log(JSON.stringify({ before, after: fieldNames(b.doc, 'claim'), presence, diagnostics }))
a.provider.destroy()
b.provider.destroy()
process.exit(0)
