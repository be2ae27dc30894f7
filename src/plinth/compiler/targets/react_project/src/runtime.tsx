// The React rendering of Plinth pages: one component per built-in component kind, bindings
// in CEL, validation from the entity's fields, actions. Mirrors the Web Components runtime.
import { useEffect, useState, type ReactNode } from "react";
import { evaluate } from "@marcbachmann/cel-js";
import spec from "./app.json";

export type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any
export interface User { id: string; name: string; roles: string[]; attrs?: Record<string, Json> }
export interface Node { kind: string; parent?: string | null; order?: number; props?: Record<string, Json>; events?: Record<string, Json[]>; visible?: string }
export interface PageSpec { title: string; path: string; nav?: boolean; state?: Record<string, Json>; doubles?: string[]; components: Record<string, Node> }
export interface AppSpec { tenant: string; slug: string; name: string; pages: Record<string, PageSpec>; components: Record<string, { components: Record<string, Node> }>; entities: Record<string, { label: string; title_field?: string; fields: Record<string, Json> }> }

export const app = spec as unknown as AppSpec;
const api = (import.meta.env.VITE_PLINTH_URL as string | undefined) ?? "";

// The access token lives in memory only; the refresh token in an HttpOnly, SameSite=Strict
// cookie set by the Plinth server (so serve `dist/` on the same site as Plinth). A reload
// signs in again through that cookie; the token is renewed before it expires and on a 401.
let session: { token: string; user: User; timer?: ReturnType<typeof setTimeout> } | null = null;
let refreshing: Promise<User | null> | null = null;
const listeners = new Set<(user: User | null) => void>();

export class ApiError extends Error {
  constructor(public status: number, public problem: Json) { super(problem?.detail || `HTTP ${status}`); }
}

async function parse(res: Response): Promise<Json> {
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const auth = {
  user: (): User | null => session?.user ?? null,
  onChange(fn: (user: User | null) => void) { listeners.add(fn); return () => { listeners.delete(fn); }; },
  async post(path: string, body?: Json): Promise<Json> {
    const headers: Record<string, string> = { accept: "application/json", "x-plinth-portal": "1" };
    if (body !== undefined) headers["content-type"] = "application/json";
    return parse(await fetch(`${api}/a/${app.tenant}/-/session/${path}`, { method: "POST", credentials: "include", headers, body: body === undefined ? undefined : JSON.stringify(body) }));
  },
  keep(data: Json): User {
    if (session?.timer) clearTimeout(session.timer);
    const timer = setTimeout(() => void auth.refresh(), Math.max(5, data.expires_in - 60) * 1000);
    session = { token: data.access_token, user: data.user, timer };
    listeners.forEach((fn) => fn(data.user));
    return data.user;
  },
  drop() {
    if (session?.timer) clearTimeout(session.timer);
    session = null;
    listeners.forEach((fn) => fn(null));
  },
  async login(username: string, password: string): Promise<User> { return auth.keep(await auth.post("login", { username, password })); },
  /** The user after renewing the access token from the cookie, or null when signed out. */
  refresh(): Promise<User | null> {
    refreshing ??= auth.post("refresh").then((d) => auth.keep(d), () => { auth.drop(); return null; }).finally(() => { refreshing = null; });
    return refreshing;
  },
  async logout() { auth.drop(); try { await auth.post("logout"); } catch { /* already gone */ } },
  async providers(): Promise<{ password: boolean; oidc: { label: string; url: string } | null }> { return parse(await fetch(`${api}/a/${app.tenant}/-/session/providers`)); },
};

export async function call(method: string, url: string, body?: Json, retried = false): Promise<Json> {
  const headers: Record<string, string> = { accept: "application/json" };
  const token = session?.token;
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(api + url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && token && !retried && await auth.refresh()) return call(method, url, body, true);
  return parse(res);
}

const dataUrl = (entity: string, id?: string) => `/api/t/${app.tenant}/apps/${app.slug}/data/${entity}${id ? `/${encodeURIComponent(id)}` : ""}`;

// Records (a table's `row`, a form's `record`) get the CEL types publish checked them with:
// integers are ints, decimals doubles, datetimes timestamps.
const TYPED = new WeakSet<object>();
const SYSTEM_TYPES: Record<string, string> = { id: "string", created_at: "datetime", updated_at: "datetime", created_by: "string", updated_by: "string", version: "integer" };

export function typedRecord(entityName: string, rec: Json): Json {
  const ent = app.entities[entityName];
  if (!ent || !rec || typeof rec !== "object") return rec;
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(rec as Record<string, Json>)) {
    if (v === null || v === undefined) continue; // absent, as `has(row.x)` expects
    const t = ent.fields[k]?.type ?? SYSTEM_TYPES[k];
    out[k] = t === "integer" ? BigInt(Math.trunc(Number(v))) : t === "decimal" ? Number(v) : t === "datetime" ? new Date(v) : toCel(v);
  }
  TYPED.add(out);
  return out;
}

