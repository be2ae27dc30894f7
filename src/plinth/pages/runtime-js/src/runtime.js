// The browser runtime of Plinth pages: Lit elements for each built-in component kind, a
// binding evaluator (CEL), client-side validation from entity fields, actions, a router and
// the end-user sign-in seam. Bundled once into a static file; each compiled app module
// imports it and calls `definePages(app)`.
import { LitElement, html, nothing } from "lit";
import { evaluate } from "@marcbachmann/cel-js";

const BINDING = /\{\{([\s\S]*?)\}\}/g;
const WHOLE = /^\s*\{\{([\s\S]*?)\}\}\s*$/;

// ---- bindings ---------------------------------------------------------------------------

/** The value of `{{ expr }}` bindings in a string: a lone binding keeps its type. */
export function bind(value, scope) {
  if (typeof value !== "string") return value;
  const whole = value.match(WHOLE);
  if (whole) return safeEval(whole[1], scope);
  if (!value.includes("{{")) return value;
  return value.replace(BINDING, (_, expr) => {
    const v = safeEval(expr, scope);
    return v === undefined || v === null ? "" : String(v);
  });
}

// Records (a table's `row`, a form's `record`) get the CEL types publish checked them with
// (plinth/pages/bindings.py): integers are ints, decimals doubles, datetimes timestamps.
const TYPED = new WeakSet();
const SYSTEM_TYPES = { id: "string", created_at: "datetime", updated_at: "datetime", created_by: "string", updated_by: "string", version: "integer" };

export function typedRecord(app, entityName, rec) {
  const entity = app.entities[entityName];
  if (!entity || !rec || typeof rec !== "object") return rec;
  const out = {};
  for (const [k, v] of Object.entries(rec)) {
    if (v === null || v === undefined) continue; // absent, as `has(row.x)` expects
    const t = entity.fields[k]?.type ?? SYSTEM_TYPES[k];
    if (t === "integer") out[k] = BigInt(Math.trunc(Number(v)));
    else if (t === "decimal") out[k] = Number(v);
    else if (t === "datetime") out[k] = new Date(v);
    else out[k] = toCel(v);
  }
  TYPED.add(out);
  return out;
}

/** Page state with the CEL types publish checked it with (whole doubles stay doubles). */
function typedState(page, state) {
  if (!page.doubles) return state;
  const out = {};
  for (const [k, v] of Object.entries(state)) out[k] = page.doubles.includes(k) && typeof v === "number" ? v : toCel(v);
  TYPED.add(out);
  return out;
}

// JSON has one number type and CEL two: whole numbers become CEL ints (BigInt), so that
// `state.n + 1` type-checks; results come back as plain JS numbers.
function toCel(v) {
  if (v && typeof v === "object" && TYPED.has(v)) return v;
  if (typeof v === "number") return Number.isSafeInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(toCel);
  if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = toCel(x);
    return out;
  }
  return v;
}

function fromCel(v) {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(fromCel);
  if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = fromCel(x);
    return out;
  }
  return v;
}

function safeEval(expr, scope) {
  try {
    return fromCel(evaluate(expr.trim(), toCel(scope)));
  } catch (err) {
    console.warn("plinth: binding failed", expr, err.message);
    return undefined;
  }
}

function bindAll(obj, scope) {
  const out = {};
  for (const [k, v] of Object.entries(obj || {})) out[k] = bind(v, scope);
  return out;
}

// ---- sign-in ----------------------------------------------------------------------------

// The access token lives in memory only; the refresh token in an HttpOnly, SameSite=Strict
// cookie that no script can read (plinth/pages/session.py says why). A reload signs in again
// through that cookie; the access token is refreshed a minute before it expires, and on a 401.
const sessions = new Map(); // tenant -> { token, user, timer }
const inflight = new Map(); // tenant -> the pending refresh (one at a time)

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

