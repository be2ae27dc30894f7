"""The `react` target: an exportable React + TypeScript (Vite) project of an app's pages.

Static files (entry, the renderer of component kinds) come from `react_project/`; the app's
spec and one component file per page are generated. `npm install && npm run build` builds it.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

from plinth.compiler.targets.base import AppVersion, Artifact, artifact
from plinth.compiler.targets.spec import app_spec

PROJECT = Path(__file__).with_name("react_project")
CSS = Path(__file__).parents[2] / "pages" / "portal.css"  # the portal's look, shared

# Versions the generated project is tested with (lower bounds for the exporter's users).
DEPENDENCIES = {"@marcbachmann/cel-js": "^8.0.0", "react": "^18.3.1", "react-dom": "^18.3.1"}
DEV_DEPENDENCIES = {
    "@types/react": "^18.3.0",
    "@types/react-dom": "^18.3.0",
    "typescript": "^5.6.0",
    "vite": "^6.0.0",
}


def component_name(page: str) -> str:
    """`claim_detail` → `ClaimDetailPage` (a valid, readable TSX identifier)."""
    return "".join(part.capitalize() for part in re.split(r"[_-]", page) if part) + "Page"


def project_files(spec: dict[str, Any]) -> dict[str, str]:
    """Every file of the project: relative path → text."""
    files = {
        p.relative_to(PROJECT).as_posix(): p.read_text()
        for p in sorted(PROJECT.rglob("*"))
        if p.is_file()
    }
    files["src/portal.css"] = CSS.read_text()
    files["package.json"] = (
        json.dumps(
            {
                "name": f"plinth-{spec['tenant']}-{spec['slug']}",
                "private": True,
                "version": f"{spec['version']}.0.0",
                "type": "module",
                "description": f"{spec['name']} (Plinth app, version {spec['version']}) as React",
                "scripts": {"dev": "vite", "build": "tsc && vite build", "preview": "vite preview"},
                "dependencies": DEPENDENCIES,
                "devDependencies": DEV_DEPENDENCIES,
            },
            indent=2,
        )
        + "\n"
    )
    files["src/app.json"] = json.dumps(spec, indent=2, ensure_ascii=False) + "\n"
    index = [
        "// Generated: one component per page of the app.",
        'import type { ComponentType } from "react";',
        'import type { PageProps } from "../runtime";',
    ]
    table = []
    for page in spec["pages"]:
        name = component_name(page)
        files[f"src/pages/{name}.tsx"] = (
            f"// Generated from page {page!r} of {spec['slug']} version {spec['version']}.\n"
            'import { Page, type PageProps } from "../runtime";\n\n'
            f"export default function {name}(props: PageProps) {{\n"
            f"  return <Page name={json.dumps(page)} {{...props}} />;\n}}\n"
        )
        index.append(f'import {name} from "./{name}";')
        table.append(f"  {json.dumps(page)}: {name},")
    files["src/pages/index.ts"] = "\n".join(
        [
            *index,
            "",
            "export const pages: Record<string, ComponentType<PageProps>> = {",
            *table,
            "};",
            "",
        ]
    )
    files["README.md"] = (
        f"# {spec['name']}\n\nThe pages of Plinth app `{spec['tenant']}/{spec['slug']}` "
        f"(version {spec['version']}) as a React + TypeScript project.\n\n"
        "    npm install\n    npm run build     # dist/\n\n"
        "Serve `dist/` on the same site as the Plinth server (e.g. behind the same host, "
        "forwarding `/api/` and `/a/` to Plinth): end users sign in with their Plinth "
        "username and password, and the session's refresh token is an HttpOnly, "
        "SameSite=Strict cookie of that site. `VITE_PLINTH_URL` points the API calls at "
        "another origin of the same site (which must allow yours, with credentials); "
        "`VITE_PLINTH_BASE` is the path prefix the pages live under.\n"
    )
    return files


def write_project(folder: Path, spec: dict[str, Any]) -> list[str]:
    """Write the project into `folder` (its generated sources replaced); the paths written."""
    shutil.rmtree(folder / "src", ignore_errors=True)
    written = []
    for rel, text in project_files(spec).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(rel)
    return written


class React:
    """The target: the project as one zip archive (`plinth app compile` writes it unpacked)."""

    name = "react"
    description = "The app's pages as a React project to build with npm"
    media_type = "application/zip"

    def revision(self) -> str:
        return ""

    def compile(self, version: AppVersion) -> Artifact:
        spec = app_spec(
            version.tenant,
            version.slug,
            version.name,
            version.number,
            version.hash,
            version.definition,
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for rel, text in sorted(project_files(spec).items()):
                # A fixed date: the same version always zips to the same bytes (and ETag).
                info = zipfile.ZipInfo(f"{spec['slug']}/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, text)
        return artifact(buffer.getvalue(), self.media_type)
