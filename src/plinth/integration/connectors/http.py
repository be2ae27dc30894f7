"""The `http` connector kind: a REST service by base URL and auth (API key, bearer, basic,
OAuth2 client credentials). Calls have a timeout, retries with exponential backoff for
idempotent methods, a circuit breaker per connector and a response size limit; inputs and
outputs are validated against each operation's schemas."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote

import httpx

from plinth.errors import Fault, NotFound, ValidationFailed
from plinth.integration import tokens
from plinth.integration.connectors.registry import CallContext, load_schema, register
from plinth.integration.egress import read_capped
from plinth.integration.models import ConnectorFailed, ConnectorTimeout
from plinth.jsonschema import Validator, compile_schema, faults
from plinth.queue import backoff as jittered

IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
RETRY_STATUS = {429, 502, 503, 504}
MAX_RETRY_AFTER = 10.0


class _QueryRedaction(logging.Filter):
    """httpx logs request URLs; a query string may carry an API key, so it is cut off."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(_strip_query(a) for a in record.args)
        return True


def _strip_query(value: Any) -> Any:
    text = str(value) if isinstance(value, httpx.URL) else value
    if isinstance(text, str) and "?" in text and "://" in text:
        return text.split("?", 1)[0] + "?[redacted]"
    return value


logging.getLogger("httpx").addFilter(_QueryRedaction())


