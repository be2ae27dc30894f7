// Typed controls for every property of a workflow node (src/plinth/workflows/workflow.schema.json):
// who a task goes to, the form it shows, its SLA and escalation, what a service task does,
// the branches of a gateway. Nobody types JSON; each control writes one node attribute.

import { errors, h, type Json, row } from '../dom'
import type { Draft, YMap } from '../sync'
import { setOrDelete } from './entity'
import { checklist, entityNames, expressionInput, fieldNames, picker, type Scope } from './pickers'

export interface NodeContext {
  draft: Draft
  a: YMap // the node's attributes
  key: string // the node's name
  path: string // workflows.<wf>.nodes.<key>
  nodes: string[] // the other nodes, targets of connections
  roles: string[]
  workflows: string[]
  scope: Scope // what the workflow's expressions may name
}

const ACTIONS = ['record.create', 'record.update', 'plugin', 'connector']

/** The controls of one node, by its type. */
export function nodeForm (c: NodeContext): HTMLElement[] {
  const type = c.a.get('type')
  const out: HTMLElement[] = [text(c, 'title', 'Title')]
  if (type === 'user_task') out.push(assignee(c, 'assignee', 'Assignee', c.a.get('assignee')), formBuilder(c), sla(c), name(c, 'output', 'Output variable'))
  if (type === 'approval') out.push(approvers(c), rule(c), check(c, 'veto', 'One rejection rejects'), target(c, 'rejected', 'When rejected, go to'), formBuilder(c), sla(c), name(c, 'output', 'Output variable'))
  if (type === 'service_task') out.push(...serviceTask(c))
  if (type === 'assign') out.push(mapping(c, 'set', 'Set variables', null))
  if (type === 'gateway') out.push(branches(c), target(c, 'default', 'Otherwise go to'))
  if (type === 'parallel') out.push(row('Branches', checklist(`${c.key}.branches`, c.nodes, c.a.get('branches'), ro(c), (v) => put(c, 'branches', v))))
  if (type === 'timer') out.push(number(c, 'seconds', 'Wait (seconds)'), expr(c, 'until', 'Or until'))
  if (type === 'subworkflow') out.push(row('Workflow', picker({ key: `${c.key}.workflow`, value: c.a.get('workflow'), options: c.workflows, disabled: ro(c), set: (v) => put(c, 'workflow', v) })))
  if (type === 'end') out.push(row('Outcome', picker({ key: `${c.key}.status`, value: c.a.get('status'), options: ['completed', 'failed'], empty: 'completed', disabled: ro(c), set: (v) => put(c, 'status', v) })))
  if (type !== 'end' && type !== 'gateway' && type !== 'parallel') out.push(target(c, 'next', 'Then go to'))
  if (type === 'service_task') out.push(target(c, 'on_error', 'On error go to'))
  return out
}

const ro = (c: NodeContext): boolean => !c.draft.canEdit
const put = (c: NodeContext, k: string, v: Json): void => c.draft.change(() => setOrDelete(c.a, k, v))
const here = (c: NodeContext, k: string): HTMLElement | null => errors(c.draft.errorsAt(`${c.path}.${k}`), c.path)
const serverErrors = (c: NodeContext, p: string): string[] => c.draft.errorsAt(`${c.path}.${p}`).map((d) => d.message)

function text (c: NodeContext, k: string, label: string): HTMLElement {
  return h('div', { 'data-prop-row': k }, row(label, h('input', {
    type: 'text', value: c.a.get(k) ?? '', disabled: ro(c), 'data-key': `${c.key}.${k}`, 'data-prop': k,
    onchange: (e: Event) => put(c, k, (e.target as HTMLInputElement).value.trim() || undefined)
  })), here(c, k))
}

