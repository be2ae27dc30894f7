"""The SSRF guard in front of every outbound call (http connectors, OpenAPI fetches, OAuth2
token endpoints, webhook deliveries, plugins' `http` capability).

A host name is resolved first and every address it resolves to must be public: loopback,
link-local (169.254.0.0/16, where cloud metadata services live), private, shared, reserved,
multicast and their IPv6 equivalents (incl. IPv4-mapped, 6to4 and NAT64 addresses embedding
one) are refused with `EgressRefused`. The check happens inside the connection layer (an
httpcore network backend): opening a TCP connection resolves the name, checks every address
and connects to the checked one, so a DNS answer that changes between check and connect (DNS
rebinding) cannot redirect the call. The request URL keeps its host name, so the connection
pool is keyed by name (a connection verified for one name is never reused for another name
that happens to resolve to the same address), and `Host`, TLS SNI and certificate
verification all use the name. Operators who do need to reach an internal network list it in
`PLINTH_EGRESS_ALLOW` (CIDRs).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from plinth.errors import Fault
from plinth.integration.models import ConnectorFailed, EgressRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT: not public either
DEFAULT_PORTS = {"http": 80, "https": 443}


def blocked_reason(ip: IPAddress) -> str | None:
    """Why an outbound call may not reach `ip`, or None if it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = (
            ip.ipv4_mapped
            or ip.sixtofour
            or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None)
        )
        if embedded is not None:
            inner = blocked_reason(embedded)
            if inner:
                return inner
            if ip.ipv4_mapped:
                return None
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in SHARED):
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def parse_allow(
    text: str | Iterable[str] | None,
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The CIDR list of `PLINTH_EGRESS_ALLOW` ("127.0.0.0/8,::1/128"), validated."""
    items = text.split(",") if isinstance(text, str) else list(text or [])
    found = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            found.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"PLINTH_EGRESS_ALLOW: {item!r} is not a CIDR") from exc
    return found


class EgressPolicy:
    """Decides which addresses outbound calls may reach; resolves and checks host names."""

    def __init__(self, allow: str | Iterable[str] | None = None) -> None:
        self.allow = parse_allow(allow)

    def reason(self, ip: IPAddress) -> str | None:
        """Why `ip` is refused (None: allowed), after the operator's allow list."""
        if any(ip.version == net.version and ip in net for net in self.allow):
            return None
        return blocked_reason(ip)

    async def resolve(self, host: str, port: int, seconds: float | None = None) -> str:
        """The address to connect to for `host`: every address it resolves to must pass."""
        host = host.strip("[]")
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await _lookup(host, port, seconds)
        for ip in addresses:
            why = self.reason(ip)
            if why is not None:
                shown = host if str(ip) == host else f"{host} ({ip})"
                raise EgressRefused(
                    f"Outbound calls may not reach {shown}: it is a {why} address. An "
                    f"operator can allow a network with PLINTH_EGRESS_ALLOW",
                    path="url",
                    faults=[Fault("url", f"{why} address", "egress_refused")],
                    extra={"host": host, "reason": why},
                )
        return str(addresses[0])


async def _lookup(host: str, port: int, seconds: float | None) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), seconds
        )
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"Resolving {host} timed out") from exc
    except OSError as exc:
        raise httpcore.ConnectError(f"Cannot resolve {host}") from exc
    found: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise httpcore.ConnectError(f"{host} resolves to no address")
    return found


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """The network backend of the guarded pool: every TCP connection goes to a checked address.

    httpcore calls `connect_tcp` with the URL's host name when (and only when) it opens a new
    connection for an origin; TLS is started afterwards on the returned stream with the name
    as server name, so certificates are verified against the name."""

    def __init__(
        self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore API)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        ip = await self.policy.resolve(host, port, timeout)
        return await self.inner.connect_tcp(
            ip, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("Outbound calls may not use a Unix socket", path="url")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (no proxies from the environment) whose connection pool opens
    connections only through `GuardedBackend`."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        verify: bool | Any = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
    ) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        self.policy = policy
        self.backend = GuardedBackend(policy)
        # The same pool httpx builds, with our backend: httpx has no parameter for it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in DEFAULT_PORTS:
            raise EgressRefused(
                f"Outbound calls use http or https, not {request.url.scheme!r}", path="url"
            )
        return await super().handle_async_request(request)


async def read_capped(response: httpx.Response, limit: int, too_large: str) -> bytes:
    """A streamed response's body, refused (ConnectorFailed: `too_large`) as soon as it grows
    past `limit` bytes, so an endless or huge answer is never held in memory whole."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ConnectorFailed(too_large)
        chunks.append(chunk)
    return b"".join(chunks)