/** Page state with the CEL types publish checked it with (whole doubles stay doubles). */
function typedState(page: PageSpec, state: Record<string, Json>): Record<string, Json> {
  if (!page.doubles) return state;
  const out = Object.fromEntries(Object.entries(state).map(([k, v]) => [k, page.doubles!.includes(k) && typeof v === "number" ? v : toCel(v)]));
  TYPED.add(out);
  return out;
}

// JSON has one number type and CEL two: whole numbers go in as CEL ints (BigInt).
const toCel = (v: Json): Json => v && typeof v === "object" && TYPED.has(v) ? v : typeof v === "number" ? (Number.isSafeInteger(v) ? BigInt(v) : v)
  : Array.isArray(v) ? v.map(toCel)
  : v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toCel(x)])) : v;
const fromCel = (v: Json): Json => typeof v === "bigint" ? Number(v)
  : Array.isArray(v) ? v.map(fromCel)
  : v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromCel(x)])) : v;

export function bind(value: Json, scope: Json): Json {
  if (typeof value !== "string") return value;
  const whole = value.match(/^\s*\{\{([\s\S]*?)\}\}\s*$/);
  const run = (e: string) => { try { return fromCel(evaluate(e.trim(), toCel(scope))); } catch { return undefined; } };
  if (whole) return run(whole[1]);
  return value.replace(/\{\{([\s\S]*?)\}\}/g, (_, e: string) => String(run(e) ?? ""));
}

export function matchPath(pattern: string, path: string): Record<string, string> | null {
  const a = pattern.split("/").filter(Boolean), b = path.split("/").filter(Boolean);
  if (a.length !== b.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(":")) params[a[i].slice(1)] = decodeURIComponent(b[i]);
    else if (a[i] !== b[i]) return null;
  }
  return params;
}

export function fieldErrors(f: Json, value: Json): string[] {
  if (value === undefined || value === null || value === "") return f.required && f.default === undefined && !f.computed ? ["This field is required."] : [];
  const out: string[] = [];
  if (f.type === "integer" || f.type === "decimal") {
    const n = Number(value);
    if (!Number.isFinite(n)) return ["Enter a number."];
    if (f.type === "integer" && !Number.isInteger(n)) out.push("Enter a whole number.");
    if (f.type === "decimal" && f.scale !== undefined && (String(value).split(".")[1] || "").length > f.scale) out.push(`At most ${f.scale} decimal places.`);
    if (f.min !== undefined && n < f.min) out.push(`Must be at least ${f.min}.`);
    if (f.max !== undefined && n > f.max) out.push(`Must be at most ${f.max}.`);
  }
  if (typeof value === "string") {
    if (f.minLength !== undefined && value.length < f.minLength) out.push(`At least ${f.minLength} characters.`);
    if (f.maxLength !== undefined && value.length > f.maxLength) out.push(`At most ${f.maxLength} characters.`);
    if (f.pattern && !new RegExp(f.pattern, "u").test(value)) out.push("Does not match the expected format.");
    if (f.type === "email" && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(value)) out.push("Enter an email address.");
    if (f.type === "enum" && !(f.values || []).includes(value)) out.push("Choose one of the options.");
  }
  return out;
}

/** Approvals are decided (approved/rejected); other tasks are completed with their data. */
function completeTask(taskId: string, outcome?: string, data?: Json, comment?: string) {
  const url = `/api/t/${app.tenant}/tasks/${encodeURIComponent(taskId)}`;
  if (outcome === "approved" || outcome === "rejected") return call("POST", `${url}/decide`, { decision: outcome, comment: comment || undefined });
  return call("POST", `${url}/complete`, data || {});
}