async function parse(res) {
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const auth = {
  url: (app, path) => `/a/${app.tenant}/-/${path}`,
  token(app) { return sessions.get(app.tenant)?.token ?? null; },
  user(app) { return sessions.get(app.tenant)?.user ?? null; },
  async post(app, path, body) {
    const headers = { accept: "application/json", "x-plinth-portal": "1" };
    if (body !== undefined) headers["content-type"] = "application/json";
    return parse(await fetch(this.url(app, `session/${path}`), {
      method: "POST", credentials: "same-origin", headers,
      body: body === undefined ? undefined : JSON.stringify(body) }));
  },
  keep(app, data) {
    clearTimeout(sessions.get(app.tenant)?.timer);
    const timer = setTimeout(() => this.refresh(app), Math.max(5, data.expires_in - 60) * 1000);
    sessions.set(app.tenant, { token: data.access_token, user: data.user, timer });
    return data.user;
  },
  drop(app) {
    clearTimeout(sessions.get(app.tenant)?.timer);
    sessions.delete(app.tenant);
  },
  async login(app, username, password) { return this.keep(app, await this.post(app, "login", { username, password })); },
  /** The user after renewing the access token from the cookie, or null when signed out. */
  refresh(app) {
    if (!inflight.has(app.tenant)) {
      // The portal's shell starts the first renewal before this module has loaded.
      const early = window.plinthSession?.tenant === app.tenant ? window.plinthSession.response : null;
      if (early) window.plinthSession = null;
      inflight.set(app.tenant, (early ? early.then(parse) : this.post(app, "refresh"))
        .then((data) => this.keep(app, data), (err) => {
          if (err.status !== 401) console.warn("plinth: session refresh failed", err.message);
          this.drop(app);
          window.dispatchEvent(new CustomEvent("plinth:signed-out", { detail: app.tenant }));
          return null;
        })
        .finally(() => inflight.delete(app.tenant)));
    }
    return inflight.get(app.tenant);
  },
  async logout(app) {
    this.drop(app);
    try { await this.post(app, "logout"); } catch (err) { console.warn("plinth: sign-out", err.message); }
  },
  async providers(app) { return parse(await fetch(this.url(app, "session/providers"))); },
};

// ---- API calls under the end user's identity --------------------------------------------

async function call(app, method, url, body, retried) {
  const headers = { accept: "application/json" };
  const token = auth.token(app);
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && token && !retried && await auth.refresh(app)) return call(app, method, url, body, true);
  return parse(res);
}

const dataUrl = (app, entity, id) =>
  `/api/t/${app.tenant}/apps/${app.slug}/data/${entity}${id ? `/${encodeURIComponent(id)}` : ""}`;

// ---- validation from the entity's fields ------------------------------------------------

/** Messages for one field's value, mirroring the server's JSON Schema of the entity. */
export function fieldErrors(spec, value) {
  const empty = value === undefined || value === null || value === "";
  if (empty) return spec.required && !spec.computed && spec.default === undefined ? ["This field is required."] : [];
  const out = [];
  const t = spec.type;
  if (t === "integer" || t === "decimal") {
    const n = Number(value);
    if (!Number.isFinite(n)) return ["Enter a number."];
    if (t === "integer" && !Number.isInteger(n)) out.push("Enter a whole number.");
    if (spec.min !== undefined && n < spec.min) out.push(`Must be at least ${spec.min}.`);
    if (spec.max !== undefined && n > spec.max) out.push(`Must be at most ${spec.max}.`);
    if (t === "decimal" && spec.scale !== undefined) {
      const decimals = (String(value).split(".")[1] || "").length;
      if (decimals > spec.scale) out.push(`At most ${spec.scale} decimal places.`);
    }
  }
  if (typeof value === "string") {
    if (spec.minLength !== undefined && value.length < spec.minLength) out.push(`At least ${spec.minLength} characters.`);
    if (spec.maxLength !== undefined && value.length > spec.maxLength) out.push(`At most ${spec.maxLength} characters.`);
    if (spec.pattern && !new RegExp(spec.pattern, "u").test(value)) out.push(`Does not match the expected format.`);
    if (t === "email" && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(value)) out.push("Enter an email address.");
    if (t === "enum" && !(spec.values || []).includes(value)) out.push("Choose one of the options.");
  }
  return out;
}

function coerce(spec, raw) {
  if (raw === "" || raw === undefined) return undefined;
  if (spec.type === "integer") return Number.parseInt(raw, 10);
  if (spec.type === "decimal") return Number(raw);
  return raw;
}

/** The fields of a task's form as entity field specs: the entity's, or from its own JSON Schema. */
export function taskFields(app, task) {
  const form = task.form || {};
  if (form.schema?.properties) {
    const required = new Set(form.schema.required || []);
    return Object.entries(form.schema.properties).map(([n, s]) => [n, {
      label: s.title, required: required.has(n), values: s.enum, min: s.minimum, max: s.maximum,
      minLength: s.minLength, maxLength: s.maxLength, pattern: s.pattern,
      type: s.enum ? "enum" : { integer: "integer", number: "decimal", boolean: "boolean" }[s.type] || "string",
    }]);
  }
  const entity = app.entities[form.entity];
  if (!entity) return [];
  return (form.fields || Object.keys(entity.fields)).filter((f) => entity.fields[f] && !entity.fields[f].computed).map((f) => [f, entity.fields[f]]);
}

/** Approvals are decided (approved/rejected); other tasks are completed with their data. */
function completeTask(app, taskId, outcome, data, comment) {
  const url = `/api/t/${app.tenant}/tasks/${encodeURIComponent(taskId)}`;
  if (outcome === "approved" || outcome === "rejected") return call(app, "POST", `${url}/decide`, { decision: outcome, comment: comment || undefined });
  return call(app, "POST", `${url}/complete`, data || {});
}

// ---- actions ----------------------------------------------------------------------------

