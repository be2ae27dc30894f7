// The page builder: a palette of component kinds, the page's layout tree (drag to add or
// move; a move changes `parent`/`order`, never deletes and re-inserts), and a property panel
// generated from the selected component's props JSON Schema.

/** A component's props as plain JSON. */
function plainProps (props: Json): Json {
  return props instanceof Y.Map ? props.toJSON() : (props ?? {})
}

/** A text component as the portal shows it (its bindings evaluated with an empty state). */
function textOf (props: Json, rt: Runtime | null): HTMLElement {
  let text = props.text ?? ''
  try { text = rt ? rt.bind(props.text, { state: {}, params: {}, user: {} }) ?? '' : text } catch { /* shown as written */ }
  const v = props.variant || 'p'
  if (v === 'h1' || v === 'h2' || v === 'h3') return h(v, {}, String(text))
  return h('p', { class: v === 'muted' ? 'pl-muted' : '' }, String(text))
}

import * as Y from 'yjs'
import { errors, h, type Json, type Pending, row } from '../dom'
import { type Draft, newKey, plain, sorted, type YMap, ymap } from '../sync'
import { setOrDelete } from './entity'
import { canvasStyles, ElementCache, realTag, type Runtime } from './canvas'
import { eventsEditor } from './events'
import { checklist, entityNames, expressionInput, fieldNames, picker, type Scope } from './pickers'
import { propInput } from './schemaform'

export interface ComponentKind { props: Json, container: boolean, events: string[], description: string }
export type Catalogue = Record<string, ComponentKind>
const DRAG = 'application/x-plinth-component'
// Props holding text with {{ }} bindings or a binding alone.
const BINDABLE = ['text', 'filter', 'record', 'disabled', 'label', 'submit_label', 'empty_text']

export class PageEditor {
  selected: string | null = null // page name
  component: string | null = null // component id
  catalogue: Catalogue = {}
  runtime: Runtime | null = null // the portal's runtime, once loaded
  stylesheet = ''
  private elements: ElementCache

  constructor (private draft: Draft) { this.elements = new ElementCache(draft) }

  private page (): YMap | undefined {
    const pages = this.draft.pages
    if (!this.selected || !pages.has(this.selected)) this.selected = sorted(pages)[0]?.[0] ?? null
    return this.selected ? pages.get(this.selected) : undefined
  }

  render (pending: Pending): HTMLElement {
    const d = this.draft
    const ro = !d.canEdit
    const page = this.page()
    const list = h('ul', { class: 'list', id: 'pages' })
    for (const [name, p] of sorted(d.pages)) {
      list.append(h('li', {
        class: name === this.selected ? 'active' : '', 'data-page': name,
        onclick: () => { this.selected = name; this.component = null; d.show(`pages.${name}`) }
      }, `${name} `, h('small', {}, p.get('attrs')?.get('path') ?? ''), d.errorsAt(`pages.${name}`).length ? h('span', { class: 'error' }, ' ●') : null))
    }
    const palette = h('div', { class: 'palette', id: 'palette' }, ...Object.entries(this.catalogue).map(([kind, spec]) =>
      h('div', {
        class: 'palette-item', draggable: ro ? 'false' : 'true', 'data-kind': kind, title: spec.description,
        ondragstart: (e: DragEvent) => { this.draft.dragging = true; e.dataTransfer?.setData(DRAG, JSON.stringify({ kind })) }
      }, kind, spec.container ? h('small', {}, ' ▣') : null)))
    const left = h('section', { class: 'pane' }, h('h2', {}, 'Pages'), list,
      h('div', { class: 'row' }, pending.input('new-page', 'new page name', ro),
        h('button', { id: 'add-page', disabled: ro, onclick: () => this.addPage(pending.take('new-page')) }, 'Add')),
      h('h2', {}, 'Components'), h('p', { class: 'hint' }, 'Drag onto the page.'), palette)
    if (!page) return h('div', { class: 'editor-grid three' }, left, h('section', { class: 'pane' }, h('p', {}, 'No page yet.')), h('section', { class: 'pane' }))
    return h('div', { class: 'editor-grid three' }, left, this.canvas(page), this.properties(page))
  }