/** The fields of a task's form, as entity field specs: from the entity, or from its own JSON Schema. */
export function taskFields(task: Json): [string, Json][] {
  const form = task.form || {};
  if (form.schema?.properties) {
    const required = new Set<string>(form.schema.required || []);
    return Object.entries(form.schema.properties as Record<string, Json>).map(([n, s]) => [n, {
      label: s.title, required: required.has(n), values: s.enum, min: s.minimum, max: s.maximum,
      minLength: s.minLength, maxLength: s.maxLength, pattern: s.pattern,
      type: s.enum ? "enum" : ({ integer: "integer", number: "decimal", boolean: "boolean" } as Record<string, string>)[s.type] || "string",
    }]);
  }
  const ent = app.entities[form.entity];
  if (!ent) return [];
  return (form.fields || Object.keys(ent.fields)).filter((f: string) => ent.fields[f] && !ent.fields[f].computed).map((f: string) => [f, ent.fields[f]]);
}

/** A form value as the JSON the server expects for the field's type. */
export function coerce(f: Json, raw: Json): Json {
  if (raw === "" || raw === undefined || raw === null) return undefined;
  if (f.type === "integer") return Number.parseInt(String(raw), 10);
  if (f.type === "decimal") return Number(raw);
  if (f.type === "boolean") return Boolean(raw);
  return raw;
}

/** One input for a field spec (shared by the record form and the task form). */
export function FieldInput({ id, name, f, value, invalid, onChange }: { id: string; name: string; f: Json; value: Json; invalid: boolean; onChange: (v: Json) => void }) {
  const common = { id, name, "aria-invalid": invalid };
  if (f.type === "enum") return <select {...common} value={value ?? ""} onChange={(e) => onChange(e.target.value)}><option value="">—</option>{(f.values || []).map((v: string) => <option key={v}>{v}</option>)}</select>;
  if (f.type === "text") return <textarea rows={4} {...common} value={value ?? ""} onChange={(e) => onChange(e.target.value)} />;
  if (f.type === "boolean") return <input type="checkbox" {...common} checked={!!value} onChange={(e) => onChange(e.target.checked)} />;
  const type = ({ integer: "number", decimal: "number", date: "date", datetime: "datetime-local", email: "email", url: "url" } as Record<string, string>)[f.type] || "text";
  return <input type={type} step={f.type === "decimal" ? "any" : undefined} {...common} value={value ?? ""} onChange={(e) => onChange(e.target.value)} />;
}

interface Ctx { scope: Json; navigate: (to: string) => void; setState: (k: string, v: Json) => void }

async function runActions(actions: Json[] | undefined, ctx: Ctx, scope: Json) {
  for (const action of actions || []) {
    const a: Json = Object.fromEntries(Object.entries(action).map(([k, v]) => [k, bind(v, scope)]));
    const values = () => Object.fromEntries(Object.entries(action.values || action.input || {}).map(([k, v]) => [k, bind(v, scope)]));
    if (a.type === "navigate") ctx.navigate(a.to);
    else if (a.type === "set_state") ctx.setState(a.key, a.value);
    else if (a.type === "create_record") scope.record = typedRecord(a.entity, await call("POST", dataUrl(a.entity), values()));
    else if (a.type === "update_record") scope.record = typedRecord(a.entity, await call("PATCH", dataUrl(a.entity, a.record), values()));
    else if (a.type === "start_workflow") await call("POST", `/api/t/${app.tenant}/apps/${app.slug}/workflows/${a.workflow}/instances`, values());
    else if (a.type === "complete_task") await completeTask(a.task, a.outcome, values());
  }
}

function useList(entity: string, query: string) {
  const [state, set] = useState<{ items: Json[]; next?: string; error?: string }>({ items: [] });
  useEffect(() => { call("GET", `${dataUrl(entity)}?${query}`).then((d) => set({ items: d.items || [], next: d.next_cursor }), (e: Error) => set({ items: [], error: e.message })); }, [entity, query]);
  return state;
}