async function runActions(host, actions, scope) {
  for (const action of actions || []) {
    const a = bindAll(action, scope);
    const app = host.app;
    if (a.type === "navigate") host.portal.navigate(a.to);
    else if (a.type === "set_state") host.page.setState(action.key, bind(action.value, scope));
    else if (a.type === "refresh") host.page.refresh(a.component);
    else if (a.type === "create_record") scope.record = typedRecord(app, a.entity, await call(app, "POST", dataUrl(app, a.entity), bindAll(action.values, scope)));
    else if (a.type === "update_record") scope.record = typedRecord(app, a.entity, await call(app, "PATCH", dataUrl(app, a.entity, a.record), bindAll(action.values, scope)));
    else if (a.type === "start_workflow") await call(app, "POST", `/api/t/${app.tenant}/apps/${app.slug}/workflows/${a.workflow}/instances`, bindAll(action.input, scope));
    else if (a.type === "complete_task") await completeTask(app, a.task, a.outcome, bindAll(action.data, scope));
  }
}

// ---- component elements -----------------------------------------------------------------

/** Light DOM, so the portal's stylesheet and plain selectors reach inside. */
class Base extends LitElement {
  static properties = { node: { attribute: false }, scope: { attribute: false }, _s: { state: true } };
  createRenderRoot() { return this; }
  get props() { return this.node.props || {}; }
  emit(event, extra) { return runActions(this, (this.node.events || {})[event], { ...this.scope, ...extra }); }
}

// ---- references shown by their title --------------------------------------------------

const titles = new Map();

/** The title of a referenced record: its entity's `title_field`, else the id (also when the
 * user may not read it). One request per record per page load. */
function refTitle(app, entity, id) {
  const field = app.entities[entity]?.title_field;
  if (id === null || id === undefined || id === "" || !field) return Promise.resolve(id ?? "");
  const key = `${app.tenant}/${app.slug}/${entity}/${id}`;
  if (!titles.has(key)) titles.set(key, call(app, "GET", dataUrl(app, entity, id)).then((r) => r?.[field] ?? id, () => id));
  return titles.get(key);
}

/** `<plinth-ref>`: a reference to a record, shown by its title field rather than its id. */
class PRef extends LitElement {
  static properties = { app: { attribute: false }, entity: {}, ref: {}, _t: { state: true } };
  createRenderRoot() { return this; }
  willUpdate(changed) {
    if (!changed.has("ref") && !changed.has("entity")) return;
    this._t = undefined;
    const want = this.ref;
    refTitle(this.app, this.entity, want).then((t) => { if (this.ref === want) this._t = t; });
  }
  render() { return this._t ?? ""; }
}
if (!customElements.get("plinth-ref")) customElements.define("plinth-ref", PRef);

/** One field's value for display: references by title, empty as a dash. */
function shown(app, spec, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (spec?.type === "reference" && spec.entity) return html`<plinth-ref .app=${app} entity=${spec.entity} .ref=${value}></plinth-ref>`;
  return value;
}

class PTable extends Base {
  connectedCallback() { super.connectedCallback(); this._s = { items: [], cursor: null, stack: [], error: null, loading: true }; this.load(null); }
  async load(cursor) {
    const p = this.props, q = new URLSearchParams();
    const filter = bind(p.filter || "", this.scope);
    if (filter) q.set("filter", filter);
    if (p.sort) q.set("sort", p.sort);
    q.set("limit", String(p.page_size || 20));
    if (p.columns) q.set("fields", ["id", ...p.columns].join(","));
    if (cursor) q.set("cursor", cursor);
    try {
      const data = await call(this.app, "GET", `${dataUrl(this.app, p.entity)}?${q}`);
      this._s = { ...this._s, items: data.items || [], next: data.next_cursor, cursor, loading: false, error: null };
    } catch (err) { this._s = { ...this._s, loading: false, error: err.message }; }
  }
  render() {
    const p = this.props, entity = this.app.entities[p.entity] || { fields: {} };
    const cols = p.columns || Object.keys(entity.fields);
    const s = this._s;
    return html`<div class="pl-table">
      ${s.error ? html`<p class="pl-error" role="alert">${s.error}</p>` : nothing}
      <table><thead><tr>${cols.map((c) => html`<th>${entity.fields[c]?.label || c}</th>`)}</tr></thead>
      <tbody>${s.items.length === 0 && !s.loading ? html`<tr><td colspan=${cols.length} class="pl-muted">${p.empty_text || "Nothing here yet."}</td></tr>` : nothing}
      ${s.items.map((row) => html`<tr class="pl-row" @click=${() => this.emit("row_click", { row: typedRecord(this.app, p.entity, row) })}>${cols.map((c) => html`<td>${row[c] === null || row[c] === undefined ? "" : shown(this.app, entity.fields[c], row[c])}</td>`)}</tr>`)}</tbody></table>
      <div class="pl-pager">
        <button class="pl-secondary" ?disabled=${!s.stack.length} @click=${() => { const prev = s.stack.pop(); this.load(prev); }}>Previous</button>
        <button class="pl-secondary" ?disabled=${!s.next} @click=${() => { s.stack.push(s.cursor); this.load(s.next); }}>Next</button>
      </div></div>`;
  }
}

