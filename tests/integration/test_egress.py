"""The SSRF guard on every outbound call: loopback, link-local (cloud metadata), private and
their IPv6 forms are refused after DNS resolution, unless an operator allows a network; the
connection goes to the address that was checked (pinned) while the URL, Host header, pool key,
SNI and certificate check keep the name."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plinth.integration.egress import EgressPolicy, GuardedTransport, blocked_reason
from plinth.integration.models import EgressRefused
from plinth.server import Platform
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.integration.helpers import published
from tests.integration.remote import CLIENT_ID, Remote

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # No PLINTH_EGRESS_ALLOW: what a production server does by default.
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        egress_allow="",
    )


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.0.0.7", "private"),
        ("172.20.1.1", "private"),
        ("192.168.0.1", "private"),
        ("100.64.1.1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private"),
        ("2002:c0a8:1::", "private"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_which_addresses_are_refused(address: str, reason: str | None, database_url: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


async def test_the_transport_checks_after_resolving_and_pins_the_address(
    remote: Remote, database_url: str
) -> None:
    port = remote.url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(transport=GuardedTransport(EgressPolicy(""))) as client:
        # A name that resolves to loopback is refused before any connection is made.
        with pytest.raises(EgressRefused, match=r"localhost \(.*\): it is a loopback"):
            await client.post(f"http://localhost:{port}/hook", content=b"{}")
        with pytest.raises(EgressRefused, match="link-local"):
            await client.get("http://169.254.169.254/latest/meta-data/")
        with pytest.raises(EgressRefused, match="loopback"):
            await client.get(f"http://[::ffff:127.0.0.1]:{port}/pets")
    assert remote.hooks == [] and remote.calls == {}
    allowed = GuardedTransport(EgressPolicy("127.0.0.0/8, ::1/128"))
    async with httpx.AsyncClient(transport=allowed) as client:
        r = await client.post(f"http://localhost:{port}/hook", content=b"{}")
        assert r.status_code == 200
        # The URL keeps the name (the pool's key); the connection went to the checked address.
        assert r.request.url.host == "localhost"
        assert _stream(r).get_extra_info("server_addr")[0] == "127.0.0.1"
        assert remote.hooks[0]["headers"]["Host"] == f"localhost:{port}"
        # Another name for the same address:port gets its own connection, never the pooled
        # one opened (and, with TLS, verified) for "localhost".
        again = await client.get(f"http://localhost:{port}/pets")
        other = await client.get(f"http://127.0.0.1:{port}/pets")
        local_port = _stream(r).get_extra_info("client_addr")[1]
        assert _stream(again).get_extra_info("client_addr")[1] == local_port  # pooled
        assert _stream(other).get_extra_info("client_addr")[1] != local_port


def _stream(response: httpx.Response) -> Any:
    return response.extensions["network_stream"]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An HTTPS server on 127.0.0.1 whose certificate names only "localhost"."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            body = self.headers.get("Host", "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server.socket = served.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    trusted = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    try:
        yield server.server_address[1], trusted
    finally:
        server.shutdown()
        server.server_close()


async def test_tls_is_verified_against_the_name_and_never_shared_across_names(
    tls_server: tuple[int, ssl.SSLContext], database_url: str
) -> None:
    port, trusted = tls_server
    guarded = GuardedTransport(EgressPolicy("127.0.0.0/8"), verify=trusted)
    async with httpx.AsyncClient(transport=guarded) as client:
        r = await client.get(f"https://localhost:{port}/")
        assert r.status_code == 200 and r.text == f"localhost:{port}"
        assert _stream(r).get_extra_info("server_addr")[0] == "127.0.0.1"
        # Same address and port, another name: the connection verified for "localhost" is
        # not reused; a new handshake checks the certificate against this name, and fails.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED|match"):
            await client.get(f"https://127.0.0.1:{port}/")
    async with httpx.AsyncClient(
        transport=GuardedTransport(EgressPolicy(""), verify=trusted)
    ) as client:
        with pytest.raises(EgressRefused, match="loopback"):
            await client.get(f"https://localhost:{port}/")


async def test_connectors_webhooks_openapi_and_oauth_are_guarded(
    client: httpx.AsyncClient, remote: Remote, platform: Platform
) -> None:
    ops = {"pets": {"method": "GET", "path": "/pets"}}
    connectors = {
        "local": {"kind": "http", "base_url": remote.url, "operations": ops},
        "metadata": {"kind": "http", "base_url": "http://169.254.169.254", "operations": ops},
        "oauth": {
            "kind": "http",
            "base_url": "https://93.184.215.14",
            "operations": ops,
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": f"{remote.url}/token",
                "client_id": CLIENT_ID,
                "client_secret": {"secret": "s"},
            },
        },
        "hook": {
            "kind": "webhook_out",
            "url": f"{remote.url}/hook",
            "secret": {"secret": "s"},
            "backoff_seconds": 0,
        },
    }
    await published(client, "acme", "crm", {"connectors": connectors}, secrets={"s": "x" * 20})
    base = "/api/t/acme/apps/crm/connectors"
    for name, reason in (("local", "loopback"), ("metadata", "link-local"), ("oauth", "loopback")):
        r = await client.post(f"{base}/{name}/call", json={"operation": "pets"})
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "egress_refused" and r.json()["reason"] == reason
    r = await client.post(f"{base}/pets/openapi", json={"url": f"{remote.url}/openapi.json"})
    assert r.status_code == 403 and r.json()["code"] == "egress_refused"
    # A delivery to a refused address is dead at once: retrying cannot make it allowed.
    r = await client.post(
        f"{base}/hook/call", json={"operation": "send", "input": {"topic": "record.created"}}
    )
    await platform.connectors.webhooks.drain()
    [logged] = (await client.get(f"{base}/hook/deliveries")).json()["items"]
    assert logged["status"] == "dead" and logged["attempts"] == 1
    assert "loopback" in logged["last_error"]
    assert remote.calls == {} and remote.hooks == []  # nothing ever reached the service
