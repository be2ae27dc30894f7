// The data model editor: entities, their fields (type, constraints) and CEL rules, with the
// live validation's diagnostics shown where they apply.

import * as Y from 'yjs'
import { errors, h, type Json, type Pending } from '../dom'
import { type Draft, newKey, sorted, type YMap, ymap } from '../sync'
import { picker } from './pickers'

const TYPES = ['string', 'text', 'integer', 'decimal', 'boolean', 'date', 'datetime', 'email',
  'url', 'enum', 'json', 'reference', 'attachment']

// Constraints offered per field type: [attribute, input kind]
type Constraint = [string, 'number' | 'text' | 'list' | 'bool' | 'entity' | 'choice', string[]?]
const COMMON: Constraint[] = [['label', 'text'], ['unique', 'bool'], ['index', 'bool'], ['readonly', 'bool'],
  ['computed', 'text'], ['classification', 'choice', ['', 'none', 'pii', 'pii.sensitive', 'pci.pan', 'pci.sad', 'financial', 'credential']]]
const BY_TYPE: Record<string, Constraint[]> = {
  string: [['minLength', 'number'], ['maxLength', 'number'], ['pattern', 'text']],
  text: [['maxLength', 'number']],
  integer: [['min', 'number'], ['max', 'number']],
  decimal: [['min', 'number'], ['max', 'number'], ['precision', 'number'], ['scale', 'number']],
  enum: [['values', 'list']],
  reference: [['entity', 'entity'], ['on_delete', 'choice', ['', 'restrict', 'cascade', 'set_null']]]
}

export class EntityEditor {
  selected: string | null = null // entity id
  field: string | null = null // field id whose constraints are open

  constructor (private draft: Draft) {}

  private entity (): YMap | undefined {
    const ents = this.draft.entities
    if (!this.selected || !ents.has(this.selected)) this.selected = sorted(ents)[0]?.[0] ?? null
    return this.selected ? ents.get(this.selected) : undefined
  }

