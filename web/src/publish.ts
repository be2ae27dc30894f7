// The side panel: publish (with the pipeline's results), versions with diff and rollback,
// the draft's change history, and compliance (violations; a fix reviewed before it applies).

import { api, ApiError, appPath } from './api'
import { h, type Json } from './dom'
import type { Draft } from './sync'

const TABS = ['publish', 'versions', 'history', 'compliance'] as const
type Tab = typeof TABS[number]

export class PublishPanel {
  tab: Tab = 'publish'
  // The panel's body is built by async loads, so it is kept across redraws of the editors.
  readonly body = h('div', { class: 'panel-body' })
  private base: string

  constructor (private draft: Draft) {
    this.base = appPath(draft.tenant, draft.app)
    void this.load()
  }

  render (): HTMLElement {
    const d = this.draft
    const tabs = TABS.map((t) => h('button', {
      class: t === this.tab ? 'active' : '', id: `tab-${t}`,
      onclick: () => { this.tab = t; void this.load() }
    }, t))
    const diag = d.diagnostics.length
      ? h('div', { class: 'error', id: 'diagnostics' }, `${d.diagnostics.length} problem(s) in the draft`)
      : h('div', { class: 'ok', id: 'diagnostics' }, 'Draft is valid')
    const list = d.diagnostics.length
      ? h('ul', { class: 'diag-list' }, ...d.diagnostics.slice(0, 30).map((x) => h('li', {}, h('code', {}, x.path), ` ${x.message}`)))
      : null
    return h('section', { class: 'pane side' }, h('div', { class: 'tabs row' }, ...tabs), diag, list, this.body)
  }

  async load (): Promise<void> {
    const p = this.body
    p.replaceChildren(h('span', { class: 'hint' }, '…'))
    try {
      if (this.tab === 'publish') this.publishTab()
      else if (this.tab === 'versions') await this.versionsTab()
      else if (this.tab === 'history') await this.historyTab()
      else await this.complianceTab()
    } catch (e) { p.replaceChildren(h('div', { class: 'error' }, (e as Error).message)) }
    document.querySelectorAll('.tabs button').forEach((b) => b.classList.toggle('active', b.id === `tab-${this.tab}`))
  }

  private publishTab (): void {
    const msg = h('input', { type: 'text', id: 'publish-message', placeholder: 'what changed' })
    const out = h('div', { id: 'publish-result' })
    this.body.replaceChildren(h('div', { class: 'row' }, msg, h('button', {
      id: 'publish', disabled: !this.draft.canEdit,
      onclick: async () => {
        out.replaceChildren(h('span', { class: 'hint' }, 'publishing…'))
        try {
          const res = await api('POST', `${this.base}/publish`, { message: msg.value })
          out.replaceChildren(h('div', { class: 'ok' }, res.created ? `Published version ${res.version.number}` : `Nothing changed: version ${res.version.number} stays`),
            steps(res.steps), raw(res))
        } catch (e) { out.replaceChildren(problem(e)) }
      }
    }, 'Publish')), out)
  }

  private async versionsTab (): Promise<void> {
    const data = await api('GET', `${this.base}/versions`)
    const out = h('div', { id: 'diff' })
    const from = h('select', { id: 'diff-from' }, h('option', { value: '0' }, 'empty'), ...data.items.map((v: Json) => h('option', { value: v.number, selected: v.number === data.active }, `v${v.number}`)))
    const to = h('select', { id: 'diff-to' }, h('option', { value: 'draft' }, 'draft'), ...data.items.map((v: Json) => h('option', { value: v.number }, `v${v.number}`)))
    const showDiff = async (a: string, b: string): Promise<void> => {
      const res = await api('GET', `${this.base}/diff?from=${a}&to=${b}`)
      out.replaceChildren(h('h3', {}, `v${a} → ${b === 'draft' ? 'draft' : 'v' + b}`), diffTable(res.changes))
    }
    const list = h('ul', { class: 'list', id: 'versions' })
    for (const v of [...data.items].reverse()) {
      list.append(h('li', { 'data-version': v.number },
        h('b', {}, `v${v.number}`), v.number === data.active ? h('span', { class: 'badge' }, 'active') : null,
        ` ${v.message || ''} `, h('small', {}, `${v.created_by ?? ''} ${String(v.created_at ?? '').slice(0, 16).replace('T', ' ')}`),
        h('div', { class: 'row' },
          h('button', { onclick: () => showDiff(String(v.number), 'draft') }, 'diff to draft'),
          h('button', {
            disabled: !this.draft.canEdit || v.number === data.active, class: 'rollback',
            onclick: async () => {
              if (!confirm(`Make version ${v.number} active again?`)) return
              try {
                const res = await api('POST', `${this.base}/rollback`, { version: v.number })
                await this.versionsTab()
                this.body.prepend(h('div', { class: 'ok' }, `Version ${res.version.number} is active`), steps(res.steps))
              } catch (e) { out.replaceChildren(problem(e)) }
            }
          }, 'rollback'))))
    }
    this.body.replaceChildren(h('div', { class: 'row' }, 'Diff', from, '→', to, h('button', { id: 'show-diff', onclick: () => showDiff(from.value, to.value) }, 'Show')), list, out)
  }

