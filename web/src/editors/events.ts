// What a component does on its events (a row clicked, a form submitted): a list of actions
// per event, each with typed controls (src/plinth/metadata/kinds/page.schema.json#/$defs/action)
// instead of JSON.

import { h, type Json } from '../dom'
import { expressionInput, picker, type Scope } from './pickers'

const ACTIONS = ['navigate', 'create_record', 'update_record', 'start_workflow', 'complete_task', 'set_state', 'refresh']

export interface EventsContext {
  key: string // data-key prefix (the component id)
  events: string[] // the kind's events
  value: Record<string, Json[]> | undefined
  disabled: boolean
  scope: Scope
  pages: string[] // page paths, for navigate
  components: string[] // component ids of the page, for refresh
  workflows: string[]
  entities: string[]
  fieldsOf: (entity: string | undefined) => string[]
  set: (v: Record<string, Json[]> | undefined) => void
}

// The action type each "add action" list shows, by component and event: the panel is drawn
// again on every change (a co-editor's, the canvas's), which must not undo what was picked.
const picked = new Map<string, string>()

export function eventsEditor (c: EventsContext): HTMLElement {
  const all = c.value ?? {}
  const write = (event: string, list: Json[]): void => {
    const next = { ...all, [event]: list }
    if (!list.length) delete next[event]
    c.set(Object.keys(next).length ? next : undefined)
  }
  return h('div', { class: 'events', 'data-key': `${c.key}.events` }, ...c.events.map((event) => {
    const list = Array.isArray(all[event]) ? all[event] : []
    const at = `${c.key}.${event}`
    const add = h('select', { disabled: c.disabled, 'data-add-action': event, onchange: (e: Event) => picked.set(at, (e.target as HTMLSelectElement).value) },
      ...ACTIONS.map((a) => h('option', { value: a }, a.replace('_', ' ')))) as HTMLSelectElement
    add.value = picked.get(at) ?? ACTIONS[0]
    return h('fieldset', { 'data-event': event }, h('legend', {}, `on ${event.replace('_', ' ')}`),
      ...list.map((action, i) => h('div', { class: 'action', 'data-action': i },
        h('div', { class: 'row' }, h('b', {}, action.type?.replace('_', ' ') ?? '?'),
          h('button', { disabled: c.disabled, title: 'remove action', onclick: () => write(event, list.filter((_, j) => j !== i)) }, '✕')),
        ...controls(c, `${c.key}.events.${event}.${i}`, action, (next) => write(event, list.map((x, j) => j === i ? next : x))))),
      h('div', { class: 'row' }, add, h('button', { disabled: c.disabled, 'data-add-event': event, onclick: () => write(event, [...list, starter(add.value, c)]) }, 'Add action')))
  }))
}

/** A new action, close to valid. */
function starter (type: string, c: EventsContext): Json {
  switch (type) {
    case 'navigate': return { type, to: c.pages[0] ?? '/' }
    case 'create_record': return { type, entity: c.entities[0] ?? '', values: {} }
    case 'update_record': return { type, entity: c.entities[0] ?? '', record: '{{ row.id }}', values: {} }
    case 'start_workflow': return { type, workflow: c.workflows[0] ?? '' }
    case 'complete_task': return { type, task: '', outcome: 'complete' }
    case 'set_state': return { type, key: 'selected', value: '{{ row.id }}' }
    default: return { type }
  }
}

function controls (c: EventsContext, key: string, a: Json, set: (a: Json) => void): HTMLElement[] {
  const put = (k: string, v: Json): void => { const next = { ...a, [k]: v }; if (v === undefined) delete next[k]; set(next) }
  const expr = (k: string, label: string, placeholder = '{{ … }}'): HTMLElement =>
    h('label', { class: 'row' }, h('span', { class: 'label' }, label), expressionInput({ key: `${key}.${k}`, value: a[k], scope: c.scope, disabled: c.disabled, placeholder, set: (v) => put(k, v) }))
  const pick = (k: string, label: string, options: string[]): HTMLElement =>
    h('label', { class: 'row' }, h('span', { class: 'label' }, label), picker({ key: `${key}.${k}`, value: a[k], options, disabled: c.disabled, set: (v) => put(k, v) }))
  switch (a.type) {
    case 'navigate': return [pick('to', 'to page', c.pages), expr('to', 'or address', '/claims/{{ row.id }}')]
    case 'create_record': return [pick('entity', 'entity', c.entities), values(c, key, 'values', a, c.fieldsOf(a.entity), put)]
    case 'update_record': return [pick('entity', 'entity', c.entities), expr('record', 'record id'), values(c, key, 'values', a, c.fieldsOf(a.entity), put)]
    case 'start_workflow': return [pick('workflow', 'workflow', c.workflows), values(c, key, 'input', a, null, put)]
    case 'complete_task': return [expr('task', 'task id'), pick('outcome', 'outcome', ['complete', 'approved', 'rejected'])]
    case 'set_state': return [h('label', { class: 'row' }, h('span', { class: 'label' }, 'state key'), h('input', { type: 'text', value: a.key ?? '', disabled: c.disabled, 'data-key': `${key}.key`, pattern: '[a-z][a-z0-9_]*', onchange: (e: Event) => put('key', (e.target as HTMLInputElement).value.trim()) })), expr('value', 'value')]
    case 'refresh': return [pick('component', 'component', c.components)]
    default: return []
  }
}

/** A map of field (or input) names to bound values; names picked from `fields` when known. */
function values (c: EventsContext, key: string, k: string, a: Json, fields: string[] | null, put: (k: string, v: Json) => void): HTMLElement {
  const m: Record<string, Json> = a[k] ?? {}
  const free = fields ? fields.filter((f) => !(f in m)) : null
  const name = free ? h('select', { disabled: c.disabled }, ...free.map((f) => h('option', { value: f }, f)))
    : h('input', { type: 'text', placeholder: 'name', disabled: c.disabled })
  return h('div', { class: 'values', 'data-values': k }, ...Object.entries(m).map(([n, v]) => h('div', { class: 'row', 'data-entry': n }, h('span', { class: 'label' }, n),
    expressionInput({ key: `${key}.${k}.${n}`, value: typeof v === 'string' ? v : JSON.stringify(v), scope: c.scope, disabled: c.disabled, set: (x) => put(k, { ...m, [n]: x ?? '' }) }),
    h('button', { disabled: c.disabled, title: 'remove', onclick: () => { const { [n]: _, ...rest } = m; put(k, rest) } }, '✕'))),
  h('div', { class: 'row' }, name, h('button', { disabled: c.disabled || (free !== null && !free.length), onclick: () => { const n = (name as HTMLInputElement).value.trim(); if (n && !(n in m)) put(k, { ...m, [n]: '' }) } }, 'Add value')))
}
