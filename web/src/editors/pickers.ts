// Typed controls shared by the editors: pickers over the draft's own entities and fields, and
// an expression editor that completes names and flags paths the draft does not define.

import { h, type Json } from '../dom'
import { type Draft, sorted } from '../sync'

/** The draft's entity names, in the model's order. */
export function entityNames (draft: Draft): string[] {
  return sorted(draft.entities).map(([, e]) => String(e.get('name')))
}

/** An entity's field names (none for an unknown entity). */
export function fieldNames (draft: Draft, entity: string | undefined): string[] {
  for (const [, e] of draft.entities) {
    if (e.get('name') === entity) return sorted(e.get('fields')).map(([, f]) => String((f as Json).get('name')))
  }
  return []
}

interface Pick { id?: string, key: string, value: string | undefined, options: string[], disabled: boolean, empty?: string, set: (v: string | undefined) => void }

/** A select over `options`; a value the options lack stays shown (and is marked unknown). */
export function picker (p: Pick): HTMLSelectElement {
  const opts = [...p.options]
  const stray = p.value !== undefined && p.value !== '' && !opts.includes(p.value)
  return h('select', {
    id: p.id, 'data-key': p.key, 'data-prop': p.key.split('.').pop(), disabled: p.disabled, class: stray ? 'unknown' : '',
    onchange: (e: Event) => { const v = (e.target as HTMLSelectElement).value; p.set(v === '' ? undefined : v) }
  }, h('option', { value: '' }, p.empty ?? '—'),
  ...(stray ? [h('option', { value: p.value, selected: true }, `${p.value} (unknown)`)] : []),
  ...opts.map((o) => h('option', { value: o, selected: o === p.value }, o)))
}

/** Checkboxes choosing a subset of `options`, kept in the options' order. */
export function checklist (key: string, options: string[], value: string[] | undefined, disabled: boolean, set: (v: string[] | undefined) => void): HTMLElement {
  const chosen = new Set(value ?? [])
  return h('div', { class: 'checklist', 'data-key': key }, ...options.map((o) => h('label', { class: 'check' },
    h('input', {
      type: 'checkbox', checked: chosen.has(o), disabled, 'data-option': o,
      onchange: (e: Event) => {
        if ((e.target as HTMLInputElement).checked) chosen.add(o); else chosen.delete(o)
        const list = options.filter((x) => chosen.has(x))
        set(list.length ? list : undefined)
      }
    }), o)))
}

// -- expressions --------------------------------------------------------------------------

/** What names an expression may use: root -> members (a member ending in `.` has members of
 * its own, listed under its full path). `{ vars: ['record.', 'amount'], 'vars.record': [...] }` */
export type Scope = Record<string, string[]>

const PATH = /\b([a-z_][a-z0-9_]*)((?:\.[a-z_][a-z0-9_]*)+)/gi

/** Paths in `expr` the scope knows the parent of but not the member: "no field x on y". */
export function unknownPaths (expr: string, scope: Scope): string[] {
  const found: string[] = []
  const text = expr.replace(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g, '""') // not inside strings
  for (const m of text.matchAll(PATH)) {
    const parts = [m[1], ...m[2].slice(1).split('.')]
    if (!(parts[0] in scope)) continue
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('.')
      const members = scope[parent]
      if (!members || members.includes('*')) break // not modelled further: anything goes
      const member = parts[i]
      if (!members.includes(member) && !members.includes(`${member}.`)) { found.push(`${parts.slice(0, i + 1).join('.')} is not defined (${parent} has ${members.map((x) => x.replace(/\.$/, '')).join(', ') || 'nothing'})`); break }
    }
  }
  return found
}

/** Every completion of a scope, as full dotted names. */
function names (scope: Scope): string[] {
  const out: string[] = []
  for (const [root, members] of Object.entries(scope)) {
    if (!root.includes('.')) out.push(root)
    for (const m of members) if (m !== '*') out.push(`${root}.${m.replace(/\.$/, '')}`)
  }
  return [...new Set(out)].sort()
}

interface ExprInput { key: string, value: string | undefined, scope: Scope, disabled: boolean, placeholder?: string, set: (v: string | undefined) => void, serverErrors?: string[] }

/** A one-line CEL editor: completion of the scope's names (Tab or click), and inline errors
 * for names the draft does not define, beside the server's type errors for this path. */
export function expressionInput (p: ExprInput): HTMLElement {
  const input = h('input', { type: 'text', class: 'mono expr', value: p.value ?? '', disabled: p.disabled, 'data-key': p.key, 'data-expr': p.key, 'data-prop': p.key.split('.').pop(), placeholder: p.placeholder ?? 'expression', autocomplete: 'off', spellcheck: 'false' })
  const menu = h('ul', { class: 'completions', hidden: true })
  const problems = h('div', { class: 'expr-errors' })
  const all = names(p.scope)
  const token = (): [number, string] => {
    const before = input.value.slice(0, input.selectionStart ?? input.value.length)
    const m = before.match(/[a-z_][a-z0-9_.]*$/i)
    return m ? [before.length - m[0].length, m[0]] : [before.length, '']
  }
  const check = (): void => {
    const local = unknownPaths(input.value, p.scope)
    problems.replaceChildren(...[...local, ...(p.serverErrors ?? [])].map((m) => h('div', { class: 'error' }, m)))
    input.classList.toggle('invalid', local.length + (p.serverErrors?.length ?? 0) > 0)
  }
  const accept = (name: string): void => {
    const [start, word] = token()
    const caret = start + word.length
    input.value = input.value.slice(0, start) + name + input.value.slice(caret)
    input.setSelectionRange(start + name.length, start + name.length)
    menu.hidden = true
    check()
    input.focus()
  }
  const suggest = (): void => {
    const [, word] = token()
    const hits = word ? all.filter((n) => n.startsWith(word) && n !== word).slice(0, 12) : []
    menu.replaceChildren(...hits.map((n, i) => h('li', { class: i === 0 ? 'active' : '', 'data-completion': n, onmousedown: (e: Event) => { e.preventDefault(); accept(n) } }, n)))
    menu.hidden = !hits.length
  }
  input.addEventListener('input', () => { suggest(); check() })
  input.addEventListener('keydown', (e) => {
    if (menu.hidden) return
    const items = [...menu.children] as HTMLElement[]
    const at = items.findIndex((x) => x.classList.contains('active'))
    if (e.key === 'Tab' || e.key === 'Enter') { e.preventDefault(); accept(items[Math.max(0, at)].dataset.completion as string) }
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault()
      items[at]?.classList.remove('active')
      items[(at + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length].classList.add('active')
    }
    if (e.key === 'Escape') menu.hidden = true
  })
  input.addEventListener('blur', () => { menu.hidden = true })
  input.addEventListener('change', () => { const v = input.value.trim(); p.set(v === '' ? undefined : v) })
  check()
  return h('div', { class: 'expr-box' }, input, menu, problems)
}