  // -- the layout tree --------------------------------------------------------------------

  private children (comps: Y.Map<YMap>, parent: string | null): [string, YMap][] {
    return sorted(comps, 'order', true).filter(([, c]) => (c.get('attrs').get('parent') ?? null) === parent)
  }

  private canvas (page: YMap): HTMLElement {
    const d = this.draft
    const name = this.selected as string
    const attrs: YMap = page.get('attrs')
    const comps: Y.Map<YMap> = page.get('components')
    const base = `pages.${name}`
    const ro = !d.canEdit
    const text = (key: string, label: string): HTMLElement => row(label, h('input', {
      type: 'text', id: `page-${key}`, value: attrs.get(key) ?? '', disabled: ro, 'data-key': `${name}.${key}`,
      onchange: (e: Event) => d.change(() => setOrDelete(attrs, key, (e.target as HTMLInputElement).value))
    }))
    const tree = h('div', { class: 'canvas', id: 'canvas', 'data-page': name })
    const shadow = tree.attachShadow({ mode: 'open' })
    const main = h('main', { class: 'pl-page' }, ...this.children(comps, null).map(([id, c]) => this.box(comps, id, c, attrs.toJSON())))
    // Design mode: a click selects the innermost component under it and never reaches the
    // component itself (no submit, no navigation, no record created).
    main.addEventListener('click', (e: Event) => {
      const hit = e.composedPath().find((x) => x instanceof HTMLElement && x.classList.contains('comp')) as HTMLElement | undefined
      e.stopPropagation()
      e.preventDefault()
      if (!hit?.dataset.comp) return
      this.component = hit.dataset.comp
      d.show(`${base}.components.${hit.dataset.comp}`)
    }, true)
    shadow.append(h('style', {}, canvasStyles(this.stylesheet)), main)
    if (!comps.size) shadow.append(this.dropZone(comps, null, 'Drop a component here'))
    return h('section', { class: 'pane' },
      h('div', { class: 'row' }, h('h2', {}, `Page ${name}`),
        h('button', { class: 'danger', disabled: ro, onclick: () => { if (confirm(`Delete page ${name}?`)) d.change(() => d.pages.delete(name)) } }, 'Delete page')),
      text('title', 'Title'), text('path', 'Path'),
      row('In navigation', h('input', { type: 'checkbox', checked: !!attrs.get('nav'), disabled: ro, onchange: (e: Event) => d.change(() => setOrDelete(attrs, 'nav', (e.target as HTMLInputElement).checked || undefined)) })),
      errors(d.errorsAt(base).filter((x) => !x.path.startsWith(`${base}.components.`)), base),
      tree)
  }

