// The React rendering of Plinth pages: one component per built-in component kind, bindings
// in CEL, validation from the entity's fields, actions. Mirrors the Web Components runtime.
import { useEffect, useState, type ReactNode } from "react";
import { evaluate } from "@marcbachmann/cel-js";
import spec from "./app.json";

export type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any
export interface User { id: string; name: string; roles: string[] }
export interface Node { kind: string; parent?: string | null; order?: number; props?: Record<string, Json>; events?: Record<string, Json[]>; visible?: string }
export interface PageSpec { title: string; path: string; nav?: boolean; state?: Record<string, Json>; components: Record<string, Node> }
export interface AppSpec { tenant: string; slug: string; name: string; pages: Record<string, PageSpec>; components: Record<string, { components: Record<string, Node> }>; entities: Record<string, { label: string; title_field?: string; fields: Record<string, Json> }> }

export const app = spec as unknown as AppSpec;
const api = (import.meta.env.VITE_PLINTH_URL as string | undefined) ?? "";

export const auth = {
  key: `plinth.token.${app.tenant}`,
  token: () => sessionStorage.getItem(auth.key),
  store: (t: string) => sessionStorage.setItem(auth.key, t.trim()),
  clear: () => sessionStorage.removeItem(auth.key),
};

export class ApiError extends Error {
  constructor(public status: number, public problem: Json) { super(problem?.detail || `HTTP ${status}`); }
}

export async function call(method: string, url: string, body?: Json): Promise<Json> {
  const headers: Record<string, string> = { accept: "application/json" };
  const token = auth.token();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(api + url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const dataUrl = (entity: string, id?: string) => `/api/t/${app.tenant}/apps/${app.slug}/data/${entity}${id ? `/${encodeURIComponent(id)}` : ""}`;

// JSON has one number type and CEL two: whole numbers go in as CEL ints (BigInt).
const toCel = (v: Json): Json => typeof v === "number" ? (Number.isSafeInteger(v) ? BigInt(v) : v)
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
    if (f.min !== undefined && n < f.min) out.push(`Must be at least ${f.min}.`);
    if (f.max !== undefined && n > f.max) out.push(`Must be at most ${f.max}.`);
  }
  if (typeof value === "string") {
    if (f.minLength !== undefined && value.length < f.minLength) out.push(`At least ${f.minLength} characters.`);
    if (f.maxLength !== undefined && value.length > f.maxLength) out.push(`At most ${f.maxLength} characters.`);
    if (f.pattern && !new RegExp(f.pattern, "u").test(value)) out.push("Does not match the expected format.");
  }
  return out;
}

/** Approvals are decided (approved/rejected); other tasks are completed with their data. */
function completeTask(taskId: string, outcome?: string, data?: Json) {
  const url = `/api/t/${app.tenant}/tasks/${encodeURIComponent(taskId)}`;
  if (outcome === "approved" || outcome === "rejected") return call("POST", `${url}/decide`, { decision: outcome });
  return call("POST", `${url}/complete`, data || {});
}

interface Ctx { scope: Json; navigate: (to: string) => void; setState: (k: string, v: Json) => void }