class PForm extends Base {
  connectedCallback() {
    super.connectedCallback();
    this._s = { values: {}, errors: {}, formError: null, busy: false, options: {} };
    const p = this.props, entity = this.app.entities[p.entity];
    for (const name of this.fieldNames()) {
      const spec = entity.fields[name];
      if (spec.default !== undefined) this._s.values[name] = spec.default;
      if (spec.type === "reference") this.loadOptions(name, spec);
    }
    if (p.mode === "edit") this.loadRecord();
  }
  fieldNames() {
    const entity = this.app.entities[this.props.entity];
    return this.props.fields || Object.keys(entity.fields).filter((f) => !entity.fields[f].computed);
  }
  async loadOptions(name, spec) {
    try {
      const target = this.app.entities[spec.entity];
      const data = await call(this.app, "GET", `${dataUrl(this.app, spec.entity)}?limit=100`);
      const title = target?.title_field || "id";
      this._s = { ...this._s, options: { ...this._s.options, [name]: data.items.map((r) => [r.id, r[title] ?? r.id]) } };
    } catch {
      // no access to the referenced entity: the field becomes a free-text id
      this._s = { ...this._s, options: { ...this._s.options, [name]: null } };
    }
  }
  async loadRecord() {
    const id = bind(this.props.record, this.scope);
    try { this._s = { ...this._s, values: await call(this.app, "GET", dataUrl(this.app, this.props.entity, id)) }; }
    catch (err) { this._s = { ...this._s, formError: err.message }; }
  }
  set(name, raw) { this._s = { ...this._s, values: { ...this._s.values, [name]: raw } }; }
  async submit(ev) {
    ev.preventDefault();
    const entity = this.app.entities[this.props.entity], errors = {}, body = {};
    for (const name of this.fieldNames()) {
      const spec = entity.fields[name], raw = this._s.values[name];
      const msgs = fieldErrors(spec, raw);
      if (msgs.length) errors[name] = msgs;
      const v = spec.type === "boolean" ? Boolean(raw) : coerce(spec, raw);
      if (v !== undefined) body[name] = v;
    }
    if (Object.keys(errors).length) { this._s = { ...this._s, errors, formError: "Please correct the highlighted fields." }; return; }
    this._s = { ...this._s, errors: {}, formError: null, busy: true };
    try {
      const edit = this.props.mode === "edit";
      const record = await call(this.app, edit ? "PATCH" : "POST", dataUrl(this.app, this.props.entity, edit ? this._s.values.id : undefined), body);
      this._s = { ...this._s, busy: false };
      await this.emit("success", { record: typedRecord(this.app, this.props.entity, record) });
    } catch (err) {
      // The server validates again with the same schema: show its faults where they belong.
      const found = {};
      let general = err.message;
      for (const e of err.problem?.errors || []) {
        const field = String(e.path || "").split(/[./]/).filter(Boolean).pop();
        if (field && entity.fields[field]) (found[field] ||= []).push(e.message);
        else general = e.message;
      }
      this._s = { ...this._s, busy: false, errors: found, formError: general };
      await this.emit("error", { error: err.message });
    }
  }
  input(name, spec) {
    const v = this._s.values[name] ?? "", id = `f-${this.node.id}-${name}`, invalid = !!this._s.errors[name];
    const on = (e) => this.set(name, e.target.type === "checkbox" ? e.target.checked : e.target.value);
    if (spec.type === "enum") return html`<select id=${id} name=${name} aria-invalid=${invalid} @change=${on}><option value="">—</option>${spec.values.map((o) => html`<option ?selected=${o === v}>${o}</option>`)}</select>`;
    if (spec.type === "reference" && this._s.options[name] === undefined) return html`<select id=${id} name=${name} disabled><option>Loading…</option></select>`;
    if (spec.type === "reference" && this._s.options[name]) return html`<select id=${id} name=${name} aria-invalid=${invalid} @change=${on}><option value="">—</option>${this._s.options[name].map(([val, label]) => html`<option value=${val} ?selected=${val === v}>${label}</option>`)}</select>`;
    if (spec.type === "text") return html`<textarea id=${id} name=${name} rows="4" aria-invalid=${invalid} .value=${v} @input=${on}></textarea>`;
    if (spec.type === "boolean") return html`<input id=${id} name=${name} type="checkbox" .checked=${!!v} @change=${on}>`;
    const type = { integer: "number", decimal: "number", date: "date", datetime: "datetime-local", email: "email", url: "url" }[spec.type] || "text";
    const step = spec.type === "decimal" ? "any" : nothing;
    return html`<input id=${id} name=${name} type=${type} step=${step} aria-invalid=${invalid} .value=${String(v)} @input=${on}>`;
  }
  render() {
    const entity = this.app.entities[this.props.entity];
    return html`<form class="pl-form" novalidate @submit=${(e) => this.submit(e)}>
      ${this.fieldNames().map((name) => { const spec = entity.fields[name]; return html`<div class="pl-field ${this._s.errors[name] ? "pl-invalid" : ""}">
        <label for=${`f-${this.node.id}-${name}`}>${spec.label || name}${spec.required ? html`<span class="pl-req"> *</span>` : nothing}</label>
        ${this.input(name, spec)}
        ${(this._s.errors[name] || []).map((m) => html`<p class="pl-field-error" data-field=${name}>${m}</p>`)}</div>`; })}
      ${this._s.formError ? html`<p class="pl-error" role="alert">${this._s.formError}</p>` : nothing}
      <button type="submit" ?disabled=${this._s.busy}>${this.props.submit_label || "Save"}</button></form>`;
  }
}

