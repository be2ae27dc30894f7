"""The `http` capability: only to granted hosts, against a real local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from plinth.server import Platform
from tests.extensions.conftest import install, publish
from tests.helpers import make_tenant


class _AddressService(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        query = parse_qs(urlsplit(self.path).query)
        address = query.get("q", [""])[0]
        body = json.dumps(
            {"address": address.upper().replace("  ", " "), "postcode": "75001"}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def address_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AddressService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_address_normaliser_reaches_only_the_granted_host(
    platform: Platform, client: httpx.AsyncClient, components: dict[str, Path], address_service: str
) -> None:
    await make_tenant(client, "acme")
    await make_tenant(client, "globex")
    await publish(platform, components, "address-normaliser")
    host = address_service.removeprefix("http://")
    await install(platform, "acme", "address-normaliser", http_hosts=[host])
    await install(platform, "globex", "address-normaliser", http_hosts=["example.org"])
    for tenant in ("acme", "globex"):
        r = await client.post(
            f"/api/t/{tenant}/plugins/address-normaliser/actions/configure",
            json={"endpoint": address_service},
        )
        assert r.status_code == 200, r.text

    r = await client.post(
        "/api/t/acme/plugins/address-normaliser/actions/normalise",
        json={"address": "1 rue de rivoli, paris", "country": "FR"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "address": "1 RUE DE RIVOLI, PARIS",
        "postcode": "75001",
        "source": "service",
    }

    # globex granted another host: the same call is refused before any traffic leaves.
    r = await client.post(
        "/api/t/globex/plugins/address-normaliser/actions/normalise",
        json={"address": "1 rue de rivoli"},
    )
    assert r.status_code == 502 and f"HTTP to {host} is not granted" in r.json()["detail"]

    # The tenant admin grants the host: now it works; revoking `http` itself is refused
    # while the installed version still requests it.
    r = await client.put(
        "/api/t/globex/plugins/address-normaliser/grant",
        json={"capabilities": ["log", "http", "kv"], "http_hosts": [host]},
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api/t/globex/plugins/address-normaliser/actions/normalise",
        json={"address": "2 rue de rivoli"},
    )
    assert r.status_code == 200 and r.json()["source"] == "service"
    r = await client.put(
        "/api/t/globex/plugins/address-normaliser/grant",
        json={"capabilities": ["log", "kv"], "http_hosts": []},
    )
    assert r.status_code == 412 and r.json()["errors"][0]["path"] == "grant.capabilities.http"