  render (pending: Pending): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const current = this.entity()
    const list = h('ul', { class: 'list', id: 'entities' })
    for (const [id, ent] of sorted(d.entities)) {
      const name: string = ent.get('name')
      list.append(h('li', {
        class: id === this.selected ? 'active' : '', 'data-entity': name,
        onclick: () => { this.selected = id; this.field = null; d.show(`entities.${name}`) }
      }, name, d.errorsAt(`entities.${name}`).length ? h('span', { class: 'error' }, ' ●') : null))
    }
    const newEntity = pending.input('new-entity', 'new entity', ro)
    const left = h('section', { class: 'pane' }, h('h2', {}, 'Entities'), list,
      h('div', { class: 'row' }, newEntity, h('button', { id: 'add-entity', disabled: ro, onclick: () => this.addEntity(pending.take('new-entity')) }, 'Add')))
    return h('div', { class: 'editor-grid' }, left, current ? this.entityPane(current, pending) : h('section', { class: 'pane' }, h('p', {}, 'No entity yet.')))
  }

  private entityPane (ent: YMap, pending: Pending): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const eid = this.selected as string
    const name: string = ent.get('name')
    const attrs: YMap = ent.get('attrs')
    const fields: Y.Map<YMap> = ent.get('fields')
    const base = `entities.${name}`
    const sel = d.selections()
    const rows = h('tbody')
    for (const [fid, f] of sorted(fields)) {
      const fname: string = f.get('name')
      const fa: YMap = f.get('attrs')
      const path = `${base}.fields.${fname}`
      const who = sel.get(path)
      const summary = Object.entries(fa.toJSON()).filter(([k]) => !['type', 'required'].includes(k))
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ')
      rows.append(h('tr', { 'data-field': fname, class: [who ? 'selected-by' : '', fid === this.field ? 'open' : ''].join(' '), style: who ? `--c:${who.color}` : '' },
        h('td', {},
          h('input', {
            type: 'text', value: fname, disabled: ro, 'data-key': `${fid}.name`, class: 'field-name',
            onfocus: () => d.select(path),
            onchange: (e: Event) => d.change(() => f.set('name', (e.target as HTMLInputElement).value.trim()))
          }),
          who ? h('span', { class: 'tag', style: `background:${who.color}` }, who.name) : null,
          errors(d.errorsAt(path), path)),
        h('td', {}, h('select', {
          disabled: ro, 'data-key': `${fid}.type`, class: 'field-type', onfocus: () => d.select(path),
          onchange: (e: Event) => d.change(() => fa.set('type', (e.target as HTMLSelectElement).value))
        }, ...[...new Set([...TYPES, fa.get('type')])].map((t) => h('option', { value: t, selected: t === fa.get('type') }, String(t))))),
        h('td', {}, h('input', {
          type: 'checkbox', class: 'field-required', checked: !!fa.get('required'), disabled: ro,
          onchange: (e: Event) => d.change(() => fa.set('required', (e.target as HTMLInputElement).checked))
        })),
        h('td', { class: 'summary' }, h('button', {
          class: 'link', title: 'constraints', 'data-constraints': fname,
          onclick: () => { this.field = this.field === fid ? null : fid; d.show(path) }
        }, summary || 'constraints…')),
        h('td', {}, h('button', { disabled: ro, title: 'delete field', onclick: () => d.change(() => fields.delete(fid)) }, '✕'))))
      if (fid === this.field) rows.append(h('tr', { class: 'constraints' }, h('td', { colspan: 5 }, this.constraints(fid, fa, path))))
    }
    const newField = pending.input('new-field', 'new field name', ro)
    return h('section', { class: 'pane', id: 'editor' },
      h('div', { class: 'row' }, h('h2', {}, `Entity ${name}`),
        h('button', { disabled: ro, class: 'danger', onclick: () => { if (confirm(`Delete entity ${name}?`)) d.change(() => d.entities.delete(eid)) } }, 'Delete entity')),
      h('div', { class: 'row' }, h('span', { class: 'label' }, 'Name'), h('input', {
        type: 'text', id: 'entity-name', value: name, disabled: ro, 'data-key': `${eid}.name`,
        onchange: (e: Event) => d.change(() => ent.set('name', (e.target as HTMLInputElement).value.trim()))
      }), h('span', { class: 'label' }, 'Label'), h('input', {
        type: 'text', id: 'entity-label', value: attrs.get('label') ?? '', disabled: ro, 'data-key': `${eid}.label`,
        onchange: (e: Event) => d.change(() => setOrDelete(attrs, 'label', (e.target as HTMLInputElement).value))
      }), h('span', { class: 'label', title: 'what references to its records show instead of ids' }, 'Title field'),
      picker({ id: 'entity-title-field', key: `${eid}.title_field`, value: attrs.get('title_field'), options: sorted(fields).map(([, f]) => String(f.get('name'))), disabled: ro, empty: 'automatic', set: (v) => d.change(() => setOrDelete(attrs, 'title_field', v)) })),
      errors(d.errorsAt(base).filter((x) => !x.path.startsWith(`${base}.fields.`) && !x.path.startsWith(`${base}.rules`)), base),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Field'), h('th', {}, 'Type'), h('th', {}, 'Req.'), h('th', {}, 'Constraints'), h('th', {}, ''))), rows),
      h('div', { class: 'row' }, newField, h('button', { id: 'add-field', disabled: ro, onclick: () => this.addField(pending.take('new-field')) }, 'Add field')),
      this.rules(attrs, base))
  }

  private constraints (fid: string, fa: YMap, path: string): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const type: string = fa.get('type')
    const out = h('div', { class: 'constraint-grid', 'data-constraints-of': path })
    for (const [key, kind, choices] of [...(BY_TYPE[type] ?? []), ...COMMON]) {
      const value = fa.get(key)
      const set = (v: Json): void => d.change(() => setOrDelete(fa, key, v))
      let input: HTMLElement
      if (kind === 'bool') {
        input = h('input', { type: 'checkbox', checked: !!value, disabled: ro, onchange: (e: Event) => set((e.target as HTMLInputElement).checked || undefined) })
      } else if (kind === 'number') {
        input = h('input', { type: 'number', value: value ?? '', disabled: ro, 'data-key': `${fid}.${key}`, onchange: (e: Event) => { const t = (e.target as HTMLInputElement).value; set(t === '' ? undefined : Number(t)) } })
      } else if (kind === 'list') {
        input = h('input', { type: 'text', value: (value ?? []).join(', '), placeholder: 'a, b, c', disabled: ro, 'data-key': `${fid}.${key}`, onchange: (e: Event) => set(splitList((e.target as HTMLInputElement).value)) })
      } else if (kind === 'entity' || kind === 'choice') {
        const options = kind === 'entity' ? ['', ...sorted(d.entities).map(([, e]) => String(e.get('name')))] : (choices ?? [])
        input = h('select', { disabled: ro, onchange: (e: Event) => set((e.target as HTMLSelectElement).value || undefined) },
          ...options.map((o) => h('option', { value: o, selected: o === (value ?? '') }, o || '—')))
      } else {
        input = h('input', { type: 'text', value: value ?? '', disabled: ro, 'data-key': `${fid}.${key}`, onchange: (e: Event) => set((e.target as HTMLInputElement).value || undefined) })
      }
      out.append(h('label', { class: 'constraint', 'data-constraint': key }, h('span', { class: 'label' }, key), input, errors(d.errorsAt(`${path}.${key}`), path)))
    }
    return out
  }

  /** CEL rules: each a boolean expression and the message shown when it is false. */
  private rules (attrs: YMap, base: string): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const rules: Json[] = attrs.get('rules') ?? []
    const write = (next: Json[]): void => d.change(() => setOrDelete(attrs, 'rules', next.length ? next : undefined))
    const edit = (i: number, key: string, value: string): void => write(rules.map((r, j) => j === i ? { ...r, [key]: value } : r))
    return h('div', { id: 'rules' }, h('h2', {}, 'Rules (CEL)'),
      ...rules.map((r, i) => h('div', { class: 'rule', 'data-rule': i },
        h('input', { type: 'text', class: 'rule-expr mono', value: r.expr ?? '', placeholder: 'record.amount >= 0', disabled: ro, 'data-key': `${this.selected}.rules.${i}.expr`, onchange: (e: Event) => edit(i, 'expr', (e.target as HTMLInputElement).value) }),
        h('input', { type: 'text', class: 'rule-message', value: r.message ?? '', placeholder: 'message when false', disabled: ro, 'data-key': `${this.selected}.rules.${i}.message`, onchange: (e: Event) => edit(i, 'message', (e.target as HTMLInputElement).value) }),
        h('button', { disabled: ro, title: 'delete rule', onclick: () => write(rules.filter((_, j) => j !== i)) }, '✕'),
        errors(d.errorsAt(`${base}.rules[${i}]`), `${base}.rules[${i}]`))),
      h('button', { id: 'add-rule', disabled: ro, onclick: () => write([...rules, { expr: 'true', message: 'describe the rule' }]) }, 'Add rule'),
      errors(d.errorsAt(`${base}.rules`).filter((x) => !/rules\[\d+\]/.test(x.path)), base))
  }

  addEntity (name: string): void {
    if (!name.trim()) return
    const id = newKey('ent')
    this.draft.change(() => {
      this.draft.entities.set(id, ymap({ name: name.trim(), pos: this.draft.entities.size, attrs: new Y.Map(), fields: new Y.Map() }))
    })
    this.selected = id
  }

  addField (name: string): void {
    const ent = this.entity()
    if (!ent || !name.trim()) return
    const fields: Y.Map<YMap> = ent.get('fields')
    this.draft.change(() => {
      fields.set(newKey('fld'), ymap({ name: name.trim(), pos: Date.now() / 1e12 + fields.size, attrs: ymap({ type: 'string' }) }))
    })
  }
}

export function setOrDelete (m: YMap, key: string, value: Json): void {
  if (value === undefined || value === '' || (Array.isArray(value) && !value.length)) m.delete(key)
  else m.set(key, value)
}

export function splitList (text: string): string[] {
  return text.split(',').map((x) => x.trim()).filter(Boolean)
}