  /** One component as the portal renders it, in a frame that selects, drags and takes drops. */
  private box (comps: Y.Map<YMap>, id: string, c: YMap, page: Json): HTMLElement {
    const d = this.draft
    const a: YMap = c.get('attrs')
    const kind: string = a.get('kind')
    const props: Json = plainProps(a.get('props'))
    const path = `pages.${this.selected}.components.${id}`
    const who = d.selections().get(path)
    const errs = d.errorsAt(path)
    const el = h('div', {
      class: ['comp', id === this.component ? 'selected' : '', who ? 'selected-by' : '', errs.length ? 'invalid' : ''].join(' '),
      'data-comp': id, 'data-kind': kind, draggable: d.canEdit ? 'true' : 'false', style: who ? `--c:${who.color}` : '',
      ondragstart: (e: DragEvent) => { e.stopPropagation(); this.draft.dragging = true; e.dataTransfer?.setData(DRAG, JSON.stringify({ move: id })) },
      ondragover: (e: DragEvent) => { e.preventDefault(); e.stopPropagation(); el.classList.add('drop-before') },
      ondragleave: () => el.classList.remove('drop-before'),
      ondrop: (e: DragEvent) => { e.preventDefault(); e.stopPropagation(); this.drop(e, comps, a.get('parent') ?? null, id) }
    }, h('span', { class: 'comp-badge' }, `${kind} ${id}`, who ? ` · ${who.name}` : ''))
    const node = { kind, props, parent: a.get('parent') ?? null, order: a.get('order'), events: plain(a.get('events')), visible: a.get('visible') }
    const kids = (): HTMLElement[] => [...this.children(comps, id).map(([cid, cc]) => this.box(comps, cid, cc, page)), this.dropZone(comps, id, `drop into ${id}`)]
    if (kind === 'stack') el.append(h('div', { class: `pl-stack pl-${props.direction || 'vertical'}`, style: `gap:${props.gap || '1rem'}` }, ...kids()))
    else if (kind === 'grid') el.append(h('div', { class: 'pl-grid', style: `grid-template-columns:repeat(${props.columns || 2},minmax(0,1fr));gap:${props.gap || '1rem'}` }, ...kids()))
    else if (kind === 'text') el.append(textOf(props, this.runtime))
    else if (realTag(kind) && this.runtime && !this.catalogue[kind]?.container) el.append(this.elements.element(this.runtime, id, node, page))
    else el.append(h('div', { class: 'placeholder' }, `${kind}${props.entity ? ` of ${props.entity}` : ''}`), ...(this.catalogue[kind]?.container ? kids() : []))
    if (errs.length) el.append(h('div', { class: 'comp-errors' }, ...errs.slice(0, 3).map((x) => h('div', { 'data-error': x.path }, `${x.path.slice(path.length + 1) || kind}: ${x.message}`))))
    return el
  }

  private dropZone (comps: Y.Map<YMap>, parent: string | null, text: string): HTMLElement {
    const zone = h('div', {
      class: 'dropzone', 'data-drop': parent ?? '',
      ondragover: (e: DragEvent) => { e.preventDefault(); e.stopPropagation(); zone.classList.add('over') },
      ondragleave: () => zone.classList.remove('over'),
      ondrop: (e: DragEvent) => { e.preventDefault(); e.stopPropagation(); this.drop(e, comps, parent, null) }
    }, text)
    return zone
  }

  /** Add a new component or move one: under `parent`, before `before` (or last). */
  private drop (e: DragEvent, comps: Y.Map<YMap>, parent: string | null, before: string | null): void {
    const raw = e.dataTransfer?.getData(DRAG)
    if (!raw) return
    const what = JSON.parse(raw) as { kind?: string, move?: string }
    if (what.move && (what.move === before || this.isWithin(comps, parent, what.move))) return
    const siblings = this.children(comps, parent).filter(([id]) => id !== what.move)
    const orders = siblings.map(([, c]) => Number(c.get('attrs').get('order') ?? 0))
    const at = before === null ? siblings.length : siblings.findIndex(([id]) => id === before)
    const prev = at > 0 ? orders[at - 1] : undefined
    const next = at < orders.length ? orders[at] : undefined
    const order = prev === undefined && next === undefined ? 0
      : prev === undefined ? (next as number) - 1
        : next === undefined ? prev + 1 : (prev + next) / 2
    if (what.move) {
      const a: YMap = comps.get(what.move)!.get('attrs')
      this.draft.change(() => { a.set('parent', parent); a.set('order', order) })
      this.component = what.move
    } else if (what.kind) {
      const id = newKey(what.kind.replace(/[^a-z0-9_]/g, '_'))
      const props = ymap(this.defaults(what.kind))
      this.draft.change(() => {
        comps.set(id, ymap({ pos: comps.size, attrs: ymap({ kind: what.kind, parent, order, props }) }))
      })
      this.component = id
      this.draft.select(`pages.${this.selected}.components.${id}`)
    }
  }