async function runActions(actions: Json[] | undefined, ctx: Ctx, scope: Json) {
  for (const action of actions || []) {
    const a: Json = Object.fromEntries(Object.entries(action).map(([k, v]) => [k, bind(v, scope)]));
    const values = () => Object.fromEntries(Object.entries(action.values || action.input || {}).map(([k, v]) => [k, bind(v, scope)]));
    if (a.type === "navigate") ctx.navigate(a.to);
    else if (a.type === "set_state") ctx.setState(a.key, a.value);
    else if (a.type === "create_record") scope.record = await call("POST", dataUrl(a.entity), values());
    else if (a.type === "update_record") scope.record = await call("PATCH", dataUrl(a.entity, a.record), values());
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
      <tbody>{list.items.map((row) => <tr key={row.id} className="pl-row" onClick={() => void runActions(node.events?.row_click, ctx, { ...ctx.scope, row })}>{cols.map((c) => <td key={c}>{String(row[c] ?? "")}</td>)}</tr>)}</tbody></table>
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
      if (values[n] !== undefined && values[n] !== "") body[n] = f.type === "integer" || f.type === "decimal" ? Number(values[n]) : values[n];
    }
    setErrors(found);
    if (Object.keys(found).length) { setFormError("Please correct the highlighted fields."); return; }
    try {
      const record = await call("POST", dataUrl(p.entity), body);
      await runActions(node.events?.success, ctx, { ...ctx.scope, record });
    } catch (err) {
      const server: Record<string, string[]> = {};
      for (const fe of (err as ApiError).problem?.errors || []) { const n = String(fe.path).split(/[./]/).pop()!; (server[n] ||= []).push(fe.message); }
      setErrors(server); setFormError((err as Error).message);
    }
  };
  const input = (n: string): ReactNode => {
    const f = ent.fields[n], id = `f-${n}`, common = { id, name: n, "aria-invalid": !!errors[n], value: values[n] ?? "", onChange: (e: { target: { value: string } }) => setValues({ ...values, [n]: e.target.value }) };
    if (f.type === "enum") return <select {...common}><option value="">—</option>{f.values.map((v: string) => <option key={v}>{v}</option>)}</select>;
    if (f.type === "text") return <textarea rows={4} {...common} />;
    const type = ({ integer: "number", decimal: "number", date: "date", datetime: "datetime-local", email: "email" } as Record<string, string>)[f.type] || "text";
    return <input type={type} step={f.type === "decimal" ? "any" : undefined} {...common} />;
  };
  return (<form className="pl-form" noValidate onSubmit={submit}>
    {names.map((n) => (<div key={n} className="pl-field"><label htmlFor={`f-${n}`}>{ent.fields[n].label || n}{ent.fields[n].required && <span className="pl-req"> *</span>}</label>
      {input(n)}{(errors[n] || []).map((m) => <p key={m} className="pl-field-error" data-field={n}>{m}</p>)}</div>))}
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

function TaskInbox({ node }: { node: Node }) {
  const p = node.props || {};
  const [tasks, setTasks] = useState<Json[]>([]);
  const [error, setError] = useState<string | null>(null);
  const load = () => call("GET", `/api/t/${app.tenant}/tasks`).then((d) => setTasks((Array.isArray(d) ? d : d.items || []).slice(0, p.page_size || 20)), (e: Error) => setError(e.message));
  useEffect(() => { void load(); }, []);
  const complete = (t: Json, outcome: string) => completeTask(t.id, outcome).then(load, (e: Error) => setError(e.message));
  return <div className="pl-inbox">{error && <p className="pl-error" role="alert">{error}</p>}<ul>{tasks.map((t) => <li key={t.id} className="pl-task"><span>{t.title || t.id}</span>{(p.outcomes || (t.kind === "approval" ? ["approved", "rejected"] : ["complete"])).map((o: string) => <button key={o} className="pl-secondary" onClick={() => void complete(t, o)}>{o}</button>)}</li>)}</ul></div>;
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
    case "task_inbox": return <TaskInbox node={node} />;
    case "button": return <button className={`pl-${p.variant || "primary"}`} onClick={() => void runActions(node.events?.click, ctx, { ...ctx.scope })}>{p.label}</button>;
    default: {
      if (node.kind.startsWith("component:")) {
        const doc = app.components[node.kind.slice(10)];
        const props = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, bind(v, ctx.scope)]));
        return <Tree tree={doc.components} id={childrenOf(doc.components, null)[0]} ctx={{ ...ctx, scope: { ...ctx.scope, props } }} />;
      }
      if (node.kind.startsWith("plugin:")) {
        const Tag = node.kind.split("/")[1] as unknown as React.ElementType;
        return <Tag {...p} />;
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
  const ctx: Ctx = { scope: { state, params, user, page: { name, title: page.title } }, navigate, setState: (k, v) => setStateMap({ ...state, [k]: v }) };
  return <section className="pl-page" data-page={name}><Tree tree={page.components} id={childrenOf(page.components, null)[0]} ctx={ctx} /></section>;
}
