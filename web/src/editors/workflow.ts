// The workflow editor: a workflow's node graph drawn as SVG (laid out in layers from `first`),
// nodes added by type, connected, edited and deleted, on the same document everyone edits.

import * as Y from 'yjs'
import { errors, h, type Json, type Pending, row, s } from '../dom'
import { type Draft, plain, sorted, type YMap, ymap } from '../sync'
import { setOrDelete } from './entity'
import { nodeForm, workflowScope } from './nodeform'
import { entityNames, picker } from './pickers'

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
  roles: string[] = [] // the tenant's roles, for assignees
  // node types from the server's registry (GET /api/palette), this list until it answers
  nodeTypes: { type: string, description: string }[] = NODE_TYPES.map((type) => ({ type, description: '' }))

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
    for (const [key, node] of Object.entries(nodes)) {
      if (typeof node.ui?.x === 'number' && typeof node.ui?.y === 'number') pos.set(key, { x: node.ui.x, y: node.ui.y })
    }
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
      const g = s('g', {
        class: ['wf-node', key === this.node ? 'selected' : '', bad ? 'invalid' : ''].join(' '), 'data-node': key, 'data-type': node.type,
        transform: `translate(${p.x},${p.y})`
      },
      s('rect', { width: W, height: H, rx: node.type === 'gateway' ? 2 : 10, stroke: who ? who.color : undefined, 'stroke-width': who ? 3 : undefined }),
      s('text', { x: 10, y: 20, class: 'node-name' }, key === first ? `▶ ${key}` : key),
      s('text', { x: 10, y: 38, class: 'node-type' }, `${node.type ?? '?'}${node.title ? ' · ' + String(node.title).slice(0, 14) : ''}`),
      bad ? s('g', { class: 'node-error', 'data-error-count': d.errorsAt(path).length },
        s('circle', { cx: W - 2, cy: 2, r: 9 }), s('text', { x: W - 2, y: 6, 'text-anchor': 'middle' }, String(d.errorsAt(path).length)),
        s('title', {}, d.errorsAt(path).map((x) => `${x.path.slice(path.length + 1) || key}: ${x.message}`).join('\n'))) : null,
      who ? s('text', { x: W - 14, y: 14, 'text-anchor': 'end', class: 'node-who', fill: who.color }, who.name) : null)
      this.draggable(g, svg, key, p, ynodes)
      svg.append(g)
    }
    const typeSelect = h('select', { id: 'new-node-type', disabled: ro, onchange: (e: Event) => { this.newType = (e.target as HTMLSelectElement).value } },
      ...this.nodeTypes.map((t) => h('option', { value: t.type, title: t.description, selected: t.type === this.newType }, t.type)))
    return h('section', { class: 'pane graph-pane' },
      h('div', { class: 'row' }, h('h2', {}, `Workflow ${name}`),
        h('button', { class: 'danger', disabled: ro, onclick: () => { if (confirm(`Delete workflow ${name}?`)) d.change(() => d.workflows.delete(name)) } }, 'Delete workflow')),
      this.startForm(attrs),
      row('Title', h('input', { type: 'text', id: 'workflow-title', value: attrs.get('title') ?? '', disabled: ro, 'data-key': `${name}.title`, onchange: (e: Event) => d.change(() => setOrDelete(attrs, 'title', (e.target as HTMLInputElement).value)) })),
      h('div', { class: 'row toolbar' }, pending.input('new-node-name', 'node name', ro), typeSelect,
        h('button', { id: 'add-node', disabled: ro, onclick: () => this.addNode(ynodes, attrs, pending.take('new-node-name'), typeSelect.value) }, 'Add node')),
      errors(d.errorsAt(`workflows.${name}`).filter((x) => !x.path.includes('.nodes.')), `workflows.${name}`),
      h('div', { class: 'graph-scroll' }, svg))
  }

  /** Drag a node to move it; the position is saved in the draft (`ui`) when it is dropped,
   * so everyone sees the same layout. A click without movement selects the node. */
  private draggable (g: SVGElement, svg: SVGElement, key: string, p: { x: number, y: number }, ynodes: Y.Map<YMap>): void {
    const d = this.draft
    const path = `workflows.${this.selected}.nodes.${key}`
    g.addEventListener('pointerdown', (down: Event) => {
      const ev = down as PointerEvent
      if (ev.button !== 0) return
      const box = (svg as unknown as SVGSVGElement).getBoundingClientRect()
      const scale = box.width ? Number(svg.getAttribute('width')) / box.width : 1
      const [sx, sy] = [ev.clientX, ev.clientY]
      let moved = false
      let at = { ...p }
      d.dragging = d.canEdit
      const move = (e: PointerEvent): void => {
        if (!d.canEdit) return
        const dx = (e.clientX - sx) * scale
        const dy = (e.clientY - sy) * scale
        if (!moved && Math.abs(dx) + Math.abs(dy) < 4) return
        moved = true
        at = { x: Math.max(0, Math.round(p.x + dx)), y: Math.max(0, Math.round(p.y + dy)) }
        g.setAttribute('transform', `translate(${at.x},${at.y})`)
      }
      const up = (): void => {
        window.removeEventListener('pointermove', move)
        window.removeEventListener('pointerup', up)
        d.dragging = false
        if (moved) {
          const a = ynodes.get(key)?.get('attrs')
          if (a) d.change(() => a.set('ui', { x: at.x, y: at.y }))
        } else {
          this.node = key
        }
        d.show(path)
      }
      window.addEventListener('pointermove', move)
      window.addEventListener('pointerup', up)
    })
  }

  private properties (wf: YMap): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const ynodes: Y.Map<YMap> = wf.get('nodes')
    const n = this.node ? ynodes.get(this.node) : undefined
    const attrs: YMap = wf.get('attrs')
    if (!n) return h('section', { class: 'pane', id: 'node-props' }, h('h2', {}, 'Node'), h('p', { class: 'hint' }, 'Select a node in the graph.'))
    const key = this.node as string
    const a: YMap = n.get('attrs')
    const path = `workflows.${this.selected}.nodes.${key}`
    const others = [...ynodes.keys()].filter((k) => k !== key).sort()
    const nodes: Record<string, Json> = {}
    for (const [k, y] of ynodes) nodes[k] = y.get('attrs').toJSON()
    const form = nodeForm({
      draft: d, a, key, path, nodes: others, roles: this.roles, workflows: [...d.workflows.keys()].filter((w) => w !== this.selected).sort(),
      scope: workflowScope(d, attrs.toJSON(), nodes)
    })
    const shown = new Set(['type', 'title', 'assignee', 'approvers', 'rule', 'veto', 'rejected', 'form', 'due', 'escalate', 'output', 'action', 'entity',
      'record_id', 'plugin', 'connector', 'operation', 'input', 'set', 'branches', 'default', 'seconds', 'until', 'workflow', 'status', 'next', 'on_error', 'ui'])
    return h('section', { class: 'pane', id: 'node-props', 'data-for': key },
      h('div', { class: 'row' }, h('h2', {}, `Node ${key}`),
        h('button', { class: 'danger', id: 'delete-node', disabled: ro, onclick: () => this.removeNode(wf, key) }, 'Delete')),
      row('Type', h('select', { 'data-prop': 'type', disabled: ro, onchange: (e: Event) => d.change(() => a.set('type', (e.target as HTMLSelectElement).value)) },
        ...this.nodeTypes.map((t) => h('option', { value: t.type, title: t.description, selected: t.type === a.get('type') }, t.type)))),
      ...form,
      // anything the typed controls do not cover (retry, run_as…) stays visible, read-only
      ...[...a.keys()].filter((k) => !shown.has(k)).sort().map((k) => h('div', { class: 'row', 'data-prop-row': k }, h('span', { class: 'label' }, k), h('code', {}, JSON.stringify(plain(a.get(k)))))),
      h('div', { class: 'row' }, h('button', { id: 'set-first', disabled: ro || attrs.get('first') === key, onclick: () => d.change(() => attrs.set('first', key)) }, 'Start here')),
      errors(d.errorsAt(path).filter((x) => !a.has(x.path.slice(path.length + 1).split(/[.[]/)[0])), path))
  }

  /** How the workflow starts: by hand, or when a record of an entity is created or updated. */
  private startForm (attrs: YMap): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const start: Json[] = Array.isArray(attrs.get('start')) ? attrs.get('start') : []
    const rec = start.find((x) => x?.type === 'record')
    const manual = start.some((x) => x?.type === 'manual')
    const others = start.filter((x) => x?.type !== 'record' && x?.type !== 'manual')
    const write = (r: Json, m: boolean): void => d.change(() => attrs.set('start', [...(r ? [r] : []), ...(m ? [{ type: 'manual' }] : []), ...others]))
    return h('div', { id: 'start-form' },
      row('When a record of', picker({ key: 'start.entity', value: rec?.entity, options: entityNames(d), empty: 'no entity', disabled: ro, set: (v) => write(v ? { type: 'record', entity: v, event: rec?.event ?? 'created' } : undefined, manual) })),
      rec ? row('is', picker({ key: 'start.event', value: rec.event, options: ['created', 'updated', 'deleted'], disabled: ro, set: (v) => write({ ...rec, event: v ?? 'created' }, manual) })) : null,
      row('Started by hand too', h('input', { type: 'checkbox', checked: manual, disabled: ro, onchange: (e: Event) => write(rec, (e.target as HTMLInputElement).checked) })),
      errors(d.errorsAt(`workflows.${this.selected}.start`), `workflows.${this.selected}`))
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