class PDetail extends Base {
  connectedCallback() { super.connectedCallback(); this._s = { record: null, error: null }; this.load(); }
  async load() {
    try { this._s = { record: await call(this.app, "GET", dataUrl(this.app, this.props.entity, bind(this.props.record, this.scope))), error: null }; }
    catch (err) { this._s = { record: null, error: err.message }; }
  }
  render() {
    const entity = this.app.entities[this.props.entity], r = this._s.record;
    if (this._s.error) return html`<p class="pl-error" role="alert">${this._s.error}</p>`;
    if (!r) return html`<p class="pl-muted">Loading…</p>`;
    const names = this.props.fields || Object.keys(entity.fields);
    const title = this.props.show_title && entity.title_field ? html`<h2 class="pl-detail-title">${entity.label || this.props.entity} ${r[entity.title_field] ?? ""}</h2>` : nothing;
    return html`${title}<dl class="pl-detail">${names.map((n) => html`<dt>${entity.fields[n]?.label || n}</dt><dd data-field=${n}>${shown(this.app, entity.fields[n], r[n])}</dd>`)}</dl>`;
  }
}

class PChart extends Base {
  connectedCallback() { super.connectedCallback(); this._s = { groups: [], error: null }; this.load(); }
  async load() {
    const p = this.props, q = new URLSearchParams({ limit: "200" });
    const filter = bind(p.filter || "", this.scope);
    if (filter) q.set("filter", filter);
    try {
      const data = await call(this.app, "GET", `${dataUrl(this.app, p.entity)}?${q}`);
      const groups = new Map();
      for (const r of data.items || []) {
        const key = String(r[p.group_by] ?? "—");
        groups.set(key, (groups.get(key) || 0) + (p.measure === "sum" ? Number(r[p.value_field] || 0) : 1));
      }
      this._s = { groups: [...groups.entries()], error: null };
    } catch (err) { this._s = { groups: [], error: err.message }; }
  }
  render() {
    if (this._s.error) return html`<p class="pl-error" role="alert">${this._s.error}</p>`;
    const max = Math.max(1, ...this._s.groups.map(([, v]) => v));
    return html`<div class="pl-chart">${this._s.groups.length ? nothing : html`<p class="pl-muted">No data yet.</p>`}
      ${this._s.groups.map(([k, v]) => html`<div class="pl-bar"><span>${k}</span><i style="width:${(100 * v) / max}%"></i><b>${v}</b></div>`)}</div>`;
  }
}

