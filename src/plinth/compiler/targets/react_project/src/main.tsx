// Entry point: signs the end user in, routes the path to a page component.
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { app, auth, matchPath, type User } from "./runtime";
import { pages } from "./pages";

const base = (import.meta.env.VITE_PLINTH_BASE as string | undefined) ?? "";

function currentRoute(): { name: string; params: Record<string, string> } | null {
  const rest = location.pathname.slice(base.length) || "/";
  for (const [name, page] of Object.entries(app.pages)) {
    const found = matchPath(page.path, rest);
    if (found) return { name, params: { ...Object.fromEntries(new URLSearchParams(location.search)), ...found } };
  }
  const first = Object.entries(app.pages).find(([, p]) => p.nav);
  return rest === "/" && first ? { name: first[0], params: {} } : null;
}

function SignIn() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [oidc, setOidc] = useState<{ label: string; url: string } | null>(null);
  useEffect(() => { auth.providers().then((p) => setOidc(p.oidc), () => setOidc(null)); }, []);
  const submit = async (e: React.FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    try { await auth.login(String(form.get("username")).trim(), String(form.get("password"))); }
    catch (err) { setError((err as { status?: number }).status === 401 ? "Wrong username or password." : (err as Error).message); }
    finally { setBusy(false); }
  };
  const next = encodeURIComponent(location.pathname + location.search);
  return (
    <main className="pl-signin"><h1>{app.name}</h1>
      <form onSubmit={(e) => void submit(e)}>
        <label htmlFor="pl-username">Username</label>
        <input id="pl-username" name="username" autoComplete="username" required />
        <label htmlFor="pl-password">Password</label>
        <input id="pl-password" name="password" type="password" autoComplete="current-password" required />
        {error && <p className="pl-error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>Sign in</button>
        {oidc && <><p className="pl-or">or</p><a className="pl-button pl-secondary" href={`${oidc.url}?next=${next}`}>Sign in with {oidc.label}</a></>}
      </form>
    </main>
  );
}

function Portal() {
  const [user, setUser] = useState<User | null>(auth.user());
  const [checked, setChecked] = useState(false);
  const [route, setRoute] = useState(currentRoute());
  const navigate = (to: string) => { history.pushState(null, "", base + to); setRoute(currentRoute()); };
  useEffect(() => {
    const onPop = () => setRoute(currentRoute());
    window.addEventListener("popstate", onPop);
    const off = auth.onChange(setUser);
    void auth.refresh().then(() => setChecked(true));  // a session cookie signs the user in
    return () => { window.removeEventListener("popstate", onPop); off(); };
  }, []);
  if (!checked && !user) return <p className="pl-muted">Loading…</p>;
  if (!user) return <SignIn />;
  const Page = route ? pages[route.name] : null;
  return (
    <>
      <header className="pl-header"><strong>{app.name}</strong>
        <nav>{Object.entries(app.pages).filter(([, p]) => p.nav).map(([n, p]) => (
          <a key={n} href={base + p.path} aria-current={route?.name === n ? "page" : "false"}
             onClick={(e) => { e.preventDefault(); navigate(p.path); }}>{p.title}</a>))}</nav>
        <span className="pl-user">{user.name} <button className="pl-secondary" onClick={() => void auth.logout()}>Sign out</button></span>
      </header>
      <main>{Page && route ? <Page params={route.params} user={user} navigate={navigate} /> : <p className="pl-error">No page at this address.</p>}</main>
    </>
  );
}

createRoot(document.getElementById("root")!).render(<StrictMode><Portal /></StrictMode>);