  private isWithin (comps: Y.Map<YMap>, node: string | null, ancestor: string): boolean {
    for (let at = node, hops = 0; at !== null && hops < 1000; hops++) {
      if (at === ancestor) return true
      at = comps.get(at)?.get('attrs').get('parent') ?? null
    }
    return false
  }

  /** Values for a new component's required props, so it starts out valid where it can. */
  private defaults (kind: string): Record<string, Json> {
    const schema = this.catalogue[kind]?.props ?? {}
    const firstEntity = sorted(this.draft.entities)[0]?.[1].get('name')
    const out: Record<string, Json> = {}
    for (const key of schema.required ?? []) {
      const prop = schema.properties?.[key] ?? {}
      if (prop.default !== undefined) out[key] = prop.default
      else if (key === 'entity' && firstEntity) out[key] = firstEntity
      else if (Array.isArray(prop.enum)) out[key] = prop.enum[0]
      else if (prop.type === 'array') out[key] = []
      else if (prop.type === 'boolean') out[key] = false
      else if (prop.type === 'integer' || prop.type === 'number') out[key] = prop.minimum ?? 0
      else out[key] = key === 'text' || key === 'label' || key === 'title' ? `New ${kind}` : ''
    }
    return out
  }

  // -- the property panel -----------------------------------------------------------------

  private properties (page: YMap): HTMLElement {
    const d = this.draft
    const comps: Y.Map<YMap> = page.get('components')
    const c = this.component ? comps.get(this.component) : undefined
    if (!c) return h('section', { class: 'pane', id: 'props' }, h('h2', {}, 'Properties'), h('p', { class: 'hint' }, 'Select a component.'))
    const id = this.component as string
    const a: YMap = c.get('attrs')
    const kind: string = a.get('kind')
    const spec = this.catalogue[kind]
    const schema = spec?.props ?? {}
    const path = `pages.${this.selected}.components.${id}`
    const ro = !d.canEdit
    const withProps = (fn: (props: YMap) => void): void => d.change(() => {
      let props: YMap | undefined = a.get('props')
      if (!(props instanceof Y.Map)) { props = ymap(props ?? {}); a.set('props', props) }
      fn(props)
    })
    const props: YMap | undefined = a.get('props')
    const known = Object.keys(schema.properties ?? {})
    const extra = props ? [...props.keys()].filter((k) => !known.includes(k)) : []
    const rows = [...known, ...extra].map((key) => {
      const required = (schema.required ?? []).includes(key)
      return h('label', { class: 'prop', 'data-prop-row': key },
        h('span', { class: 'label' }, key, required ? h('b', {}, ' *') : null),
        this.typedInput(key, schema.properties?.[key] ?? {}, props, required, ro, id, path, (value) => withProps((p) => setOrDelete(p, key, value))),
        errors(d.errorsAt(`${path}.props.${key}`), `${path}.props`))
    })
    return h('section', { class: 'pane', id: 'props', 'data-for': id },
      h('div', { class: 'row' }, h('h2', {}, `${kind} ${id}`),
        h('button', { class: 'danger', id: 'delete-component', disabled: ro, onclick: () => this.remove(comps, id) }, 'Delete')),
      spec ? h('p', { class: 'hint' }, spec.description) : h('p', { class: 'error' }, `unknown component kind ${kind}`),
      ...rows,
      h('label', { class: 'prop' }, h('span', { class: 'label' }, 'visible'), expressionInput({
        key: `${id}.visible`, value: a.get('visible'), scope: this.scope(props), disabled: ro, placeholder: '{{ … }}: hidden when false',
        serverErrors: d.errorsAt(`${path}.visible`).map((x) => x.message), set: (value) => d.change(() => setOrDelete(a, 'visible', value))
      })),
      spec?.events.length ? h('div', { class: 'prop' }, h('span', { class: 'label' }, 'When'), eventsEditor({
        key: id, events: spec.events, value: plain(a.get('events')), disabled: ro, scope: this.scope(props),
        pages: [...d.pages.values()].map((p) => p.get('attrs')?.get('path')).filter(Boolean).sort(),
        components: [...comps.keys()].filter((k) => k !== id).sort(),
        workflows: [...d.workflows.keys()].sort(), entities: entityNames(d), fieldsOf: (e) => fieldNames(d, e),
        set: (value) => d.change(() => setOrDelete(a, 'events', value))
      }), errors(d.errorsAt(`${path}.events`), path)) : null,
      errors(d.errorsAt(path).filter((x) => !x.path.startsWith(`${path}.props.`)), path))
  }