class PTaskInbox extends Base {
  connectedCallback() { super.connectedCallback(); this._s = { tasks: [], error: null, open: null, data: {}, errors: {}, record: null, recordError: null }; this.load(); }
  async load() {
    try {
      // The server filters: this app's tasks, of the configured workflow if there is one.
      const query = new URLSearchParams({ app: this.app.slug });
      if (this.props.workflow) query.set("workflow", this.props.workflow);
      const data = await call(this.app, "GET", `/api/t/${this.app.tenant}/tasks?${query}`);
      const tasks = Array.isArray(data) ? data : data.items || [];
      this._s = { ...this._s, tasks: tasks.slice(0, this.props.page_size || 20), error: null };
    } catch (err) { this._s = { ...this._s, tasks: [], error: err.status === 404 ? "Task inbox unavailable." : err.message }; }
  }
  formFields(task) { return taskFields(this.app, task); }
  /** Open or close a task; opening one about a record reads it (as this user: their policies decide what shows). */
  async toggle(task) {
    const open = this._s.open === task.id ? null : task.id;
    this._s = { ...this._s, open, data: {}, errors: {}, record: null, recordError: null };
    const form = task.form || {};
    if (!open || !form.record || !form.entity || !(form.show || []).length) return;
    try {
      const record = await call(this.app, "GET", dataUrl(this.app, form.entity, form.record));
      if (this._s.open === task.id) this._s = { ...this._s, record };
    } catch (err) { if (this._s.open === task.id) this._s = { ...this._s, recordError: err.message }; }
  }
  /** The fields the task shows of its record, read-only; a field the user may not read is absent, so not shown. */
  facts(task) {
    const form = task.form || {}, r = this._s.record;
    if (this._s.recordError) return html`<p class="pl-error" role="alert">${this._s.recordError}</p>`;
    if (!form.record || !(form.show || []).length) return nothing;
    if (!r) return html`<p class="pl-muted">Loading…</p>`;
    const fields = this.app.entities[form.entity]?.fields || {};
    return html`<dl class="pl-task-facts">${form.show.filter((n) => n in r).map((n) => html`<dt>${fields[n]?.label || n}</dt><dd data-field=${n}>${shown(this.app, fields[n], r[n])}</dd>`)}</dl>`;
  }
  async complete(task, outcome) {
    const data = {}, errors = {};
    if (task.kind !== "approval") {
      for (const [name, spec] of this.formFields(task)) {
        const raw = this._s.data[name], msgs = fieldErrors(spec, raw);
        if (msgs.length) errors[name] = msgs;
        const v = coerce(spec, raw);
        if (v !== undefined) data[name] = v;
      }
      if (Object.keys(errors).length) { this._s = { ...this._s, errors }; return; }
    }
    try {
      await completeTask(this.app, task.id, outcome, data, this._s.data.__comment);
      await this.emit("complete", { task, outcome });
      this._s = { ...this._s, open: null, data: {}, errors: {} };
      this.load();
    } catch (err) {
      const found = {};
      for (const e of err.problem?.errors || []) (found[String(e.path || "").split(/[./]/).pop()] ||= []).push(e.message);
      this._s = { ...this._s, error: err.message, errors: found };
    }
  }
  taskForm(task) {
    const set = (name, value) => { this._s = { ...this._s, data: { ...this._s.data, [name]: value } }; };
    const outcomes = this.props.outcomes || (task.kind === "approval" ? ["approved", "rejected"] : ["complete"]);
    const approval = task.kind === "approval", cid = `t-${task.id}-comment`;
    return html`<div class="pl-task-form">${this.facts(task)}${approval ? html`<div class="pl-field"><label for=${cid}>Comment</label>
      <textarea id=${cid} rows="3" @input=${(e) => set("__comment", e.target.value)}></textarea></div>` : nothing}${(approval ? [] : this.formFields(task)).map(([name, spec]) => {
      const id = `t-${task.id}-${name}`, v = this._s.data[name] ?? "";
      return html`<div class="pl-field"><label for=${id}>${spec.label || name}</label>
        ${spec.type === "enum"
          ? html`<select id=${id} @change=${(e) => set(name, e.target.value)}><option value="">—</option>${spec.values.map((o) => html`<option ?selected=${o === v}>${o}</option>`)}</select>`
          : html`<input id=${id} .value=${String(v)} type=${spec.type === "integer" || spec.type === "decimal" ? "number" : "text"} @input=${(e) => set(name, e.target.value)}>`}
        ${(this._s.errors[name] || []).map((m) => html`<p class="pl-field-error" data-field=${name}>${m}</p>`)}</div>`;
    })}<div class="pl-actions">${outcomes.map((o) => html`<button @click=${() => this.complete(task, o)}>${{ approved: "Approve", rejected: "Reject", complete: "Complete" }[o] || o}</button>`)}</div></div>`;
  }
  render() {
    const s = this._s;
    return html`<div class="pl-inbox">${s.error ? html`<p class="pl-error" role="alert">${s.error}</p>` : nothing}
      ${s.tasks.length === 0 && !s.error ? html`<p class="pl-muted">No open tasks.</p>` : nothing}
      <ul>${s.tasks.map((t) => html`<li class="pl-task"><div class="pl-task-head"><span>${t.title || t.id}${t.business_key ? html` <span class="pl-muted">${t.business_key}</span>` : nothing}</span>
        <button class="pl-secondary" aria-expanded=${s.open === t.id} @click=${() => this.toggle(t)}>${s.open === t.id ? "Close" : "Open"}</button></div>
        ${s.open === t.id ? this.taskForm(t) : nothing}</li>`)}</ul></div>`;
  }
}

class PButton extends Base {
  render() {
    const p = this.props, disabled = p.disabled ? Boolean(bind(p.disabled, this.scope)) : false;
    return html`<button class="pl-${p.variant || "primary"}" ?disabled=${disabled} @click=${() => this.emit("click", {})}>${p.label}</button>`;
  }
}

class PTabs extends Base {
  static properties = { ...Base.properties, children: { attribute: false } };
  render() {
    const active = this._s || 0, labels = this.props.labels;
    return html`<div class="pl-tabs" role="tablist">${labels.map((l, i) => html`<button role="tab" aria-selected=${i === active} class=${i === active ? "pl-primary" : "pl-secondary"} @click=${() => { this._s = i; this.emit("change", { tab: i }); }}>${l}</button>`)}</div>
      <div role="tabpanel">${this.children?.[active] ?? nothing}</div>`;
  }
}

const ELEMENTS = { table: "plinth-table", form: "plinth-form", detail: "plinth-detail", chart: "plinth-chart", task_inbox: "plinth-task-inbox", button: "plinth-button", tabs: "plinth-tabs" };
const CLASSES = { table: PTable, form: PForm, detail: PDetail, chart: PChart, task_inbox: PTaskInbox, button: PButton, tabs: PTabs };
for (const [kind, tag] of Object.entries(ELEMENTS)) if (!customElements.get(tag)) customElements.define(tag, CLASSES[kind]);