  private async historyTab (): Promise<void> {
    const data = await api('GET', `${this.base}/draft/history?limit=50`)
    this.body.replaceChildren(h('ul', { class: 'list', id: 'history' }, ...data.items.map((c: Json) =>
      h('li', {}, h('small', {}, c.at.slice(11, 19)), ` ${c.author}: `, h('code', {}, c.paths.slice(0, 3).join(', '))))))
  }

  private async complianceTab (): Promise<void> {
    const data = await api('GET', `${this.base}/compliance`)
    const review = h('div', { id: 'fix-review' })
    const violations = h('ul', { class: 'list', id: 'violations' }, ...data.violations.map((v: Json) =>
      h('li', { class: v.blocking ? 'blocking' : '' }, h('b', {}, v.rule), ` ${v.message} `, h('code', {}, v.path ?? ''), v.waiver ? h('span', { class: 'badge' }, 'waived') : null)))
    this.body.replaceChildren(
      h('p', {}, `Packs: ${(data.packs ?? []).join(', ') || 'none'} — ${data.blocking} blocking, ${data.violations.length} total`),
      violations,
      h('button', { id: 'fix-compliance', disabled: !this.draft.canEdit || !data.violations.length, onclick: () => this.proposeFix(review) }, 'Fix compliance…'),
      review)
  }

  /** Show the JSON Patch the fix would apply; apply only after review, at that revision. */
  private async proposeFix (review: HTMLElement): Promise<void> {
    const fix = await api('POST', `${this.base}/compliance/fix`, { apply: false })
    if (!fix.patch.length) {
      review.replaceChildren(h('p', {}, 'Nothing can be fixed automatically.'), manual(fix.manual) ?? '')
      return
    }
    review.replaceChildren(
      h('h3', {}, `Proposed change (${fix.patch.length} operations, rules ${fix.rules.join(', ')})`),
      h('div', { class: 'patch', id: 'fix-patch' }, ...fix.patch.map((op: Json) =>
        h('div', { class: `patch-op op-${op.op}` }, h('b', {}, op.op), ' ', h('code', {}, op.path),
          op.value === undefined ? null : h('pre', {}, JSON.stringify(op.value, null, 1))))),
      manual(fix.manual) ?? '',
      h('div', { class: 'row' },
        h('button', {
          id: 'apply-fix',
          onclick: async () => {
            try {
              const res = await api('POST', `${this.base}/compliance/fix`, { apply: true, revision: fix.revision })
              review.replaceChildren(h('div', { class: 'ok', id: 'fix-applied' }, `Applied: draft revision ${res.revision}`))
              setTimeout(() => { void this.load() }, 800)
            } catch (e) { review.replaceChildren(problem(e)) }
          }
        }, 'Apply fix'),
        h('button', { onclick: () => review.replaceChildren() }, 'Cancel')))
  }
}

function steps (items: Json[] | undefined): HTMLElement {
  return h('ul', { class: 'steps' }, ...(items ?? []).map((st: Json) => h('li', { class: `step ${st.status}`, 'data-step': st.step },
    h('b', {}, st.step), ` ${st.status}`,
    ...st.messages.slice(0, 10).map((m: Json) => h('div', { class: 'hint' }, `${m.path ? m.path + ': ' : ''}${m.message}`)))))
}

function manual (items: Json[]): HTMLElement | null {
  if (!items?.length) return null
  return h('div', {}, h('h3', {}, 'Needs a person'), h('ul', {}, ...items.map((v: Json) => h('li', {}, `${v.rule}: ${v.message}`))))
}

function diffTable (changes: Json[]): HTMLElement {
  if (!changes.length) return h('p', {}, 'No differences.')
  const show = (v: Json): string => v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v)
  return h('table', { class: 'diff' }, h('tbody', {}, ...changes.map((c: Json) => h('tr', { class: `op-${c.op}` },
    h('td', {}, c.op), h('td', {}, h('code', {}, c.path ?? `${c.kind} ${c.name}`)),
    h('td', { class: 'from' }, show(c.from)), h('td', { class: 'to' }, show(c.to ?? c.member))))))
}

/** An API error as a list of faults with their paths. */
function problem (e: unknown): HTMLElement {
  const data = e instanceof ApiError ? e.data : null
  return h('div', { class: 'problem' }, h('div', { class: 'error' }, (e as Error).message),
    ...(data?.errors ?? []).slice(0, 30).map((f: Json) => h('div', { class: 'error' }, h('code', {}, f.path ?? ''), ` ${f.message}`)),
    data?.steps ? steps(data.steps) : null)
}

function raw (value: Json): HTMLElement {
  return h('details', {}, h('summary', {}, 'raw'), h('pre', {}, JSON.stringify(value, null, 1)))
}
