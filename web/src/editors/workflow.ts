// The workflow editor: a workflow's node graph drawn as SVG (laid out in layers from `first`),
// nodes added by type, connected, edited and deleted, on the same document everyone edits.

import * as Y from 'yjs'
import { errors, h, type Json, type Pending, row, s } from '../dom'
import { type Draft, plain, sorted, type YMap, ymap } from '../sync'
import { setOrDelete } from './entity'
import { propInput } from './schemaform'

export const NODE_TYPES = ['user_task', 'approval', 'service_task', 'assign', 'gateway', 'parallel',
  'join', 'timer', 'subworkflow', 'end']
const W = 150
const H = 52
const GAP_X = 90
const GAP_Y = 34

interface Edge { from: string, to: string, label: string }

/** Every outgoing edge of a node, as the workflow engine reads them. */
export function edgesOf (name: string, node: Json): Edge[] {
  const out: Edge[] = []
  const add = (to: Json, label: string): void => { if (typeof to === 'string' && to) out.push({ from: name, to, label }) }
  add(node.next, 'next')
  add(node.on_error, 'on error')
  add(node.rejected, 'rejected')
  add(node.default, 'default')
  add(node.escalate?.next, 'escalate')
  for (const [i, b] of (Array.isArray(node.branches) ? node.branches : []).entries()) {
    if (typeof b === 'string') add(b, `branch ${i + 1}`)
    else add(b?.next, b?.when ? String(b.when).slice(0, 18) : `branch ${i + 1}`)
  }
  return out
}

/** An edge's SVG path and label position: forward edges go right to left side; edges within
 * a column bulge out to the right; edges back to an earlier column loop under the nodes. */