/** A variable name (lower-case identifier). */
function name (c: NodeContext, k: string, label: string): HTMLElement {
  return h('div', { 'data-prop-row': k }, row(label, h('input', {
    type: 'text', value: c.a.get(k) ?? '', disabled: ro(c), 'data-key': `${c.key}.${k}`, 'data-prop': k, pattern: '[a-z][a-z0-9_]*',
    onchange: (e: Event) => put(c, k, (e.target as HTMLInputElement).value.trim() || undefined)
  })), here(c, k))
}

function number (c: NodeContext, k: string, label: string): HTMLElement {
  return h('div', { 'data-prop-row': k }, row(label, h('input', {
    type: 'number', min: 0, value: c.a.get(k) ?? '', disabled: ro(c), 'data-key': `${c.key}.${k}`, 'data-prop': k,
    onchange: (e: Event) => { const t = (e.target as HTMLInputElement).value; put(c, k, t === '' ? undefined : Number(t)) }
  })), here(c, k))
}

function check (c: NodeContext, k: string, label: string): HTMLElement {
  return h('div', { 'data-prop-row': k }, row(label, h('input', {
    type: 'checkbox', checked: !!c.a.get(k), disabled: ro(c), 'data-prop': k,
    onchange: (e: Event) => put(c, k, (e.target as HTMLInputElement).checked || undefined)
  })))
}

function expr (c: NodeContext, k: string, label: string): HTMLElement {
  return h('div', { 'data-prop-row': k }, row(label, expressionInput({
    key: `${c.key}.${k}`, value: c.a.get(k), scope: c.scope, disabled: ro(c), serverErrors: serverErrors(c, k), set: (v) => put(c, k, v)
  })))
}

function target (c: NodeContext, k: string, label: string): HTMLElement {
  return h('div', { 'data-prop-row': k }, row(label, picker({ key: `${c.key}.${k}`, value: c.a.get(k), options: c.nodes, disabled: ro(c), set: (v) => put(c, k, v) })), here(c, k))
}

// -- people ---------------------------------------------------------------------------------

/** Who: a role (optionally matching attributes, e.g. the record's country), a user, or an
 * expression naming a user. `write` gets the whole new assignee (undefined clears it). */
function assigneeControl (c: NodeContext, key: string, value: Json, write: (v: Json) => void): HTMLElement {
  const v = value && typeof value === 'object' ? value : {}
  const mode = v.user !== undefined ? 'user' : v.expr !== undefined ? 'expr' : 'role'
  const box = h('div', { class: 'assignee', 'data-assignee': key })
  const modeSel = h('select', {
    'data-key': `${key}.mode`, 'data-prop': 'mode', disabled: ro(c),
    onchange: (e: Event) => { const m = (e.target as HTMLSelectElement).value; write(m === 'role' ? { role: c.roles[0] ?? '' } : { [m]: '' }) }
  }, ...[['role', 'a role'], ['user', 'a user'], ['expr', 'an expression']].map(([m, l]) => h('option', { value: m, selected: m === mode }, l)))
  box.append(modeSel)
  if (mode === 'role') {
    box.append(picker({ key: `${key}.role`, value: v.role, options: c.roles, disabled: ro(c), empty: 'choose a role', set: (r) => write(r ? { ...v, role: r } : undefined) }))
    const attrs: Record<string, string> = v.attrs ?? {}
    for (const [ak, av] of Object.entries(attrs)) {
      box.append(h('div', { class: 'row match', 'data-match': ak }, h('span', {}, `whose ${ak} is`),
        expressionInput({ key: `${key}.attrs.${ak}`, value: av, scope: c.scope, disabled: ro(c), set: (x) => write({ ...v, attrs: { ...attrs, [ak]: x ?? '' } }) }),
        h('button', { disabled: ro(c), title: 'remove', onclick: () => { const { [ak]: _, ...rest } = attrs; write({ ...v, attrs: Object.keys(rest).length ? rest : undefined }) } }, '✕')))
    }
    const attr = h('input', { type: 'text', placeholder: 'user attribute (e.g. country)', disabled: ro(c), 'data-key': `${key}.newattr` }) as HTMLInputElement
    box.append(h('div', { class: 'row' }, attr, h('button', { disabled: ro(c), onclick: () => { const k = attr.value.trim(); if (k) write({ ...v, attrs: { ...attrs, [k]: '' } }) } }, 'Match attribute')))
  } else if (mode === 'user') {
    box.append(h('input', { type: 'text', value: v.user ?? '', placeholder: 'username', disabled: ro(c), 'data-key': `${key}.user`, 'data-prop': 'user', onchange: (e: Event) => write({ user: (e.target as HTMLInputElement).value.trim() }) }))
  } else {
    box.append(expressionInput({ key: `${key}.expr`, value: v.expr, scope: c.scope, disabled: ro(c), placeholder: 'e.g. vars.record.created_by', set: (x) => write({ expr: x ?? '' }) }))
  }
  return box
}

