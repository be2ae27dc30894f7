// Yjs editors for bench/designer.py: stock yjs documents behind the stock providers, the
// y-websocket provider for Plinth's designer, @hocuspocus/provider for Hocuspocus. Run from the
// peers' cache directory (bench/designer.py copies it there so its imports resolve):
//
//   node yclients.mjs '<json config>'
//
// config.mode:
//   "read"  — sync the room, print its state as base64 (to give Hocuspocus the same document);
//   "write" — sync the room, apply config.state to it, wait until the server has it;
//   "edit"  — config.editors editors (numbers) join the room; each adds a field of its own to
//             the entity config.entity, prints "ready" when all have, waits for "go" on stdin,
//             then sets its field's label config.rate times a second for config.seconds,
//             waits config.grace seconds and prints one JSON line: the last sequence number
//             each editor sent and, for observers, the latency of every edit seen from others
//             and the last sequence number seen per editor.
// Observers (config.observers) apply everything they receive. The others ("quiet" editors)
// stop handing received messages to their provider once synced: the server still sends every
// update to every connection (its full fan-out cost is paid and the bytes are read), but 200
// editors' worth of Yjs decoding does not starve a 2-core machine's clients.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider } from '@hocuspocus/provider'
import WebSocket from 'ws'
import readline from 'node:readline'

const config = JSON.parse(process.argv[2])
const now = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

class QuietSocket extends WebSocket {
  constructor (...args) {
    super(...args)
    this.quiet = false
    this.wrapped = new Map()
  }

  // Both providers listen through addEventListener (y-websocket via the onmessage setter).
  addEventListener (type, listener, options) {
    if (type !== 'message') return super.addEventListener(type, listener, options)
    const wrapped = (event) => { if (!this.quiet) listener.call(this, event) }
    this.wrapped.set(listener, wrapped)
    return super.addEventListener(type, wrapped, options)
  }

  removeEventListener (type, listener) {
    return super.removeEventListener(type, this.wrapped.get(listener) ?? listener)
  }
}

function join () {
  const doc = new Y.Doc()
  if (config.kind === 'plinth') {
    const provider = new WebsocketProvider(config.url, 'sync', doc, {
      WebSocketPolyfill: QuietSocket, params: { token: config.token }, disableBc: true
    })
    return {
      doc,
      provider,
      socket: () => provider.ws,
      synced: () => new Promise((resolve) => {
        if (provider.synced) resolve()
        else provider.on('sync', (s) => s && resolve())
      }),
      // y-websocket reconnects after 30 s without a message; a quiet editor hears none.
      keepAlive: () => setInterval(() => { provider.wsLastMessageReceived = Date.now() }, 1000),
      pending: () => 0
    }
  }
  const provider = new HocuspocusProvider({
    url: config.url,
    name: config.room,
    document: doc,
    token: config.token,
    WebSocketPolyfill: QuietSocket,
    messageReconnectTimeout: 3600 * 1000 // a quiet editor hears nothing
  })
  return {
    doc,
    provider,
    socket: () => provider.configuration.websocketProvider.webSocket,
    synced: () => new Promise((resolve) => {
      if (provider.isSynced) resolve()
      else provider.on('synced', () => resolve())
    }),
    keepAlive: () => null,
    pending: () => provider.unsyncedChanges
  }
}

async function settled (client) {
  for (let i = 0; i < 600 && client.pending() > 0; i++) await sleep(50)
}

function entity (doc) {
  for (const [, ent] of doc.getMap('entities')) if (ent.get('name') === config.entity) return ent
  throw new Error(`no entity ${config.entity} in the room`)
}

async function read () {
  const client = join()
  await client.synced()
  console.log(Buffer.from(Y.encodeStateAsUpdate(client.doc)).toString('base64'))
  client.provider.destroy()
}

async function write () {
  const client = join()
  await client.synced()
  Y.applyUpdate(client.doc, Buffer.from(config.state, 'base64'))
  await sleep(200)
  await settled(client)
  client.provider.destroy()
}

async function edit () {
  const editors = []
  for (const n of config.editors) {
    const client = join()
    editors.push({ n, client, seq: 0, observer: config.observers.includes(n) })
  }
  await Promise.all(editors.map((e) => e.client.synced()))
  for (const e of editors) {
    const fields = entity(e.client.doc).get('fields')
    const key = `fld_bench_${e.n}`
    if (!fields.has(key)) {
      fields.set(key, new Y.Map([
        ['name', `bench_${e.n}`],
        ['pos', 1000 + e.n],
        ['attrs', new Y.Map([['type', 'string'], ['label', 'ready']])]
      ]))
    }
    e.attrs = fields.get(key).get('attrs')
  }
  await Promise.all(editors.map((e) => settled(e.client)))
  await sleep(500)

  const latencies = []
  const seen = {}
  for (const e of editors.filter((e) => e.observer)) {
    seen[e.n] = {}
    entity(e.client.doc).get('fields').observeDeep((events) => {
      const at = now()
      for (const ev of events) {
        if (!(ev.target instanceof Y.Map) || !ev.keysChanged || !ev.keysChanged.has('label')) continue
        const parts = String(ev.target.get('label')).split(':')
        if (parts.length !== 3) continue
        const [from, seq, sent] = [Number(parts[0]), Number(parts[1]), Number(parts[2])]
        if (from === e.n) continue
        latencies.push(Math.round((at - sent) * 100) / 100)
        seen[e.n][from] = Math.max(seen[e.n][from] ?? 0, seq)
      }
    })
  }
  for (const e of editors.filter((e) => !e.observer)) {
    e.client.socket().quiet = true
    e.alive = e.client.keepAlive()
  }

  console.log('ready')
  const lines = readline.createInterface({ input: process.stdin })
  await new Promise((resolve) => lines.once('line', resolve))

  const period = 1000 / config.rate
  const timers = []
  for (const e of editors) {
    const tick = () => {
      e.seq += 1
      e.attrs.set('label', `${e.n}:${e.seq}:${now().toFixed(3)}`)
    }
    // Editors start spread over one period, so the room sees a steady stream.
    timers.push(setTimeout(() => { tick(); timers.push(setInterval(tick, period)) }, Math.random() * period))
  }
  await sleep(config.seconds * 1000)
  for (const t of timers) { clearTimeout(t); clearInterval(t) }
  await sleep(config.grace * 1000)

  const sent = Object.fromEntries(editors.map((e) => [e.n, e.seq]))
  // Written, then waited for: stdout to a pipe is asynchronous, and process.exit() below would
  // cut what is not flushed yet at 64 KiB (200 editors' latencies are more).
  await new Promise((resolve) => process.stdout.write(JSON.stringify({ sent, seen, latencies }) + '\n', resolve))
  for (const e of editors) {
    if (e.alive) clearInterval(e.alive)
    e.client.provider.destroy()
  }
}

const modes = { read, write, edit }
await modes[config.mode]()
process.exit(0)