function Table({ node, ctx }: { node: Node; ctx: Ctx }) {
  const p = node.props || {}, ent = app.entities[p.entity];
  const cols: string[] = p.columns || Object.keys(ent.fields);
  const [cursor, setCursor] = useState<string | undefined>();
  const q = new URLSearchParams({ limit: String(p.page_size || 20) });
  const filter = bind(p.filter || "", ctx.scope);
  if (filter) q.set("filter", filter);
  if (p.sort) q.set("sort", p.sort);
  if (cursor) q.set("cursor", cursor);
  const list = useList(p.entity, q.toString());
  return (<div className="pl-table">{list.error && <p className="pl-error" role="alert">{list.error}</p>}
    <table><thead><tr>{cols.map((c) => <th key={c}>{ent.fields[c]?.label || c}</th>)}</tr></thead>
      <tbody>{list.items.map((row) => <tr key={row.id} className="pl-row" onClick={() => void runActions(node.events?.row_click, ctx, { ...ctx.scope, row: typedRecord(p.entity, row) })}>{cols.map((c) => <td key={c}>{String(row[c] ?? "")}</td>)}</tr>)}</tbody></table>
    <div className="pl-pager"><button className="pl-secondary" disabled={!list.next} onClick={() => setCursor(list.next)}>Next</button></div></div>);
}

function Form({ node, ctx }: { node: Node; ctx: Ctx }) {
  const p = node.props || {}, ent = app.entities[p.entity];
  const names: string[] = p.fields || Object.keys(ent.fields).filter((f) => !ent.fields[f].computed);
  const [values, setValues] = useState<Record<string, Json>>(() => Object.fromEntries(names.filter((n) => ent.fields[n].default !== undefined).map((n) => [n, ent.fields[n].default])));
  const [errors, setErrors] = useState<Record<string, string[]>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const found: Record<string, string[]> = {}, body: Record<string, Json> = {};
    for (const n of names) {
      const f = ent.fields[n], msgs = fieldErrors(f, values[n]);
      if (msgs.length) found[n] = msgs;
      const v = coerce(f, values[n]);
      if (v !== undefined) body[n] = v;
    }
    setErrors(found);
    if (Object.keys(found).length) { setFormError("Please correct the highlighted fields."); return; }
    try {
      const record = await call("POST", dataUrl(p.entity), body);
      await runActions(node.events?.success, ctx, { ...ctx.scope, record: typedRecord(p.entity, record) });
    } catch (err) {
      const server: Record<string, string[]> = {};
      for (const fe of (err as ApiError).problem?.errors || []) { const n = String(fe.path).split(/[./]/).pop()!; (server[n] ||= []).push(fe.message); }
      setErrors(server); setFormError((err as Error).message);
    }
  };
  return (<form className="pl-form" noValidate onSubmit={submit}>
    {names.map((n) => (<div key={n} className="pl-field"><label htmlFor={`f-${n}`}>{ent.fields[n].label || n}{ent.fields[n].required && <span className="pl-req"> *</span>}</label>
      <FieldInput id={`f-${n}`} name={n} f={ent.fields[n]} value={values[n]} invalid={!!errors[n]} onChange={(v) => setValues({ ...values, [n]: v })} />
      {(errors[n] || []).map((m) => <p key={m} className="pl-field-error" data-field={n}>{m}</p>)}</div>))}
    {formError && <p className="pl-error" role="alert">{formError}</p>}
    <button type="submit">{p.submit_label || "Save"}</button></form>);
}

function Detail({ node, ctx }: { node: Node; ctx: Ctx }) {
  const p = node.props || {}, ent = app.entities[p.entity], id = bind(p.record, ctx.scope);
  const [rec, setRec] = useState<Json>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => { call("GET", dataUrl(p.entity, id)).then(setRec, (e: Error) => setError(e.message)); }, [p.entity, id]);
  if (error) return <p className="pl-error" role="alert">{error}</p>;
  if (!rec) return <p className="pl-muted">Loading…</p>;
  return <dl className="pl-detail">{(p.fields || Object.keys(ent.fields)).map((n: string) => <div key={n}><dt>{ent.fields[n]?.label || n}</dt><dd>{String(rec[n] ?? "—")}</dd></div>)}</dl>;
}