function assignee (c: NodeContext, k: string, label: string, value: Json): HTMLElement {
  return h('div', { 'data-prop-row': k }, row(label, assigneeControl(c, `${c.key}.${k}`, value, (v) => put(c, k, v))), here(c, k))
}

function approvers (c: NodeContext): HTMLElement {
  const list: Json[] = Array.isArray(c.a.get('approvers')) ? c.a.get('approvers') : []
  const write = (next: Json[]): void => put(c, 'approvers', next.length ? next : undefined)
  return h('fieldset', { 'data-prop-row': 'approvers' }, h('legend', {}, 'Approvers'),
    ...list.map((x, i) => h('div', { class: 'row', 'data-approver': i },
      assigneeControl(c, `${c.key}.approvers.${i}`, x, (v) => write(v === undefined ? list.filter((_, j) => j !== i) : list.map((y, j) => j === i ? v : y))),
      h('button', { disabled: ro(c), title: 'remove approver', onclick: () => write(list.filter((_, j) => j !== i)) }, '✕'))),
    h('button', { id: 'add-approver', disabled: ro(c), onclick: () => write([...list, { role: c.roles[0] ?? '' }]) }, 'Add approver'),
    here(c, 'approvers'))
}

function rule (c: NodeContext): HTMLElement {
  const v = c.a.get('rule')
  const quorum = typeof v === 'object' && v ? v.quorum : undefined
  const current = quorum !== undefined ? 'quorum' : (v ?? '')
  const box = h('div', { 'data-prop-row': 'rule' }, row('Decided by', picker({
    key: `${c.key}.rule`, value: current, options: ['any', 'all', 'majority', 'quorum'], empty: 'any (default)', disabled: ro(c),
    set: (r) => put(c, 'rule', r === 'quorum' ? { quorum: 1 } : r)
  })))
  if (quorum !== undefined) {
    box.append(row('Quorum', h('input', { type: 'number', min: 1, value: quorum, disabled: ro(c), 'data-key': `${c.key}.quorum`, onchange: (e: Event) => put(c, 'rule', { quorum: Math.max(1, Number((e.target as HTMLInputElement).value) || 1) }) })))
  }
  return box
}

/** SLA: a due time in hours (stored in seconds) and whom or where it escalates to. */
function sla (c: NodeContext): HTMLElement {
  const due = c.a.get('due')
  const esc: Json = c.a.get('escalate') ?? {}
  const writeEsc = (next: Json): void => {
    const clean = Object.fromEntries(Object.entries(next).filter(([, x]) => x !== undefined && x !== ''))
    put(c, 'escalate', Object.keys(clean).length ? clean : undefined)
  }
  return h('fieldset', { 'data-prop-row': 'due' }, h('legend', {}, 'SLA and escalation'),
    row('Due within (hours)', h('input', {
      type: 'number', min: 0, step: 'any', value: due ? Math.round((due / 3600) * 100) / 100 : '', disabled: ro(c), 'data-key': `${c.key}.due`, 'data-prop': 'due',
      onchange: (e: Event) => { const t = (e.target as HTMLInputElement).value; put(c, 'due', t === '' || Number(t) <= 0 ? undefined : Math.round(Number(t) * 3600)) }
    })),
    here(c, 'due'),
    row('Escalate to', esc.to ? assigneeControl(c, `${c.key}.escalate.to`, esc.to, (v) => writeEsc({ ...esc, to: v }))
      : h('button', { id: 'add-escalation', disabled: ro(c), onclick: () => writeEsc({ ...esc, to: { role: c.roles[0] ?? '' } }) }, 'Add an escalation assignee')),
    row('Or move on to', picker({ key: `${c.key}.escalate.next`, value: esc.next, options: c.nodes, disabled: ro(c), set: (v) => writeEsc({ ...esc, next: v }) })),
    here(c, 'escalate'))
}

