// Entry point: signs the end user in, routes the path to a page component.
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { app, auth, call, matchPath, type User } from "./runtime";
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

function Portal() {
  const [user, setUser] = useState<User | null>(null);
  const [route, setRoute] = useState(currentRoute());
  const [error, setError] = useState<string | null>(null);
  const navigate = (to: string) => { history.pushState(null, "", base + to); setRoute(currentRoute()); };
  const whoami = async () => {
    if (!auth.token()) return;
    try { setUser(await call("GET", `/a/${app.tenant}/${app.slug}/-/me`)); setError(null); }
    catch { auth.clear(); setError("That token was not accepted."); }
  };
  useEffect(() => {
    const onPop = () => setRoute(currentRoute());
    window.addEventListener("popstate", onPop);
    void whoami();
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  if (!user) {
    return (
      <main className="pl-signin"><h1>{app.name}</h1>
        <form onSubmit={(e) => { e.preventDefault(); auth.store(String(new FormData(e.currentTarget).get("token"))); void whoami(); }}>
          <label htmlFor="pl-token">Access token</label>
          <input id="pl-token" name="token" type="password" required />
          {error && <p className="pl-error" role="alert">{error}</p>}
          <button type="submit">Sign in</button>
        </form>
      </main>
    );
  }
  const Page = route ? pages[route.name] : null;
  return (
    <>
      <header className="pl-header"><strong>{app.name}</strong>
        <nav>{Object.entries(app.pages).filter(([, p]) => p.nav).map(([n, p]) => (
          <a key={n} href={base + p.path} aria-current={route?.name === n ? "page" : "false"}
             onClick={(e) => { e.preventDefault(); navigate(p.path); }}>{p.title}</a>))}</nav>
        <span className="pl-user">{user.name}</span>
      </header>
      <main>{Page && route ? <Page params={route.params} user={user} navigate={navigate} /> : <p className="pl-error">No page at this address.</p>}</main>
    </>
  );
}

createRoot(document.getElementById("root")!).render(<StrictMode><Portal /></StrictMode>);