  /** The editor of one prop, by what it names: an entity, its fields, a workflow, a binding. */
  private typedInput (key: string, schema: Json, props: YMap | undefined, required: boolean, ro: boolean, id: string, path: string, set: (v: Json) => void): HTMLElement {
    const value = plain(props?.get(key))
    const entity: string | undefined = props?.get('entity')
    const fields = fieldNames(this.draft, entity)
    const k = `${id}.props.${key}`
    if (key === 'entity') return picker({ key: k, value, options: entityNames(this.draft), disabled: ro, empty: 'choose an entity', set })
    if ((key === 'columns' || key === 'fields') && schema.type === 'array') return checklist(k, fields, value, ro, set)
    if (key === 'group_by' || key === 'value_field') return picker({ key: k, value, options: fields, disabled: ro, set })
    if (key === 'sort') return picker({ key: k, value, options: fields.flatMap((f) => [f, `-${f}`]), disabled: ro, empty: 'unsorted', set })
    if (key === 'workflow') return picker({ key: k, value, options: [...this.draft.workflows.keys()].sort(), disabled: ro, set })
    if (BINDABLE.includes(key)) {
      return expressionInput({
        key: k, value, scope: this.scope(props), disabled: ro, placeholder: key === 'text' ? 'text, with {{ bindings }}' : '{{ … }}',
        serverErrors: this.draft.errorsAt(`${path}.props.${key}`).map((x) => x.message), set
      })
    }
    return propInput({ name: key, schema, value, required, disabled: ro, key: k, set })
  }

  /** What a page's bindings may name: its state, the URL's params, the user, a row or record. */
  private scope (props: YMap | undefined): Scope {
    const page = this.selected ? this.draft.pages.get(this.selected) : undefined
    const state = Object.keys(plain(page?.get('attrs')?.get('state')) ?? {})
    const fields = ['id', 'created_at', 'updated_at', ...fieldNames(this.draft, props?.get('entity'))]
    return { state, params: ['*'], user: ['id', 'name', 'roles', 'groups', 'attrs.'], 'user.attrs': ['*'], row: fields, record: fields }
  }

  /** Delete a component and everything under it. */
  private remove (comps: Y.Map<YMap>, id: string): void {
    const gone = new Set([id])
    for (let grew = true; grew;) {
      grew = false
      for (const [cid, c] of comps) {
        if (!gone.has(cid) && gone.has(c.get('attrs').get('parent'))) { gone.add(cid); grew = true }
      }
    }
    this.draft.change(() => { for (const cid of gone) comps.delete(cid) })
    this.component = null
  }

  addPage (name: string): void {
    const key = name.trim().toLowerCase().replace(/[^a-z0-9_]/g, '_')
    if (!key || this.draft.pages.has(key)) return
    this.draft.change(() => {
      this.draft.pages.set(key, ymap({
        pos: this.draft.pages.size,
        attrs: ymap({ title: name.trim(), path: `/${key.replace(/_/g, '-')}` }),
        components: ymap({ root: ymap({ pos: 0, attrs: ymap({ kind: 'stack', parent: null, order: 0 }) }) })
      }))
    })
    this.selected = key
    this.component = 'root'
  }
}