/** The task's form: an entity, the fields the assignee edits and those shown read-only. */
function formBuilder (c: NodeContext): HTMLElement {
  const form: Json = c.a.get('form') ?? {}
  const write = (next: Json): void => {
    const clean = Object.fromEntries(Object.entries(next).filter(([, x]) => x !== undefined))
    put(c, 'form', Object.keys(clean).length ? clean : undefined)
  }
  const fields = fieldNames(c.draft, form.entity)
  const approval = c.a.get('type') === 'approval'
  return h('fieldset', { 'data-prop-row': 'form', class: 'form-builder' }, h('legend', {}, 'Form'),
    row('Entity', picker({ key: `${c.key}.form.entity`, value: form.entity, options: entityNames(c.draft), disabled: ro(c), empty: 'no form', set: (v) => write(v ? { ...form, entity: v, fields: undefined, show: undefined } : {}) })),
    form.entity ? row('Record', expressionInput({ key: `${c.key}.form.record`, value: form.record, scope: c.scope, disabled: ro(c), placeholder: 'vars.record.id', serverErrors: serverErrors(c, 'form.record'), set: (v) => write({ ...form, record: v }) })) : null,
    form.entity && !approval ? h('div', { class: 'row', 'data-form': 'fields' }, h('span', { class: 'label' }, 'Fields to fill'), checklist(`${c.key}.form.fields`, fields, form.fields, ro(c), (v) => write({ ...form, fields: v }))) : null,
    form.entity ? h('div', { class: 'row', 'data-form': 'show' }, h('span', { class: 'label' }, 'Fields shown'), checklist(`${c.key}.form.show`, fields, form.show, ro(c), (v) => write({ ...form, show: v }))) : null,
    here(c, 'form'))
}

// -- service tasks, variables, branches -----------------------------------------------------

function serviceTask (c: NodeContext): HTMLElement[] {
  const action = c.a.get('action')
  const out: HTMLElement[] = [h('div', { 'data-prop-row': 'action' }, row('Action', picker({ key: `${c.key}.action`, value: action, options: ACTIONS, disabled: ro(c), set: (v) => put(c, 'action', v) })), here(c, 'action'))]
  if (action === 'record.create' || action === 'record.update') {
    out.push(h('div', { 'data-prop-row': 'entity' }, row('Entity', picker({ key: `${c.key}.entity`, value: c.a.get('entity'), options: entityNames(c.draft), disabled: ro(c), set: (v) => put(c, 'entity', v) })), here(c, 'entity')))
    if (action === 'record.update') out.push(expr(c, 'record_id', 'Record id'))
  }
  if (action === 'plugin') out.push(text(c, 'plugin', 'Plugin'), text(c, 'operation', 'Operation'))
  if (action === 'connector') out.push(text(c, 'connector', 'Connector'), text(c, 'operation', 'Operation'))
  const fields = action === 'record.create' || action === 'record.update' ? fieldNames(c.draft, c.a.get('entity')) : null
  out.push(mapping(c, 'input', action?.startsWith('record.') ? 'Field values' : 'Input', fields), name(c, 'output', 'Output variable'))
  return out
}