function Chart({ node }: { node: Node }) {
  const p = node.props || {}, list = useList(p.entity, "limit=200");
  const groups = new Map<string, number>();
  for (const r of list.items) groups.set(String(r[p.group_by] ?? "—"), (groups.get(String(r[p.group_by] ?? "—")) || 0) + (p.measure === "sum" ? Number(r[p.value_field] || 0) : 1));
  const max = Math.max(1, ...groups.values());
  return <div className="pl-chart">{list.error && <p className="pl-error">{list.error}</p>}{[...groups].map(([k, v]) => <div key={k} className="pl-bar"><span>{k}</span><i style={{ width: `${(100 * v) / max}%` }} /><b>{v}</b></div>)}</div>;
}

function TaskForm({ task, outcomes, onDone }: { task: Json; outcomes: string[]; onDone: (outcome: string) => void }) {
  const fields = taskFields(task);
  const [values, setValues] = useState<Record<string, Json>>({});
  const [errors, setErrors] = useState<Record<string, string[]>>({});
  const [comment, setComment] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const approval = task.kind === "approval";
  const submit = async (outcome: string) => {
    const found: Record<string, string[]> = {}, data: Record<string, Json> = {};
    if (!approval) {
      for (const [n, f] of fields) {
        const msgs = fieldErrors(f, values[n]);
        if (msgs.length) found[n] = msgs;
        const v = coerce(f, values[n]);
        if (v !== undefined) data[n] = v;
      }
    }
    setErrors(found);
    if (Object.keys(found).length) { setError("Please correct the highlighted fields."); return; }
    setBusy(true);
    try { await completeTask(task.id, outcome, data, comment); onDone(outcome); }
    catch (err) {
      // The server validates the form data again: its faults go next to their fields.
      const server: Record<string, string[]> = {};
      for (const fe of (err as ApiError).problem?.errors || []) { const n = String(fe.path).split(/[./]/).pop()!; (server[n] ||= []).push(fe.message); }
      setErrors(server); setError((err as Error).message);
    } finally { setBusy(false); }
  };
  const label: Record<string, string> = { approved: "Approve", rejected: "Reject", complete: "Complete" };
  return (<div className="pl-task-form">
    {!approval && fields.map(([n, f]) => (<div key={n} className="pl-field"><label htmlFor={`t-${task.id}-${n}`}>{f.label || n}{f.required && <span className="pl-req"> *</span>}</label>
      <FieldInput id={`t-${task.id}-${n}`} name={n} f={f} value={values[n]} invalid={!!errors[n]} onChange={(v) => setValues({ ...values, [n]: v })} />
      {(errors[n] || []).map((m) => <p key={m} className="pl-field-error" data-field={n}>{m}</p>)}</div>))}
    {approval && <div className="pl-field"><label htmlFor={`t-${task.id}-comment`}>Comment</label>
      <textarea id={`t-${task.id}-comment`} rows={3} value={comment} onChange={(e) => setComment(e.target.value)} /></div>}
    {error && <p className="pl-error" role="alert">{error}</p>}
    <div className="pl-actions">{outcomes.map((o) => <button key={o} disabled={busy} onClick={() => void submit(o)}>{label[o] || o}</button>)}</div></div>);
}