function edgePath (a: { x: number, y: number }, b: { x: number, y: number }): { d: string, lx: number, ly: number } {
  if (b.x > a.x) {
    const [x1, y1, x2, y2] = [a.x + W, a.y + H / 2, b.x, b.y + H / 2]
    const bend = (x2 - x1) / 2
    return { d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`, lx: x1 + bend, ly: (y1 + y2) / 2 - 4 }
  }
  if (b.x === a.x) {
    const [x, y1, y2] = [a.x + W, a.y + H / 2, b.y + H / 2]
    return { d: `M ${x} ${y1} C ${x + 36} ${y1}, ${x + 36} ${y2}, ${x} ${y2}`, lx: x + 30, ly: (y1 + y2) / 2 }
  }
  const [x1, y1, x2, y2] = [a.x + W / 2, a.y + H, b.x + W / 2, b.y + H]
  const low = Math.max(y1, y2) + 26
  return { d: `M ${x1} ${y1} C ${x1} ${low}, ${x2} ${low}, ${x2} ${y2}`, lx: (x1 + x2) / 2, ly: low - 4 }
}

/** Layers by distance from `first`; nodes it does not reach come last. */
function layout (first: string, nodes: Record<string, Json>): Map<string, { x: number, y: number }> {
  const layer = new Map<string, number>()
  const queue = first in nodes ? [first] : []
  if (queue.length) layer.set(first, 0)
  while (queue.length) {
    const at = queue.shift() as string
    for (const e of edgesOf(at, nodes[at])) {
      if (e.to in nodes && !layer.has(e.to)) { layer.set(e.to, (layer.get(at) ?? 0) + 1); queue.push(e.to) }
    }
  }
  const depth = Math.max(-1, ...layer.values()) + 1
  for (const name of Object.keys(nodes)) if (!layer.has(name)) layer.set(name, depth)
  const rows = new Map<number, number>()
  const pos = new Map<string, { x: number, y: number }>()
  for (const [name, l] of layer) {
    const r = rows.get(l) ?? 0
    rows.set(l, r + 1)
    pos.set(name, { x: 20 + l * (W + GAP_X), y: 20 + r * (H + GAP_Y) })
  }
  return pos
}

export class WorkflowEditor {
  selected: string | null = null // workflow name
  node: string | null = null // node name
  newType = 'user_task' // the type chosen for the next node
  connectTo = '' // the node chosen to connect to

  constructor (private draft: Draft) {}

  private workflow (): YMap | undefined {
    const wfs = this.draft.workflows
    if (!this.selected || !wfs.has(this.selected)) this.selected = sorted(wfs)[0]?.[0] ?? null
    return this.selected ? wfs.get(this.selected) : undefined
  }

  render (pending: Pending): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const wf = this.workflow()
    const list = h('ul', { class: 'list', id: 'workflows' })
    for (const [name] of sorted(d.workflows)) {
      list.append(h('li', {
        class: name === this.selected ? 'active' : '', 'data-workflow': name,
        onclick: () => { this.selected = name; this.node = null; d.show(`workflows.${name}`) }
      }, name, d.errorsAt(`workflows.${name}`).length ? h('span', { class: 'error' }, ' ●') : null))
    }
    const left = h('section', { class: 'pane' }, h('h2', {}, 'Workflows'), list,
      h('div', { class: 'row' }, pending.input('new-workflow', 'new workflow name', ro),
        h('button', { id: 'add-workflow', disabled: ro, onclick: () => this.addWorkflow(pending.take('new-workflow')) }, 'Add')))
    if (!wf) return h('div', { class: 'editor-grid three' }, left, h('section', { class: 'pane' }, h('p', {}, 'No workflow yet.')), h('section', { class: 'pane' }))
    return h('div', { class: 'editor-grid three' }, left, this.graph(wf, pending), this.properties(wf))
  }

  private graph (wf: YMap, pending: Pending): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const name = this.selected as string
    const attrs: YMap = wf.get('attrs')
    const ynodes: Y.Map<YMap> = wf.get('nodes')
    const nodes: Record<string, Json> = {}
    for (const [key, n] of sorted(ynodes)) nodes[key] = n.get('attrs').toJSON()
    const first: string = attrs.get('first') ?? ''
    const pos = layout(first, nodes)
    const sel = d.selections()
    const width = Math.max(400, ...[...pos.values()].map((p) => p.x + W + 20))
    const height = Math.max(200, ...[...pos.values()].map((p) => p.y + H + 20))
    const svg = s('svg', { id: 'graph', width, height, viewBox: `0 0 ${width} ${height}` },
      s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        s('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#6b7a99' }))))
    for (const [from, node] of Object.entries(nodes)) {
      for (const e of edgesOf(from, node)) {
        const a = pos.get(e.from)
        const b = pos.get(e.to)
        if (!a || !b) continue
        const { d: line, lx, ly } = edgePath(a, b)
        svg.append(s('g', { class: 'wf-edge', 'data-from': e.from, 'data-to': e.to },
          s('path', { d: line, fill: 'none', stroke: '#6b7a99', 'marker-end': 'url(#arrow)' }),
          s('text', { x: lx, y: ly, class: 'edge-label' }, e.label)))
      }
    }
    for (const [key, node] of Object.entries(nodes)) {
      const p = pos.get(key) as { x: number, y: number }
      const path = `workflows.${name}.nodes.${key}`
      const who = sel.get(path)
      const bad = d.errorsAt(path).length > 0
      svg.append(s('g', {
        class: ['wf-node', key === this.node ? 'selected' : '', bad ? 'invalid' : ''].join(' '), 'data-node': key, 'data-type': node.type,
        transform: `translate(${p.x},${p.y})`, onclick: () => { this.node = key; d.show(path) }
      },
      s('rect', { width: W, height: H, rx: node.type === 'gateway' ? 2 : 10, stroke: who ? who.color : undefined, 'stroke-width': who ? 3 : undefined }),
      s('text', { x: 10, y: 20, class: 'node-name' }, key === first ? `▶ ${key}` : key),
      s('text', { x: 10, y: 38, class: 'node-type' }, `${node.type ?? '?'}${node.title ? ' · ' + String(node.title).slice(0, 14) : ''}`),
      who ? s('text', { x: W - 6, y: 14, 'text-anchor': 'end', class: 'node-who', fill: who.color }, who.name) : null))
    }
    const typeSelect = h('select', { id: 'new-node-type', disabled: ro, onchange: (e: Event) => { this.newType = (e.target as HTMLSelectElement).value } },
      ...NODE_TYPES.map((t) => h('option', { value: t, selected: t === this.newType }, t)))
    return h('section', { class: 'pane graph-pane' },
      h('div', { class: 'row' }, h('h2', {}, `Workflow ${name}`),
        h('button', { class: 'danger', disabled: ro, onclick: () => { if (confirm(`Delete workflow ${name}?`)) d.change(() => d.workflows.delete(name)) } }, 'Delete workflow')),
      row('Title', h('input', { type: 'text', id: 'workflow-title', value: attrs.get('title') ?? '', disabled: ro, 'data-key': `${name}.title`, onchange: (e: Event) => d.change(() => setOrDelete(attrs, 'title', (e.target as HTMLInputElement).value)) })),
      h('div', { class: 'row toolbar' }, pending.input('new-node-name', 'node name', ro), typeSelect,
        h('button', { id: 'add-node', disabled: ro, onclick: () => this.addNode(ynodes, attrs, pending.take('new-node-name'), typeSelect.value) }, 'Add node')),
      errors(d.errorsAt(`workflows.${name}`).filter((x) => !x.path.includes('.nodes.')), `workflows.${name}`),
      h('div', { class: 'graph-scroll' }, svg))
  }

  private properties (wf: YMap): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const ynodes: Y.Map<YMap> = wf.get('nodes')
    const n = this.node ? ynodes.get(this.node) : undefined
    if (!n) return h('section', { class: 'pane', id: 'node-props' }, h('h2', {}, 'Node'), h('p', { class: 'hint' }, 'Select a node in the graph.'))
    const key = this.node as string
    const a: YMap = n.get('attrs')
    const path = `workflows.${this.selected}.nodes.${key}`
    const others = [...ynodes.keys()].filter((k) => k !== key).sort()
    const target = h('select', { id: 'connect-target', disabled: ro, onchange: (e: Event) => { this.connectTo = (e.target as HTMLSelectElement).value } },
      ...others.map((k) => h('option', { value: k, selected: k === this.connectTo }, k)))
    const keys = ['title', ...[...a.keys()].filter((k) => k !== 'type' && k !== 'title').sort()]
    const fields = keys.map((k) => {
      const value = plain(a.get(k))
      const schema = typeof value === 'string' || value === undefined ? { type: 'string' }
        : typeof value === 'number' ? { type: 'number' } : typeof value === 'boolean' ? { type: 'boolean' } : {}
      return h('label', { class: 'prop', 'data-prop-row': k }, h('span', { class: 'label' }, k),
        propInput({ name: k, schema, value, required: false, disabled: ro, key: `${key}.${k}`, set: (v) => d.change(() => setOrDelete(a, k, v)) }),
        errors(d.errorsAt(`${path}.${k}`), path))
    })
    const newKey = h('input', { type: 'text', id: 'node-new-prop', placeholder: 'property', disabled: ro }) as HTMLInputElement
    const newValue = h('input', { type: 'text', id: 'node-new-value', placeholder: 'value (JSON or text)', disabled: ro }) as HTMLInputElement
    const attrs: YMap = wf.get('attrs')
    return h('section', { class: 'pane', id: 'node-props', 'data-for': key },
      h('div', { class: 'row' }, h('h2', {}, `Node ${key}`),
        h('button', { class: 'danger', id: 'delete-node', disabled: ro, onclick: () => this.removeNode(wf, key) }, 'Delete')),
      row('Type', h('select', { 'data-prop': 'type', disabled: ro, onchange: (e: Event) => d.change(() => a.set('type', (e.target as HTMLSelectElement).value)) },
        ...NODE_TYPES.map((t) => h('option', { value: t, selected: t === a.get('type') }, t)))),
      ...fields,
      h('div', { class: 'row' }, newKey, newValue, h('button', {
        disabled: ro,
        onclick: () => {
          const k = newKey.value.trim()
          if (!k) return
          let v: Json = newValue.value
          try { v = JSON.parse(v) } catch { /* plain text */ }
          d.change(() => a.set(k, v))
        }
      }, 'Set')),
      h('h2', {}, 'Connections'),
      h('ul', { class: 'list edges' }, ...edgesOf(key, a.toJSON()).map((e) => h('li', { 'data-edge': `${e.from}->${e.to}` }, `${e.label} → ${e.to} `,
        h('button', { disabled: ro, title: 'remove connection', onclick: () => this.disconnect(a, e.to) }, '✕')))),
      h('div', { class: 'row' }, target, h('button', { id: 'connect', disabled: ro || !others.length, onclick: () => this.connect(a, target.value) }, 'Connect')),
      h('div', { class: 'row' }, h('button', { id: 'set-first', disabled: ro || attrs.get('first') === key, onclick: () => d.change(() => attrs.set('first', key)) }, 'Start here')),
      errors(d.errorsAt(path).filter((x) => !a.has(x.path.slice(path.length + 1).split(/[.[]/)[0])), path))
  }

  /** Connect a node to `to`: `next` for most, a branch for gateways and parallel splits. */
  private connect (a: YMap, to: string): void {
    if (!to) return
    const type = a.get('type')
    this.draft.change(() => {
      if (type === 'gateway') {
        if (!a.get('default')) a.set('default', to)
        else a.set('branches', [...(a.get('branches') ?? []), { when: 'true', next: to }])
      } else if (type === 'parallel') {
        a.set('branches', [...(a.get('branches') ?? []), to])
      } else {
        a.set('next', to)
      }
    })
  }

  private disconnect (a: YMap, to: string): void {
    this.draft.change(() => unlink(a, to))
  }

  addNode (ynodes: Y.Map<YMap>, attrs: YMap, name: string, type: string): void {
    const key = name.trim().toLowerCase().replace(/[^a-z0-9_]/g, '_') || `${type}_${ynodes.size + 1}`
    if (ynodes.has(key) || !/^[a-z]/.test(key)) return
    const spec: Record<string, Json> = { type, ...presets(type, this.draft) }
    this.draft.change(() => {
      ynodes.set(key, ymap({ pos: ynodes.size, attrs: ymap(spec) }))
      if (!attrs.get('first')) attrs.set('first', key)
    })
    this.node = key
    this.draft.select(`workflows.${this.selected}.nodes.${key}`)
  }

  /** Delete a node and every connection to it. */
  private removeNode (wf: YMap, key: string): void {
    const ynodes: Y.Map<YMap> = wf.get('nodes')
    const attrs: YMap = wf.get('attrs')
    this.draft.change(() => {
      ynodes.delete(key)
      for (const n of ynodes.values()) unlink(n.get('attrs'), key)
      if (attrs.get('first') === key) attrs.delete('first')
    })
    this.node = null
  }

  addWorkflow (name: string): void {
    const key = name.trim().toLowerCase().replace(/[^a-z0-9_]/g, '_')
    if (!key || this.draft.workflows.has(key)) return
    this.draft.change(() => {
      this.draft.workflows.set(key, ymap({
        pos: this.draft.workflows.size,
        attrs: ymap({ title: name.trim(), start: [{ type: 'manual' }], first: 'done' }),
        nodes: ymap({ done: ymap({ pos: 0, attrs: ymap({ type: 'end' }) }) })
      }))
    })
    this.selected = key
    this.node = 'done'
  }
}

/** Remove every reference from node attributes `a` to node `to`. */
function unlink (a: YMap, to: string): void {
  for (const k of ['next', 'on_error', 'rejected', 'default']) if (a.get(k) === to) a.delete(k)
  const esc = a.get('escalate')
  if (esc?.next === to) { const { next: _, ...rest } = esc; a.set('escalate', rest) }
  const branches = a.get('branches')
  if (Array.isArray(branches)) {
    const kept = branches.filter((b: Json) => (typeof b === 'string' ? b : b?.next) !== to)
    if (kept.length !== branches.length) a.set('branches', kept)
  }
}

/** What a new node of a type starts with, so it is close to valid. */
function presets (type: string, draft: Draft): Record<string, Json> {
  const entity = sorted(draft.entities)[0]?.[1].get('name')
  switch (type) {
    case 'user_task': return { title: 'New task', assignee: { role: 'owner' } }
    case 'approval': return { title: 'Approve', approvers: [{ role: 'owner' }] }
    case 'service_task': return entity ? { action: 'record.update', entity, record_id: 'vars.record.id' } : { action: 'record.update' }
    case 'assign': return { set: { done: 'true' } }
    case 'timer': return { seconds: 60 }
    default: return {}
  }
}
