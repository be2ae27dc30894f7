// Hocuspocus, the Node Yjs server bench/designer.py compares Plinth's designer with: a bearer
// token checked against a set, documents persisted to PostgreSQL by Hocuspocus's database
// extension (its default debounce), nothing else. Run from the peers' cache directory
// (bench/designer.py copies it there so its imports resolve):
//
//   node hocuspocus-server.mjs <port> <postgresql-url> <token>
import { Server } from '@hocuspocus/server'
import { Database } from '@hocuspocus/extension-database'
import pg from 'pg'

const [port, databaseUrl, token] = process.argv.slice(2)
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 })
await pool.query('CREATE TABLE IF NOT EXISTS documents (name text PRIMARY KEY, data bytea NOT NULL)')

const server = new Server({
  port: Number(port),
  address: '127.0.0.1',
  quiet: true,
  async onAuthenticate ({ token: given }) {
    if (given !== token) throw new Error('unauthorized')
  },
  extensions: [
    new Database({
      async fetch ({ documentName }) {
        const found = await pool.query('SELECT data FROM documents WHERE name = $1', [documentName])
        return found.rows.length ? found.rows[0].data : null
      },
      async store ({ documentName, state }) {
        await pool.query(
          'INSERT INTO documents (name, data) VALUES ($1, $2) ' +
            'ON CONFLICT (name) DO UPDATE SET data = excluded.data',
          [documentName, state]
        )
      }
    })
  ]
})

await server.listen()
console.log(`hocuspocus listening on ${port}`)
