"""OpenID Connect login: discovery, authorization code flow, ID token checked against JWKS.

A tenant's provider lives in its settings under `oidc`:
`{"issuer", "client_id", "client_secret", "role_claim": "groups", "role_map": {value: role},
"default_role": null, "attr_claims": {"country": "country"}}`.
The `state` parameter is a short-lived JWT we sign, so no server-side session is needed.

A browser sign-in (the portal) is also bound to the browser that started it, against login
CSRF (an attacker replaying their own callback URL in a victim's browser to sign the victim
into the attacker's account): the portal keeps a random value in an HttpOnly cookie and the
state carries its hash (`bh`); `complete` refuses a state whose hash the presenting browser's
cookie does not match.

The issuer is set by a tenant admin and the provider's metadata chooses the token and JWKS
endpoints, so every outbound call (discovery, token, JWKS) goes through the integration
layer's SSRF guard (`plinth.integration.egress`, no proxies from the environment): an issuer
on a loopback, link-local (cloud metadata) or private address is refused with
`EgressRefused` unless the operator allows that network in `PLINTH_EGRESS_ALLOW`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import jwt
from authlib.oauth2 import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from plinth.db import utcnow
from plinth.errors import BadRequest, Forbidden, PlinthError, Unauthenticated
from plinth.governance.principal import PLATFORM_ADMIN
from plinth.integration.egress import EgressPolicy, GuardedTransport
from plinth.integration.models import EgressRefused

STATE_TTL = timedelta(minutes=10)
HTTP_SECONDS = 10


def new_browser_binding() -> str:
    """A random value for a browser's sign-in cookie (its hash goes into `state`)."""
    return secrets.token_urlsafe(32)


def _binding_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class OIDCConfig:
    issuer: str
    client_id: str
    client_secret: str
    role_claim: str = "groups"
    role_map: dict[str, str] | None = None
    default_role: str | None = None
    attr_claims: dict[str, str] | None = None
    scope: str = "openid email profile"

    @classmethod
    def of(cls, settings: dict[str, Any]) -> OIDCConfig:
        raw = settings.get("oidc")
        if not isinstance(raw, dict) or not raw.get("issuer"):
            raise BadRequest(
                "This tenant has no OpenID Connect provider configured", path="settings.oidc"
            )
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


