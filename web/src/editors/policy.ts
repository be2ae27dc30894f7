// The policies editor: the app's Cedar policy documents, with diagnostics (parse and type
// errors against the app's generated schema) shown under the text.

import { errors, h, type Pending } from '../dom'
import { type Draft, sorted, type YMap, ymap } from '../sync'
import { setOrDelete } from './entity'

function template (name: string, entity: string | undefined): string {
  return `@id("${name}")\nforbid (principal in Role::"viewer",\n        action in [Action::"data.update"],\n        resource${entity ? ` is ${entity}` : ''});\n`
}

export class PolicyEditor {
  selected: string | null = null

  constructor (private draft: Draft) {}

  render (pending: Pending): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const pols = d.policies
    if (!this.selected || !pols.has(this.selected)) this.selected = sorted(pols)[0]?.[0] ?? null
    const sel = d.selections()
    const list = h('ul', { class: 'list', id: 'policies' })
    for (const [name] of sorted(pols)) {
      const who = sel.get(`policies.${name}`)
      list.append(h('li', {
        class: name === this.selected ? 'active' : '', 'data-policy': name,
        onclick: () => { this.selected = name; d.show(`policies.${name}`) }
      }, name, who ? h('span', { class: 'tag', style: `background:${who.color}` }, who.name) : null,
      d.errorsAt(`policies.${name}`).length ? h('span', { class: 'error' }, ' ●') : null))
    }
    const left = h('section', { class: 'pane' }, h('h2', {}, 'Policies'), list,
      h('div', { class: 'row' }, pending.input('new-policy', 'new policy name', ro),
        h('button', { id: 'add-policy', disabled: ro, onclick: () => this.add(pending.take('new-policy')) }, 'Add')))
    const doc = this.selected ? pols.get(this.selected) : undefined
    return h('div', { class: 'editor-grid' }, left, doc ? this.editor(doc) : h('section', { class: 'pane' }, h('p', {}, 'No policy yet.')))
  }

  private editor (doc: YMap): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const name = this.selected as string
    const attrs: YMap = doc.get('attrs')
    const path = `policies.${name}`
    const cedar = h('textarea', { id: 'policy-cedar', class: 'mono', rows: 14, disabled: ro, 'data-key': `${name}.cedar`, spellcheck: 'false' })
    cedar.value = attrs.get('cedar') ?? ''
    cedar.addEventListener('change', () => d.change(() => attrs.set('cedar', cedar.value)))
    cedar.addEventListener('focus', () => d.select(path))
    return h('section', { class: 'pane', id: 'policy-editor' },
      h('div', { class: 'row' }, h('h2', {}, `Policy ${name}`),
        h('button', { class: 'danger', disabled: ro, onclick: () => { if (confirm(`Delete policy ${name}?`)) d.change(() => d.policies.delete(name)) } }, 'Delete policy')),
      h('label', { class: 'row' }, h('span', { class: 'label' }, 'Description'), h('input', {
        type: 'text', id: 'policy-description', value: attrs.get('description') ?? '', disabled: ro, 'data-key': `${name}.description`,
        onchange: (e: Event) => d.change(() => setOrDelete(attrs, 'description', (e.target as HTMLInputElement).value))
      })),
      cedar,
      errors(d.errorsAt(path), path) ?? h('div', { class: 'ok' }, 'No problems found in this policy.'))
  }

  add (name: string): void {
    const key = name.trim().toLowerCase().replace(/[^a-z0-9_]/g, '_')
    if (!key || this.draft.policies.has(key)) return
    const entity = sorted(this.draft.entities)[0]?.[1].get('name')
    this.draft.change(() => {
      this.draft.policies.set(key, ymap({ pos: this.draft.policies.size, attrs: ymap({ cedar: template(key, entity) }) }))
    })
    this.selected = key
  }
}
