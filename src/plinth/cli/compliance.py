"""`plinth compliance`: profiles, checks, fixes, waivers and reports from a shell."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from plinth.cli import common
from plinth.cli.common import DataDir, DbUrl

cli = typer.Typer(
    help="Compliance: jurisdiction packs, fixes, waivers and reports.", no_args_is_help=True
)

AppArg = Annotated[str, typer.Argument(metavar="APP")]


@cli.command("profile")
def profile(
    tenant: str,
    set_: Annotated[str | None, typer.Option("--set", help="The profile as JSON")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Show (or set, with --set) a tenant's compliance profile."""
    m = common

    async def work(p: Any) -> Any:
        t = await p.tenants.get(tenant)
        if set_ is not None:
            try:
                raw = json.loads(set_)
            except json.JSONDecodeError as exc:
                raise typer.BadParameter(f"--set is not JSON: {exc}") from exc
            return (await p.compliance.set_profile(t, raw, m.operator().audit_name())).as_dict()
        return p.compliance.profile(t).as_dict()

    m.console.print_json(json.dumps(m.run(m.settings_for(data_dir, database_url), work)))


@cli.command("check")
def check(tenant: str, app: AppArg, data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """Check an app's draft against the tenant's packs; exit 1 on critical violations."""
    m = common

    async def work(p: Any) -> Any:
        return await p.compliance.check(await p.tenants.get(tenant), app)

    outcome = m.run(m.settings_for(data_dir, database_url), work)
    for v in outcome.violations:
        colour = "yellow" if v.waiver or v.severity == "warning" else "red"
        state = "waived" if v.waiver else v.severity
        m.console.print(f"[{colour}]{state:8}[/{colour}] {v.rule:32} {v.path}: {v.message}")
    m.console.print(
        f"{len(outcome.rules)} rules of {', '.join(outcome.packs) or 'no'} packs; "
        f"{len(outcome.blocking())} blocking"
    )
    if outcome.blocking():
        raise typer.Exit(1)


@cli.command("fix")
def fix(
    tenant: str,
    app: AppArg,
    apply: Annotated[bool, typer.Option(help="Apply the patch to the draft")] = False,
    classify: Annotated[bool, typer.Option(help="Also classify fields as names suggest")] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Show the JSON Patch that fixes the draft (dry run); --apply writes it to the draft."""
    m = common

    async def work(p: Any) -> Any:
        return await p.compliance.fix(
            await p.tenants.get(tenant),
            app,
            apply=apply,
            by=m.operator().audit_name(),
            classify_fields=classify,
        )

    result = m.run(m.settings_for(data_dir, database_url), work)
    m.console.print_json(json.dumps(result["patch"]))
    for v in result["manual"]:
        m.console.print(f"[yellow]needs a person[/yellow] {v['rule']} {v['path']}: {v['message']}")
    for op in result["skipped"]:
        m.console.print(f"[yellow]skipped[/yellow] {op['path']}: the policy kind is not installed")
    if result["applied"]:
        m.console.print(
            f"Applied to the draft (revision {result['revision']}); review it with "
            f"`plinth app diff {tenant} {app} --to draft`, then publish"
        )
    elif result["patch"]:
        m.console.print("Dry run: nothing changed; add --apply to write it to the draft")
    else:
        m.console.print("Nothing to fix automatically")


@cli.command("waive")
def waive(
    tenant: str,
    app: AppArg,
    rule: str,
    reason: Annotated[str, typer.Option(help="Why the rule is knowingly not met")],
    until: Annotated[str, typer.Option(help="ISO date the waiver ends (UTC)")],
    path: Annotated[str | None, typer.Option(help="Only this path")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Waive a rule for an app until a date, with a reason (recorded in the audit ledger)."""
    m = common
    try:
        end = datetime.fromisoformat(until)
    except ValueError as exc:
        raise typer.BadParameter(f"--until {until!r} is not an ISO date") from exc
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)

    async def work(p: Any) -> Any:
        return await p.compliance.waive(
            await p.tenants.get(tenant),
            app,
            rule,
            reason=reason,
            until=end,
            by=m.operator().audit_name(),
            path=path,
        )

    waiver = m.run(m.settings_for(data_dir, database_url), work)
    m.console.print(f"Waiver {waiver.id} of {rule} until {waiver.until.isoformat()}")


@cli.command("report")
def report(
    tenant: str,
    app: Annotated[str | None, typer.Option(help="Only this app")] = None,
    country: Annotated[str | None, typer.Option(help="Only this country (ISO code)")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the HTML page to this file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report")] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Per app and country: every rule with pass/fail/waived, remediations and evidence."""
    from plinth.governance.compliance.report import render_html

    m = common

    async def work(p: Any) -> Any:
        return await p.compliance.report(await p.tenants.get(tenant), app, country)

    body = m.run(m.settings_for(data_dir, database_url), work)
    if html is not None:
        html.write_text(render_html(body))
        m.console.print(f"Wrote {html}")
    if as_json:
        m.console.print_json(json.dumps(body))
        return
    colours = {
        "pass": "green",
        "warn": "yellow",
        "fail": "red",
        "waived": "yellow",
        "unchecked": "dim",
    }
    m.console.print(
        f"Tenant {body['tenant']}: [{colours[body['status']]}]{body['status'].upper()}[/]"
    )
    for a in body["apps"]:
        for c in a["countries"]:
            m.console.print(
                f"  {a['app']} v{a['version']} {c['country'] or '-'} "
                f"({', '.join(c['packs'])}): [{colours[c['status']]}]"
                f"{c['status'].upper()}[/]"
            )
            for r in c["rules"]:
                if r["status"] != "pass":
                    m.console.print(
                        f"    [{colours[r['status']]}]{r['status']:6}[/] "
                        f"{r['id']} ({r['reference']})"
                    )
    if body["status"] == "fail":
        raise typer.Exit(1)


subject_cli = typer.Typer(help="Data-subject rights: export and erasure.", no_args_is_help=True)
cli.add_typer(subject_cli, name="subject")


@subject_cli.command("export")
def subject_export(
    tenant: str,
    subject: Annotated[str, typer.Argument(help="The subject's key value")],
    app: Annotated[str | None, typer.Option(help="Only this app")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON to this file")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Every record of a data subject across the tenant's apps, as JSON (audited)."""
    m = common

    async def work(p: Any) -> Any:
        return await p.compliance.export_subject(
            await p.tenants.get(tenant), subject, app=app, by=m.operator().audit_name()
        )

    body = m.run(m.settings_for(data_dir, database_url), work)
    if out is not None:
        out.write_text(json.dumps(body, indent=2, ensure_ascii=False))
        m.console.print(f"Wrote {body['records']} records to {out}")
    else:
        m.console.print_json(json.dumps(body))


@subject_cli.command("erase")
def subject_erase(
    tenant: str,
    subject: Annotated[str, typer.Argument(help="The subject's key value")],
    app: Annotated[str | None, typer.Option(help="Only this app")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do it (erasure cannot be undone)")] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Delete or anonymise a subject's records, then destroy the subject's keys."""
    m = common
    if not yes:
        m.console.print("Erasure cannot be undone; add --yes to erase")
        raise typer.Exit(2)

    async def work(p: Any) -> Any:
        return await p.compliance.erase_subject(
            await p.tenants.get(tenant), subject, app=app, by=m.operator().audit_name()
        )

    body = m.run(m.settings_for(data_dir, database_url), work)
    m.console.print_json(json.dumps(body))


@cli.command("retention")
def retention(
    tenant: str,
    app: Annotated[str | None, typer.Option(help="Only this app")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Apply the retention rules now: delete or anonymise expired records (audited)."""
    m = common

    async def work(p: Any) -> Any:
        return await p.compliance.run_retention(
            await p.tenants.get(tenant), app, by=m.operator().audit_name()
        )

    m.console.print_json(json.dumps(m.run(m.settings_for(data_dir, database_url), work)))


@cli.command("rotate-keys")
def rotate_keys(tenant: str, data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """A new field-encryption key for the tenant; every subject key re-wrapped with it."""
    m = common

    async def work(p: Any) -> Any:
        return await p.compliance.rotate_keys(
            await p.tenants.get(tenant), by=m.operator().audit_name()
        )

    m.console.print_json(json.dumps(m.run(m.settings_for(data_dir, database_url), work)))