def map_claims(config: OIDCConfig, claims: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Roles and user attributes from ID token claims (per the tenant's mapping)."""
    raw = claims.get(config.role_claim) or []
    values = [raw] if isinstance(raw, str) else list(raw)
    mapping = config.role_map or {}
    roles = sorted({mapping[v] for v in values if v in mapping})
    if not roles and config.default_role:
        roles = [config.default_role]
    # A tenant's provider never grants platform powers, whatever the mapping says.
    roles = [role for role in roles if role != PLATFORM_ADMIN]
    attrs = {
        attr: claims[claim] for attr, claim in (config.attr_claims or {}).items() if claim in claims
    }
    return roles, attrs


class OIDCLogin:
    """The client side of the code flow, for any standard provider."""

    def __init__(self, key: str, egress: EgressPolicy | None = None) -> None:
        self._key = key
        self.egress = egress if egress is not None else EgressPolicy()
        self._discovery: dict[str, dict[str, Any]] = {}

    def _http(self) -> dict[str, Any]:
        """httpx client options for every call to a provider: guarded, no env proxies."""
        return {
            "transport": GuardedTransport(self.egress),
            "trust_env": False,
            "timeout": HTTP_SECONDS,
            "follow_redirects": False,
        }

    async def discover(self, issuer: str) -> dict[str, Any]:
        """The provider's metadata (cached per issuer)."""
        if issuer not in self._discovery:
            url = issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(**self._http()) as http:
                    r = await http.get(url)
                meta = r.json() if r.status_code == 200 else None
            except EgressRefused as exc:
                raise EgressRefused(
                    f"The OpenID issuer is refused: {exc.detail}",
                    path="settings.oidc.issuer",
                    faults=exc.faults,
                    extra=exc.extra,
                ) from None
            except (httpx.HTTPError, ValueError) as exc:
                raise BadRequest(
                    f"OpenID discovery failed at {url} ({type(exc).__name__})",
                    path="settings.oidc.issuer",
                ) from None
            if not isinstance(meta, dict):
                raise BadRequest(
                    f"OpenID discovery failed at {url} ({r.status_code})",
                    path="settings.oidc.issuer",
                )
            self._discovery[issuer] = meta
        return self._discovery[issuer]

    async def authorization_url(
        self, tenant_id: str, config: OIDCConfig, redirect_uri: str, *, browser: str | None = None
    ) -> str:
        """Where to send the browser; state carries tenant, nonce and redirect URI, and the
        hash of `browser` (the value of the starting browser's binding cookie) if given."""
        meta = await self.discover(config.issuer)
        nonce = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "tid": tenant_id,
            "nonce": nonce,
            "ru": redirect_uri,
            "exp": utcnow() + STATE_TTL,
            "aud": "plinth-oidc-state",
        }
        if browser is not None:
            claims["bh"] = _binding_hash(browser)
        state = jwt.encode(claims, self._key, algorithm="HS256")
        return str(
            prepare_grant_uri(
                meta["authorization_endpoint"],
                config.client_id,
                "code",
                redirect_uri=redirect_uri,
                scope=config.scope,
                state=state,
                nonce=nonce,
            )
        )

    async def complete(
        self,
        tenant_id: str,
        config: OIDCConfig,
        code: str,
        state: str,
        *,
        browser: str | None = None,
    ) -> dict[str, Any]:
        """Exchange the code, verify the ID token (JWKS, iss, aud, exp, nonce); its claims.

        `browser` is the binding cookie of the browser presenting the callback ("" when it
        has none), or None for a non-browser flow: a state bound to a browser, or a browser
        callback, must match, else `Unauthenticated` before the code is ever used."""
        try:
            st = jwt.decode(state, self._key, algorithms=["HS256"], audience="plinth-oidc-state")
        except jwt.InvalidTokenError:
            raise Unauthenticated("The login state is invalid or expired") from None
        if st["tid"] != tenant_id:
            raise Forbidden("This login was started for another tenant", path="state")
        bound = browser is not None or "bh" in st
        if bound and not (
            browser and hmac.compare_digest(str(st.get("bh", "")), _binding_hash(browser))
        ):
            raise Unauthenticated(
                "This sign-in was not started in this browser (or its sign-in cookie "
                "expired). Start the sign-in again from the sign-in page",
                path="state",
                extra={"reason": "browser_mismatch"},
            )
        meta = await self.discover(config.issuer)
        # authlib prepares the request (RFC 6749 4.1.3, client_secret_basic); our guarded
        # client sends it: authlib's own HTTP clients would bypass the SSRF guard.
        body = prepare_token_request("authorization_code", code=code, redirect_uri=st["ru"])
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        url, headers, body = ClientAuth(config.client_id, config.client_secret).prepare(
            "POST", meta["token_endpoint"], headers, body
        )
        async with httpx.AsyncClient(**self._http()) as http:
            try:
                r = await http.post(url, content=body, headers=headers)
                token = r.json()
            except PlinthError:  # EgressRefused: the guard's answer, not the provider's
                raise
            except (httpx.HTTPError, ValueError) as exc:
                raise Unauthenticated(
                    f"The provider's token endpoint failed ({type(exc).__name__})"
                ) from None
            if r.status_code != 200 or not isinstance(token, dict) or "error" in token:
                said = token if isinstance(token, dict) else {}
                reason = said.get("error_description") or said.get("error") or r.status_code
                raise Unauthenticated(f"The provider refused the code: {reason}")
            try:
                jwks = (await http.get(meta["jwks_uri"])).json()
            except PlinthError:
                raise
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise Unauthenticated(
                    f"The provider's signing keys could not be read ({type(exc).__name__})"
                ) from None
        try:
            decoded = jose_jwt.decode(token["id_token"], KeySet.import_key_set(jwks))
            claims = decoded.claims
            jose_jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": meta.get("issuer", config.issuer)},
                aud={"essential": True, "value": config.client_id},
                nonce={"essential": True, "value": st["nonce"]},
                exp={"essential": True},
            ).validate(claims)
        except (JoseError, KeyError, ValueError) as exc:
            raise Unauthenticated(f"The ID token did not verify: {exc}") from None
        return dict(claims)