/** A map of names to expressions; names picked from `fields` when given. */
function mapping (c: NodeContext, k: string, label: string, fields: string[] | null): HTMLElement {
  const m: Record<string, string> = c.a.get(k) ?? {}
  const write = (next: Record<string, string>): void => put(c, k, Object.keys(next).length ? next : undefined)
  const free = fields ? fields.filter((f) => !(f in m)) : null
  const nameIn = free ? h('select', { disabled: ro(c), 'data-key': `${c.key}.${k}.new` }, ...free.map((f) => h('option', { value: f }, f)))
    : h('input', { type: 'text', placeholder: 'name', disabled: ro(c), 'data-key': `${c.key}.${k}.new` })
  return h('fieldset', { 'data-prop-row': k }, h('legend', {}, label),
    ...Object.entries(m).map(([name, value]) => h('div', { class: 'row', 'data-entry': name }, h('span', { class: 'label' }, name),
      expressionInput({ key: `${c.key}.${k}.${name}`, value, scope: c.scope, disabled: ro(c), serverErrors: serverErrors(c, `${k}.${name}`), set: (v) => write({ ...m, [name]: v ?? '' }) }),
      h('button', { disabled: ro(c), title: 'remove', onclick: () => { const { [name]: _, ...rest } = m; write(rest) } }, '✕'))),
    h('div', { class: 'row' }, nameIn, h('button', {
      disabled: ro(c) || (free !== null && !free.length), 'data-add': k,
      onclick: () => { const n = (nameIn as HTMLInputElement).value.trim(); if (n && !(n in m)) write({ ...m, [n]: fields ? '' : 'true' }) }
    }, 'Add')),
    here(c, k))
}

function branches (c: NodeContext): HTMLElement {
  const list: Json[] = Array.isArray(c.a.get('branches')) ? c.a.get('branches') : []
  const write = (next: Json[]): void => put(c, 'branches', next.length ? next : undefined)
  return h('fieldset', { 'data-prop-row': 'branches' }, h('legend', {}, 'Branches (first that holds)'),
    ...list.map((b, i) => h('div', { class: 'row branch', 'data-branch': i },
      h('span', {}, 'when'),
      expressionInput({ key: `${c.key}.branches.${i}.when`, value: b?.when, scope: c.scope, disabled: ro(c), serverErrors: serverErrors(c, `branches[${i}].when`), set: (v) => write(list.map((x, j) => j === i ? { ...x, when: v ?? '' } : x)) }),
      h('span', {}, 'go to'),
      picker({ key: `${c.key}.branches.${i}.next`, value: b?.next, options: c.nodes, disabled: ro(c), set: (v) => write(list.map((x, j) => j === i ? { ...x, next: v ?? '' } : x)) }),
      h('button', { disabled: ro(c), title: 'remove branch', onclick: () => write(list.filter((_, j) => j !== i)) }, '✕'))),
    h('button', { id: 'add-branch', disabled: ro(c), onclick: () => write([...list, { when: 'true', next: c.nodes[0] ?? '' }]) }, 'Add branch'),
    here(c, 'branches'))
}

/** What a workflow's expressions may name: `vars.record` is the record that started it. */
export function workflowScope (draft: Draft, wf: Json, nodes: Record<string, Json>): Scope {
  const entity = (wf.start ?? []).find((s: Json) => s?.type === 'record')?.entity
  const vars = ['record.', 'payload', 'trigger', ...Object.keys(wf.variables ?? {})]
  for (const n of Object.values(nodes)) {
    if (n.output) vars.push(n.output)
    if (n.type === 'assign') vars.push(...Object.keys(n.set ?? {}))
  }
  const scope: Scope = { vars: entity ? vars : ['*'] }
  if (entity) scope['vars.record'] = ['id', 'created_at', 'updated_at', 'created_by', 'updated_by', 'version', ...fieldNames(draft, entity)]
  return scope
}
