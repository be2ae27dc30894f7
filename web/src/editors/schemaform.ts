// A property form generated from a JSON Schema (a component kind's props): strings, numbers,
// booleans, enums and arrays of strings get their own inputs; other shapes a JSON field.

import { h, type Json } from '../dom'

export interface PropInput {
  name: string
  schema: Json
  value: Json
  required: boolean
  disabled: boolean
  key: string // data-key, so focus survives redraws
  set: (value: Json) => void // undefined deletes
}

function typeOf (schema: Json): string {
  if (Array.isArray(schema?.enum)) return 'enum'
  const t = Array.isArray(schema?.type) ? schema.type.find((x: string) => x !== 'null') : schema?.type
  if (t === 'array' && (schema.items?.type === 'string' || schema.items?.enum)) return 'strings'
  if (t === 'string' || t === 'number' || t === 'integer' || t === 'boolean') return t
  if (!t && schema?.anyOf === undefined && schema?.oneOf === undefined && typeof schema?.default === 'string') return 'string'
  return 'json'
}

export function propInput (p: PropInput): HTMLElement {
  const kind = typeOf(p.schema)
  const common = { 'data-prop': p.name, 'data-key': p.key, disabled: p.disabled, title: p.schema?.description ?? '' }
  const placeholder = p.schema?.default !== undefined ? String(p.schema.default) : ''
  switch (kind) {
    case 'boolean':
      return h('input', { ...common, type: 'checkbox', checked: !!p.value, onchange: (e: Event) => p.set((e.target as HTMLInputElement).checked) })
    case 'number':
    case 'integer':
      return h('input', {
        ...common, type: 'number', step: kind === 'integer' ? 1 : 'any', min: p.schema.minimum, max: p.schema.maximum, value: p.value ?? '', placeholder,
        onchange: (e: Event) => { const t = (e.target as HTMLInputElement).value; p.set(t === '' ? undefined : Number(t)) }
      })
    case 'enum':
      return h('select', { ...common, onchange: (e: Event) => { const v = (e.target as HTMLSelectElement).value; p.set(v === '' ? undefined : p.schema.enum.find((x: Json) => String(x) === v)) } },
        ...(p.required ? [] : [h('option', { value: '' }, placeholder ? `— (${placeholder})` : '—')]),
        ...p.schema.enum.map((x: Json) => h('option', { value: String(x), selected: x === p.value }, String(x))))
    case 'strings':
      return h('input', {
        ...common, type: 'text', value: (p.value ?? []).join(', '), placeholder: 'a, b, c',
        onchange: (e: Event) => { const list = (e.target as HTMLInputElement).value.split(',').map((x) => x.trim()).filter(Boolean); p.set(list.length ? list : undefined) }
      })
    case 'string':
      return h('input', {
        ...common, type: 'text', value: p.value ?? '', placeholder, maxlength: p.schema.maxLength,
        onchange: (e: Event) => { const v = (e.target as HTMLInputElement).value; p.set(v === '' && !p.required ? undefined : v) }
      })
    default: {
      const area = h('textarea', { ...common, class: 'mono', rows: 3, placeholder: 'JSON' })
      area.value = p.value === undefined ? '' : JSON.stringify(p.value, null, 1)
      area.addEventListener('change', () => {
        try {
          p.set(area.value.trim() ? JSON.parse(area.value) : undefined)
          area.setCustomValidity('')
        } catch { area.setCustomValidity('not valid JSON'); area.reportValidity() }
      })
      return area
    }
  }
}