class HttpKind:
    name = "http"
    description = "A REST service: base URL, auth, operations (importable from OpenAPI)"
    schema = load_schema("http")
    validator: Validator = None

    def __init__(self) -> None:
        self._validators: dict[str, Validator] = {}

    def operations(self, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            name: {"method": op["method"], "path": op["path"], "summary": op.get("summary", "")}
            for name, op in doc.get("operations", {}).items()
        }

    def check(self, name: str, doc: dict[str, Any]) -> list[Fault]:
        found = []
        auth = doc.get("auth") or {"type": "none"}
        need = {
            "api_key": ["name", "value"],
            "bearer": ["token"],
            "basic": ["username", "password"],
            "oauth2_client_credentials": ["token_url", "client_id", "client_secret"],
        }
        for key in need.get(auth["type"], []):
            if key not in auth:
                found.append(Fault(f"auth.{key}", f"{auth['type']} auth needs {key}", "required"))
        for op_name, op in doc.get("operations", {}).items():
            for key in ("input_schema", "output_schema"):
                if key in op:
                    try:
                        compile_schema(op[key])
                    except Exception as exc:  # jsonschema_rs raises ValueError subclasses
                        found.append(
                            Fault(f"operations.{op_name}.{key}", f"not a valid JSON Schema: {exc}")
                        )
        return found

    def _validator(self, schema: dict[str, Any]) -> Validator:
        # Compiled once per distinct schema: the hot path only looks it up.
        key = json.dumps(schema, sort_keys=True)
        found = self._validators.get(key)
        if found is None:
            if len(self._validators) > 5000:
                self._validators.clear()
            found = self._validators[key] = compile_schema(schema)
        return found

    async def call(
        self, ctx: CallContext, doc: dict[str, Any], operation: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        op = doc.get("operations", {}).get(operation)
        if op is None:
            raise NotFound(
                f"Connector {ctx.name!r} has no operation {operation!r}", path="operation"
            )
        if "input_schema" in op:
            found = faults(self._validator(op["input_schema"]), data, "input")
            if found:
                raise ValidationFailed.of(found, "connector input")
        request = await self._request(ctx, doc, op, data)
        method = op["method"]
        retries = doc.get("retries", 2) if method in IDEMPOTENT or op.get("idempotent") else 0
        backoff = float(doc.get("backoff_seconds", 0.2))
        timeout = float(doc.get("timeout_seconds", 10))
        limit = int(doc.get("max_response_bytes", 1_048_576))
        what = f"Connector {ctx.name!r}"
        breaker = ctx.service.breaker(ctx.key, doc.get("breaker", {}))
        await breaker.before(what)
        status, headers, body = 0, httpx.Headers(), b""
        refreshed = False
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                status, headers, body = await self._send(ctx, request, timeout, limit)
            except httpx.TimeoutException as exc:
                failure: Exception = ConnectorTimeout(
                    f"{what} did not answer {operation} within {timeout:g} s"
                )
                failure.__cause__ = exc
            except httpx.TransportError as exc:
                failure = ConnectorFailed(
                    f"{what} could not reach its service: {type(exc).__name__}"
                )
            else:
                failure = None  # type: ignore[assignment]
                if (
                    status == 401
                    and not refreshed
                    and (doc.get("auth") or {}).get("type") == "oauth2_client_credentials"
                ):
                    # The cached access token may have been revoked early: fetch one more.
                    refreshed = True
                    await ctx.service.oauth_tokens.drop(_token_key(ctx, doc))
                    request = await self._request(ctx, doc, op, data)
                    continue
                if status not in RETRY_STATUS and status < 500:
                    break
                retry_after = _retry_after(headers)
            if attempt >= retries:
                break
            attempt += 1
            delay = (
                retry_after
                if retry_after is not None
                else jittered(attempt, backoff, MAX_RETRY_AFTER)
            )
            await asyncio.sleep(min(delay, MAX_RETRY_AFTER))
        if failure is not None:
            await breaker.failed()
            raise failure
        if status >= 500:
            await breaker.failed()
        else:
            await breaker.succeeded()
        return self._result(ctx, op, operation, status, headers, body)

    async def _request(
        self, ctx: CallContext, doc: dict[str, Any], op: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        path = op["path"]
        query: dict[str, Any] = {}
        headers = dict(doc.get("headers", {}))
        if ctx.idempotency_key:
            headers["Idempotency-Key"] = ctx.idempotency_key
        for param in op.get("params", []):
            pname, where = param["name"], param["in"]
            if pname not in data:
                continue
            value = data[pname]
            if where == "path":
                path = path.replace("{" + pname + "}", quote(str(value), safe=""))
            elif where == "query":
                query[pname] = value if not isinstance(value, bool) else str(value).lower()
            else:
                headers[pname] = str(value)
        auth = doc.get("auth") or {"type": "none"}
        kind = auth["type"]
        basic: tuple[str, str] | None = None
        if kind == "api_key":
            value = await ctx.reveal(auth["value"])
            if auth.get("in") == "query":
                query[auth["name"]] = value
            else:
                headers[auth["name"]] = value
        elif kind == "bearer":
            headers["Authorization"] = f"Bearer {await ctx.reveal(auth['token'])}"
        elif kind == "basic":
            basic = (auth["username"], await ctx.reveal(auth["password"]))
        elif kind == "oauth2_client_credentials":
            headers["Authorization"] = f"Bearer {await self._oauth_token(ctx, doc, auth)}"
        request: dict[str, Any] = {
            "method": op["method"],
            "url": ctx.service.resolve(doc["base_url"].rstrip("/") + path),
            "params": query,
            "headers": headers,
        }
        if basic is not None:
            request["auth"] = basic
        if op.get("body") and "body" in data:
            request["json"] = data["body"]
        return request

    async def _oauth_token(
        self, ctx: CallContext, doc: dict[str, Any], auth: dict[str, Any]
    ) -> str:
        key = _token_key(ctx, doc)
        cached = await ctx.service.oauth_tokens.get(key)
        if cached:
            ctx.secrets_seen.append(cached)
            return cached
        secret = await ctx.reveal(auth["client_secret"])
        form = {"grant_type": "client_credentials"}
        if auth.get("scope"):
            form["scope"] = auth["scope"]
        kwargs: dict[str, Any] = {}
        if auth.get("client_auth") == "body":
            form |= {"client_id": auth["client_id"], "client_secret": secret}
        else:
            kwargs["auth"] = (auth["client_id"], secret)
        timeout = float(doc.get("timeout_seconds", 10))
        try:
            response = await ctx.service.http.post(
                auth["token_url"], data=form, timeout=timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise ConnectorFailed(
                f"Connector {ctx.name!r} could not reach its token endpoint: {type(exc).__name__}"
            ) from exc
        try:
            body = response.json()
            token = body["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConnectorFailed(
                f"Connector {ctx.name!r}: the token endpoint answered "
                f"{response.status_code} without an access token",
                extra={"upstream_status": response.status_code},
            ) from exc
        token = str(token)
        ctx.secrets_seen.append(token)
        await ctx.service.oauth_tokens.put(key, token, tokens.lifetime(body.get("expires_in")))
        return token

    async def _send(
        self, ctx: CallContext, request: dict[str, Any], seconds: float, limit: int
    ) -> tuple[int, httpx.Headers, bytes]:
        client = ctx.service.http
        async with client.stream(**request, timeout=seconds) as response:
            length = response.headers.get("content-length")
            if length and length.isdigit() and int(length) > limit:
                raise ConnectorFailed(
                    f"Connector {ctx.name!r} answered more than the {limit} bytes allowed"
                )
            body = await read_capped(
                response,
                limit,
                f"Connector {ctx.name!r} answered more than the {limit} bytes allowed",
            )
            return response.status_code, response.headers, body

    def _result(
        self,
        ctx: CallContext,
        op: dict[str, Any],
        operation: str,
        status: int,
        headers: httpx.Headers,
        raw: bytes,
    ) -> dict[str, Any]:
        body: Any = None
        if raw:
            if "json" in headers.get("content-type", ""):
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise ConnectorFailed(f"Connector {ctx.name!r} answered invalid JSON") from exc
            else:
                body = raw.decode("utf-8", "replace")
        if status >= 400:
            raise ConnectorFailed(
                f"Connector {ctx.name!r} answered {status} to {operation}",
                extra={"upstream_status": status},
            )
        if "output_schema" in op and status < 300:
            found = faults(self._validator(op["output_schema"]), body, "output")
            if found:
                raise ConnectorFailed(
                    f"Connector {ctx.name!r} answered {operation} with an unexpected body; "
                    f"first at {found[0].path}: {found[0].message}",
                    faults=found,
                )
        return {"status": status, "body": body}


def _token_key(ctx: CallContext, doc: dict[str, Any]) -> str:
    auth = doc.get("auth") or {}
    return tokens.cache_key(
        ctx.key, auth.get("token_url", ""), auth.get("client_id", ""), auth.get("scope")
    )


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


KIND = register(HttpKind())
