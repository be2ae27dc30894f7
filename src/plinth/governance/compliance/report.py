"""The compliance report as a readable HTML page (the JSON form is the service's dict)."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
h1,h2,h3{margin:.8em 0 .3em} table{border-collapse:collapse;width:100%;margin:.5em 0 1.2em}
td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
.pass{color:#1a7f37}.fail{color:#c62828;font-weight:600}.waived,.warn{color:#a15c00}.unchecked{color:#666}
code{font-size:90%;background:#f4f4f4;padding:0 .2em} small{color:#666}
"""


def _badge(status: str) -> str:
    return f'<span class="{escape(status)}">{escape(status.upper())}</span>'


def render_html(report: dict[str, Any]) -> str:
    """One page: overall status, then per app and country every rule with its evidence."""
    e = escape
    out = [
        f"<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>Compliance report: {e(report['tenant'])}</title><style>{_STYLE}</style>",
        f"<h1>Compliance report: {e(report['tenant'])} {_badge(report['status'])}</h1>",
        f"<p><small>Generated {e(report['generated_at'])}. Countries: "
        f"{e(', '.join(report['profile']['countries']) or 'none declared')}.</small></p>",
    ]
    for app in report["apps"]:
        version = app["version"] if app["version"] is not None else "draft (unpublished)"
        out.append(
            f"<h2>App {e(app['app'])}, version {e(str(version))} {_badge(app['status'])}</h2>"
        )
        for c in app["countries"]:
            out.append(
                f"<h3>{e(c['country'] or 'all countries')}: "
                f"{e(', '.join(c['packs']) or 'no packs')} {_badge(c['status'])}</h3>"
            )
            out.append(
                "<table><tr><th>Rule</th><th>Severity</th><th>Legal reference</th>"
                "<th>Status</th><th>Details</th></tr>"
            )
            for r in c["rules"]:
                details = "<br>".join(
                    f"<code>{e(v['path'])}</code> {e(v['message'])}"
                    + (f" <small>(waiver {e(v['waived_by'])})</small>" if v["waived_by"] else "")
                    for v in r["violations"]
                )
                if r["status"] == "unchecked":
                    details = f"needs the {e(r['needs'] or '')} document kind, not installed"
                out.append(
                    f"<tr><td><code>{e(r['id'])}</code> {e(r['title'])}</td>"
                    f"<td>{e(r['severity'])}</td><td>{e(r['reference'])}</td>"
                    f"<td>{_badge(r['status'])}</td><td>{details}</td></tr>"
                )
            out.append("</table>")
            if c["remediation"]:
                out.append(
                    f"<p>Remediation available ({len(c['remediation'])} operations): "
                    f"<code>plinth compliance fix {e(report['tenant'])} "
                    f"{e(app['app'])} --apply</code></p>"
                )
        ev = app["evidence"]
        pub = ev["publish"]
        out.append("<h3>Evidence</h3><ul>")
        if pub:
            out.append(
                f"<li>Version {pub['version']} checked at publish "
                f"{e(pub['checked_at'])} by {e(str(pub['by']))}; content hash "
                f"<code>{e(pub['hash'])}</code>; packs {e(', '.join(pub['packs']))}</li>"
            )
        else:
            out.append("<li>Not published yet.</li>")
        for w in ev["waivers"]:
            state = "active" if w["active"] else "expired"
            out.append(
                f"<li>Waiver <code>{e(w['id'])}</code> of <code>{e(w['rule'])}</code> "
                f"({state} until {e(w['until'])}) by {e(w['by'])}: {e(w['reason'])}</li>"
            )
        for f in ev["fixes"]:
            out.append(
                f"<li>Remediation applied at {e(f['applied_at'])} by {e(str(f['by']))} "
                f"(draft revision {f['revision']}): {e(', '.join(f['rules']))}</li>"
            )
        out.append("</ul>")
        enf = app.get("enforcement")
        if enf:
            out.append("<h3>Runtime enforcement</h3><ul>")
            for key, what in (
                ("encrypted", "Encrypted at rest (AES-GCM, a key per subject)"),
                ("masked", "Masked in responses unless <code>field.unmask</code>"),
                ("audit_reads", "Reads recorded in the audit ledger"),
            ):
                items = ", ".join(f"<code>{e(x)}</code>" for x in enf[key]) or "none"
                out.append(f"<li>{what}: {items}</li>")
            rules = (
                "; ".join(
                    f"<code>{e(r['entity'])}</code> {r['days']} days from "
                    f"<code>{e(r['field'])}</code>, then {e(r['action'])}"
                    for r in enf["retention"]
                )
                or "none"
            )
            runs = (
                ", ".join(f"<code>{e(w)}</code>" for w in enf["retention_workflows"])
                or "<strong>no scheduled retention workflow</strong>"
            )
            out.append(f"<li>Retention: {rules} (run by {runs})</li>")
            subj = ", ".join(f"<code>{e(k)}.{e(v)}</code>" for k, v in enf["subjects"].items())
            out.append(f"<li>Data subjects found by: {subj or 'none'}</li></ul>")
        if app["suggestions"]:
            out.append(
                "<h3>Classification suggestions</h3><ul>"
                + "".join(
                    f"<li><code>{e(s['path'])}</code>: {e(s['message'])}</li>"
                    for s in app["suggestions"]
                )
                + "</ul>"
            )
    out.append("</html>")
    return "\n".join(out)
