// Sections without an editor of their own (components, connectors, …): each edited whole as
// JSON, as the REST API would take it.

import { errors, h, type Json, type Pending } from '../dom'
import type { Draft } from '../sync'

export class SectionsEditor {
  constructor (private draft: Draft) {}

  render (pending: Pending): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const names = [...d.sections.keys()].sort()
    const blocks = names.map((name) => {
      const area = h('textarea', { class: 'mono', rows: 10, disabled: ro, 'data-key': `sections.${name}`, 'data-section': name })
      area.value = pretty(d.sections.get(name))
      area.addEventListener('change', () => {
        try {
          const value = JSON.parse(area.value)
          d.change(() => d.sections.set(name, JSON.stringify(value)))
        } catch { area.setCustomValidity('not valid JSON'); area.reportValidity() }
      })
      return h('div', { class: 'section-block' },
        h('div', { class: 'row' }, h('h2', {}, name),
          h('button', { class: 'danger', disabled: ro, onclick: () => { if (confirm(`Delete section ${name}?`)) d.change(() => d.sections.delete(name)) } }, 'Delete')),
        area, errors(d.errorsAt(name), name))
    })
    return h('section', { class: 'pane' }, h('h2', {}, 'Other sections (JSON)'),
      h('p', { class: 'hint' }, 'Document kinds without an editor of their own, each an object of documents keyed by name.'),
      ...blocks,
      h('div', { class: 'row' }, pending.input('new-section', 'section (e.g. connectors)', ro),
        h('button', {
          id: 'add-section', disabled: ro,
          onclick: () => { const name = pending.take('new-section'); if (name && !d.sections.has(name)) d.change(() => d.sections.set(name, '{}')) }
        }, 'Add')))
  }
}

function pretty (text: Json): string {
  try { return JSON.stringify(JSON.parse(text), null, 1) } catch { return String(text ?? '') }
}