function TaskInbox({ node, ctx }: { node: Node; ctx: Ctx }) {
  const p = node.props || {};
  const [tasks, setTasks] = useState<Json[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  // The server filters: this app's tasks, of the configured workflow if there is one.
  const query = new URLSearchParams({ app: app.slug });
  if (p.workflow) query.set("workflow", String(p.workflow));
  const load = () => call("GET", `/api/t/${app.tenant}/tasks?${query}`).then((d) => {
    const items: Json[] = Array.isArray(d) ? d : d.items || [];
    setTasks(items.slice(0, p.page_size || 20)); setError(null);
  }, (e: Error) => setError(e.message));
  useEffect(() => { void load(); }, []);
  const done = (task: Json, outcome: string) => { setOpen(null); void load(); void runActions(node.events?.complete, ctx, { ...ctx.scope, task, outcome }); };
  return (<div className="pl-inbox">{error && <p className="pl-error" role="alert">{error}</p>}
    {tasks.length === 0 && !error && <p className="pl-muted">No open tasks.</p>}
    <ul>{tasks.map((t) => (<li key={t.id} className="pl-task"><div className="pl-task-head"><span>{t.title || t.id}{t.business_key && <span className="pl-muted"> {t.business_key}</span>}</span>
      <button className="pl-secondary" aria-expanded={open === t.id} onClick={() => setOpen(open === t.id ? null : t.id)}>{open === t.id ? "Close" : "Open"}</button></div>
      {open === t.id && <TaskForm task={t} outcomes={p.outcomes || (t.kind === "approval" ? ["approved", "rejected"] : ["complete"])} onDone={(o) => done(t, o)} />}</li>))}</ul></div>);
}

function Tabs({ node, kids }: { node: Node; kids: ReactNode[] }) {
  const [active, setActive] = useState(0);
  return <><div className="pl-tabs" role="tablist">{(node.props?.labels || []).map((l: string, i: number) => <button key={l} role="tab" aria-selected={i === active} onClick={() => setActive(i)}>{l}</button>)}</div><div role="tabpanel">{kids[active]}</div></>;
}

function childrenOf(tree: Record<string, Node>, parent: string | null): string[] {
  return Object.entries(tree).filter(([, n]) => (n.parent ?? null) === parent).sort((a, b) => (a[1].order ?? 0) - (b[1].order ?? 0)).map(([id]) => id);
}

function Tree({ tree, id, ctx }: { tree: Record<string, Node>; id: string; ctx: Ctx }): ReactNode {
  const node = tree[id], p = node.props || {};
  if (node.visible !== undefined && !bind(node.visible, ctx.scope)) return null;
  const kids = childrenOf(tree, id).map((c) => <Tree key={c} tree={tree} id={c} ctx={ctx} />);
  switch (node.kind) {
    case "stack": return <div className={`pl-stack pl-${p.direction || "vertical"}`} style={{ gap: p.gap || "1rem" }}>{kids}</div>;
    case "grid": return <div className="pl-grid" style={{ gridTemplateColumns: `repeat(${p.columns || 2},minmax(0,1fr))`, gap: p.gap || "1rem" }}>{kids}</div>;
    case "tabs": return <Tabs node={node} kids={kids} />;
    case "text": {
      const text = bind(p.text, ctx.scope);
      if (p.variant === "h1") return <h1>{text}</h1>;
      if (p.variant === "h2") return <h2>{text}</h2>;
      if (p.variant === "h3") return <h3>{text}</h3>;
      return <p className={p.variant === "muted" ? "pl-muted" : undefined}>{text}</p>;
    }
    case "table": return <Table node={node} ctx={ctx} />;
    case "form": return <Form node={node} ctx={ctx} />;
    case "detail": return <Detail node={node} ctx={ctx} />;
    case "chart": return <Chart node={node} />;
    case "task_inbox": return <TaskInbox node={node} ctx={ctx} />;
    case "button": return <button className={`pl-${p.variant || "primary"}`} onClick={() => void runActions(node.events?.click, ctx, { ...ctx.scope })}>{p.label}</button>;
    default: {
      if (node.kind.startsWith("component:")) {
        const doc = app.components[node.kind.slice(10)];
        const props = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, bind(v, ctx.scope)]));
        return <Tree tree={doc.components} id={childrenOf(doc.components, null)[0]} ctx={{ ...ctx, scope: { ...ctx.scope, props } }} />;
      }
      if (node.kind.startsWith("plugin:")) {
        // The element's module is the plugin's (served by the Plinth portal); here its bound
        // props are passed as attributes.
        const Tag = node.kind.split("/")[1] as unknown as React.ElementType;
        const props = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, bind(v, ctx.scope)]));
        return <Tag {...props} />;
      }
      return <p className="pl-error">Unknown component {node.kind}</p>;
    }
  }
}

export interface PageProps { params: Record<string, string>; user: User; navigate: (to: string) => void }

/** One page of the app: its state, and its component tree rendered with bindings. */
export function Page({ name, params, user, navigate }: PageProps & { name: string }) {
  const page = app.pages[name];
  const [state, setStateMap] = useState<Record<string, Json>>(page.state || {});
  useEffect(() => { document.title = `${page.title} · ${app.name}`; }, [name]);
  const ctx: Ctx = { scope: { state: typedState(page, state), params, user, page: { name, title: page.title } }, navigate, setState: (k, v) => setStateMap({ ...state, [k]: v }) };
  return <section className="pl-page" data-page={name}><Tree tree={page.components} id={childrenOf(page.components, null)[0]} ctx={ctx} /></section>;
}