/** Where a plugin element's module is loaded from: the portal shell lists the tenant's
 * installed plugin elements (kind -> immutable, hash-named URL) in `window.plinthPlugins`. */
export let pluginModuleUrl = (app, kind) => (globalThis.plinthPlugins || {})[kind];
export function setPluginModuleUrl(fn) { pluginModuleUrl = fn; }
const loadedPlugins = new Set();

/** What a plugin element may use of the page: read records under the signed-in user. */
function pluginHost(app) {
  return {
    tenant: app.tenant, app: app.slug,
    record: (entity, id) => call(app, "GET", dataUrl(app, entity, id)),
    query: (entity) => call(app, "GET", dataUrl(app, entity)),
  };
}

// ---- pages ------------------------------------------------------------------------------

function childrenOf(tree, parent) {
  return Object.entries(tree).filter(([, n]) => (n.parent ?? null) === parent)
    .sort((a, b) => (a[1].order ?? 0) - (b[1].order ?? 0)).map(([id]) => id);
}

function renderTree(host, tree, id, scope) {
  const node = { id, ...tree[id] }, props = node.props || {};
  if (node.visible !== undefined && !bind(node.visible, scope)) return nothing;
  const kids = () => childrenOf(tree, id).map((c) => renderTree(host, tree, c, scope));
  const app = host.app;
  switch (node.kind) {
    case "stack": return html`<div class="pl-stack pl-${props.direction || "vertical"}" style="gap:${props.gap || "1rem"}">${kids()}</div>`;
    case "grid": return html`<div class="pl-grid" style="grid-template-columns:repeat(${props.columns || 2},minmax(0,1fr));gap:${props.gap || "1rem"}">${kids()}</div>`;
    case "text": {
      const text = bind(props.text, scope), v = props.variant || "p";
      if (v === "h1") return html`<h1>${text}</h1>`;
      if (v === "h2") return html`<h2>${text}</h2>`;
      if (v === "h3") return html`<h3>${text}</h3>`;
      return html`<p class=${v === "muted" ? "pl-muted" : ""}>${text}</p>`;
    }
    case "tabs": return html`<plinth-tabs .node=${node} .scope=${scope} .app=${app} .portal=${host.portal} .page=${host} .children=${kids()}></plinth-tabs>`;
    default: {
      if (ELEMENTS[node.kind]) {
        const tag = ELEMENTS[node.kind];
        const el = document.createElement(tag);
        Object.assign(el, { node, scope, app, portal: host.portal, page: host });
        return el;
      }
      if (node.kind.startsWith("component:")) {
        const doc = app.components[node.kind.slice(10)];
        const inner = { ...scope, props: bindAll(props, scope) };
        return renderTree(host, doc.components, childrenOf(doc.components, null)[0], inner);
      }
      if (node.kind.startsWith("plugin:")) {
        const [pkg, tag] = node.kind.slice(7).split("/");
        const url = pluginModuleUrl(app, node.kind);
        if (!url) return html`<p class="pl-muted pl-plugin-missing" data-kind=${node.kind}>Plugin ${pkg} is not installed here (${tag}).</p>`;
        if (!loadedPlugins.has(url)) { loadedPlugins.add(url); import(url).catch((e) => console.warn("plinth: plugin", pkg, e)); }
        const el = document.createElement(tag);
        // the host API first, so a prop named like it cannot replace it
        el.plinth = pluginHost(app);
        for (const [k, v] of Object.entries(bindAll(props, scope))) if (k !== "plinth") el[k] = v;
        return el;
      }
      return html`<p class="pl-error">Unknown component ${node.kind}</p>`;
    }
  }
}

/** A custom element class for one page of an app. */
function pageElement(app, name, page) {
  return class extends LitElement {
    static properties = { params: { attribute: false }, portal: { attribute: false }, _state: { state: true }, _tick: { state: true } };
    createRenderRoot() { return this; }
    constructor() { super(); this.app = app; this.params = {}; this._state = { ...(page.state || {}) }; this._tick = 0; }
    setState(key, value) { this._state = { ...this._state, [key]: value }; }
    refresh() { this._tick += 1; }
    render() {
      const scope = { state: typedState(page, this._state), params: this.params || {}, user: this.portal?.user || {}, page: { name, title: page.title } };
      const root = childrenOf(page.components, null)[0];
      // keyed on tick so `refresh` re-creates data components, which reload on connect
      return html`<section class="pl-page" data-page=${name} data-tick=${this._tick}>${renderTree(this, page.components, root, scope)}</section>`;
    }
  };
}

function matchPath(pattern, path) {
  const a = pattern.split("/").filter(Boolean), b = path.split("/").filter(Boolean);
  if (a.length !== b.length) return null;
  const params = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(":")) params[a[i].slice(1)] = decodeURIComponent(b[i]);
    else if (a[i] !== b[i]) return null;
  }
  return params;
}

