// Small DOM helpers: build elements from tag, attributes and children.

export type Json = any // eslint-disable-line @typescript-eslint/no-explicit-any
type Kid = Node | string | null | undefined | false

function assign (el: Element, attrs: Record<string, Json>): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v)
    else if (k === 'value') (el as HTMLInputElement).value = String(v)
    else if (k === 'checked') (el as HTMLInputElement).checked = Boolean(v)
    else if (k === 'disabled') (el as HTMLInputElement).disabled = Boolean(v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
}

function append (el: Element, kids: Kid[]): void {
  for (const kid of kids) if (kid !== null && kid !== undefined && kid !== false) el.append(kid)
}

/** An HTML element: `h('button', { onclick }, 'Save')`. */
export function h<K extends keyof HTMLElementTagNameMap> (tag: K, attrs: Record<string, Json> = {}, ...kids: Kid[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  assign(el, attrs)
  append(el, kids)
  return el
}

/** An SVG element. */
export function s (tag: string, attrs: Record<string, Json> = {}, ...kids: Kid[]): SVGElement {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag)
  assign(el, attrs)
  append(el, kids)
  return el
}

/** A labelled form row. */
export function row (label: string, ...controls: Kid[]): HTMLElement {
  return h('label', { class: 'row' }, h('span', { class: 'label' }, label), ...controls)
}

/** Errors (diagnostics) as inline messages. */
export function errors (items: { path: string, message: string }[], base = ''): HTMLElement | null {
  if (!items.length) return null
  return h('div', { class: 'errors' }, ...items.map((d) =>
    h('div', { class: 'error', 'data-error': d.path }, `${d.path.slice(base.length).replace(/^\./, '') || ''} ${d.message}`.trim())))
}

/** Inputs whose text is not in the document yet: it survives the redraw a remote change causes. */
export class Pending {
  private typed: Record<string, string> = {}

  input (id: string, placeholder: string, disabled = false): HTMLInputElement {
    return h('input', {
      type: 'text', id, placeholder, disabled, value: this.typed[id] ?? '', 'data-key': id,
      oninput: (e: Event) => { this.typed[id] = (e.target as HTMLInputElement).value }
    })
  }

  /** The typed text, cleared. */
  take (id: string): string {
    const value = this.typed[id] ?? (document.getElementById(id) as HTMLInputElement | null)?.value ?? ''
    delete this.typed[id]
    return value.trim()
  }
}