/** The portal shell: sign-in, navigation, routing to the page elements. */
function portalElement(app, tags) {
  return class extends LitElement {
    static properties = { user: { state: true }, route: { state: true }, signInError: { state: true }, checked: { state: true }, providers: { state: true }, busy: { state: true } };
    createRenderRoot() { return this; }
    connectedCallback() {
      this.replaceChildren(); // drop the shell's "Loading…" placeholder
      super.connectedCallback();
      this.onPop = () => this.resolve();
      this.onSignedOut = (e) => { if (e.detail === app.tenant && this.user) { this.user = null; this.signInError = "Your session has ended; please sign in again."; this.loadProviders(); } };
      window.addEventListener("popstate", this.onPop);
      window.addEventListener("plinth:signed-out", this.onSignedOut);
      this.resolve();
      this.restore();
    }
    disconnectedCallback() {
      window.removeEventListener("popstate", this.onPop);
      window.removeEventListener("plinth:signed-out", this.onSignedOut);
      super.disconnectedCallback();
    }
    get base() { return `/a/${app.tenant}/${app.slug}`; }
    resolve() {
      const rest = location.pathname.startsWith(this.base) ? location.pathname.slice(this.base.length) || "/" : "/";
      for (const [name, page] of Object.entries(app.pages)) {
        const found = matchPath(page.path, rest);
        // query-string values are params too (`/claims?policy=…`); path segments win
        const params = found && { ...Object.fromEntries(new URLSearchParams(location.search)), ...found };
        if (params) { this.route = { name, params }; document.title = `${page.title} · ${app.name}`; return; }
      }
      const first = Object.entries(app.pages).find(([, p]) => p.nav) || Object.entries(app.pages)[0];
      this.route = rest === "/" && first ? { name: first[0], params: {} } : null;
    }
    navigate(to) { history.pushState(null, "", this.base + (to.startsWith("/") ? to : `/${to}`)); this.resolve(); }
    async restore() {
      this.user = await auth.refresh(app);
      this.checked = true;
      if (!this.user) this.loadProviders();
    }
    async loadProviders() {
      try { this.providers = await auth.providers(app); } catch { this.providers = { password: true, oidc: null }; }
    }
    async signIn(ev) {
      ev.preventDefault();
      const form = new FormData(ev.target);
      this.busy = true;
      try { this.user = await auth.login(app, form.get("username").trim(), form.get("password")); this.signInError = null; }
      catch (err) { this.signInError = err.status === 401 ? "Wrong username or password." : err.message; }
      finally { this.busy = false; }
    }
    async signOut() { await auth.logout(app); this.user = null; this.loadProviders(); }
    render() {
      if (!this.checked) return html`<p class="pl-muted">Loading…</p>`;
      if (!this.user) {
        const oidc = this.providers?.oidc;
        const next = encodeURIComponent(location.pathname + location.search);
        return html`<main class="pl-signin"><h1>${app.name}</h1><form @submit=${(e) => this.signIn(e)}>
          <label for="pl-username">Username</label><input id="pl-username" name="username" autocomplete="username" required>
          <label for="pl-password">Password</label><input id="pl-password" name="password" type="password" autocomplete="current-password" required>
          ${this.signInError ? html`<p class="pl-error" role="alert">${this.signInError}</p>` : nothing}
          <button type="submit" ?disabled=${this.busy}>Sign in</button>
          ${oidc ? html`<p class="pl-or">or</p><a class="pl-button pl-secondary" href=${`${oidc.url}?next=${next}`}>Sign in with ${oidc.label}</a>` : nothing}
          </form></main>`;
      }
      const nav = Object.entries(app.pages).filter(([, p]) => p.nav);
      let body = html`<p class="pl-error">No page at this address.</p>`;
      if (this.route) {
        const el = document.createElement(tags[this.route.name]);
        Object.assign(el, { params: this.route.params, portal: this });
        body = el;
      }
      return html`<header class="pl-header"><strong>${app.name}</strong>
        <nav>${nav.map(([n, p]) => html`<a href=${this.base + p.path} @click=${(e) => { e.preventDefault(); this.navigate(p.path); }} aria-current=${this.route?.name === n ? "page" : "false"}>${p.title}</a>`)}</nav>
        <span class="pl-user">${this.user.name || this.user.id} <button class="pl-secondary" @click=${() => this.signOut()}>Sign out</button></span></header>
        <main>${body}</main>`;
    }
  };
}

/** Define the custom elements of one compiled app version: a page element each and the shell. */
export function definePages(app) {
  const tags = {};
  for (const [name, page] of Object.entries(app.pages)) {
    const tag = `plinth-page-${app.slug}-${name}`.replace(/_/g, "-");
    tags[name] = tag;
    if (!customElements.get(tag)) customElements.define(tag, pageElement(app, name, page));
  }
  const shell = `plinth-app-${app.slug}`;
  if (!customElements.get(shell)) customElements.define(shell, portalElement(app, tags));
  return { shell, tags };
}
