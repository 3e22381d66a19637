"""Verification of the JWT an EHR sends with each CDS Hooks call (CDS Hooks 2.0 security, DESIGN §2.1).

Order of the checks, cheapest and key-free first, so that a forged token costs no key work and cannot make
us fetch anything from a URL we were not told to trust:

1. `Authorization: Bearer <jwt>` (scheme case-insensitive).
2. Header: `alg` is ES384 or RS384 (so `none`, HS*, PS*, ES256... fail before any key is looked at, which
   defeats the "HS256 signed with the RSA public key" confusion), `typ` absent or JWT, `kid` present, no
   `crit`/`b64`. Embedded key material (`jwk`, `x5c`, `x5u`) is ignored, never trusted.
3. Unverified `iss` picks the tenant (exact match, one trailing slash tolerated).
4. Key source: the header's `jku` only if it is exactly in that tenant's allowlist; without `jku`, the
   tenant's static JWKS, else its single allowlisted jku.
5. Signature with joserfc, restricted to the header's (already allowed) algorithm and a key whose type fits
   it (EC P-384 for ES384, RSA of at least 2048 bits for RS384).
6. Claims: `aud`, `exp`, `iat`, `nbf`, lifetime, `jti`; then the jti replay check, last, so that only tokens
   with a valid signature can spend a jti.

Remote JWK sets are cached per URL as parsed keys for `jwks_cache_ttl_s`. An unknown `kid` causes one
refetch. Every fetch for a URL, for whatever reason, is at most one per `JWKS_MIN_REFETCH_INTERVAL_S`
(except the very first), so a stream of tokens with random kids cannot turn us into an amplifier against
the EHR's key server. If a refresh fails, the previous keys stay usable for `JWKS_STALE_IF_ERROR_S` past
their TTL, so that a flaky key server does not take every hook down; after that we fail closed.

Failure reasons go into `AuthenticationFailed` for our logs (the client sees a bare 401). They name at
most the issuer, the kid and the jku, never the token or other claim values.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, RSAKey, import_key
from joserfc.jws import JWSRegistry

from cds_hooks.errors import AuthenticationFailed
from cds_hooks.replay import ReplayStore
from cds_hooks.settings import Settings, TenantSettings

log = logging.getLogger(__name__)

ALLOWED_ALGORITHMS: Final = ("ES384", "RS384")
MIN_RSA_BITS: Final = 2048
MAX_JWKS_BYTES: Final = 256 * 1024
JWKS_MIN_REFETCH_INTERVAL_S: Final = 10.0
JWKS_STALE_IF_ERROR_S: Final = 600.0
MAX_AUTHORIZATION_CHARS: Final = 16 * 1024
MAX_JTI_CHARS: Final = 256

# EHR headers carry a jku URL and sometimes an x5t or two; joserfc's 512-byte default is tight for that.
_MAX_HEADER_SEGMENT_BYTES: Final = 2048
# Private JWK members: a key set that publishes them lets anyone sign, so such keys are refused.
_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


def _registry(algorithms: list[str] | None) -> JWSRegistry:
    # strict_check_header=False: RFC 7515 says to ignore unknown header parameters that are not `crit`,
    # and some EHRs add their own; we refuse `crit` ourselves.
    registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
    registry.max_header_length = _MAX_HEADER_SEGMENT_BYTES
    return registry


_PARSE_REGISTRY: Final = _registry(None)
_VERIFY_REGISTRIES: Final = {alg: _registry([alg]) for alg in ALLOWED_ALGORITHMS}

Key = ECKey | RSAKey


@dataclass(frozen=True, slots=True)
class EhrIdentity:
    tenant: str  # TenantSettings.name of the EHR that signed
    issuer: str  # the tenant's configured issuer (canonical spelling, not the claim's)
    subject: str | None
    jti: str
    tenant_claim: str | None  # the spec's optional `tenant` claim: the EHR's own tenant id


@dataclass(slots=True)
class _KeySet:
    """Usable verification keys by kid and algorithm, plus every kid seen, usable or not."""

    keys: dict[str, dict[str, Key]]
    kids: frozenset[str]


@dataclass(slots=True)
class _RemoteJwks:
    keys: _KeySet | None = None
    fetched_at: float = float("-inf")  # last successful fetch
    attempted_at: float | None = None  # last fetch attempt, successful or not
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _JwksFetchError(Exception):
    """Why a JWKS could not be fetched; message is ours and safe to log."""


def _fail(reason: str) -> AuthenticationFailed:
    return AuthenticationFailed(reason)


def _show(value: object, limit: int = 120) -> str:
    """An attacker-supplied value made safe for one log line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


def _slash_variants(value: str) -> tuple[str, ...]:
    """`value` and the spellings that differ from it by one trailing slash."""
    if value.endswith("/"):
        return (value, value[:-1], value + "/")
    return (value, value + "/")


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _parse_jwks(document: object, source: str) -> _KeySet:
    """Import the keys of a JWK set that can verify ES384 or RS384; skip (and log) the rest."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set: expected a JSON object with a 'keys' array")
    keys: dict[str, dict[str, Key]] = {}
    kids: set[str] = set()
    for index, jwk in enumerate(document["keys"]):
        if not isinstance(jwk, Mapping):
            log.warning("JWKS %s: key #%d is not an object; skipped", source, index)
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            log.warning("JWKS %s: key #%d has no kid; skipped", source, index)
            continue
        kids.add(kid)
        why_not = _unusable_reason(jwk)
        if why_not is None:
            key = _import(jwk)
            if isinstance(key, str):
                why_not = key
            else:
                alg = "ES384" if isinstance(key, ECKey) else "RS384"
                keys.setdefault(kid, {}).setdefault(alg, key)
                continue
        log.warning("JWKS %s: key kid=%s %s; skipped", source, _show(kid), why_not)
    return _KeySet(keys=keys, kids=frozenset(kids))


def _unusable_reason(jwk: Mapping[str, Any]) -> str | None:
    kty = jwk.get("kty")
    if kty not in ("EC", "RSA"):
        return f"has kty {_show(kty)}, only EC and RSA are used"
    if _PRIVATE_JWK_MEMBERS & jwk.keys():
        return "publishes private key material"
    use = jwk.get("use")
    if use is not None and use != "sig":
        return f"has use {_show(use)}"
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return "has key_ops without verify"
    expected_alg = "ES384" if kty == "EC" else "RS384"
    declared_alg = jwk.get("alg")
    if declared_alg is not None and declared_alg != expected_alg:
        return f"is declared for alg {_show(declared_alg)}"
    if kty == "EC" and jwk.get("crv") != "P-384":
        return f"has curve {_show(jwk.get('crv'))}, ES384 needs P-384"
    return None


def _import(jwk: Mapping[str, Any]) -> Key | str:
    """The imported key, or why it could not be imported."""
    try:
        with warnings.catch_warnings():
            # joserfc warns on short RSA keys; we refuse them just below instead.
            warnings.simplefilter("ignore", SecurityWarning)
            key = import_key(dict(jwk))
    except (JoseError, ValueError, TypeError) as exc:
        return f"could not be imported ({type(exc).__name__})"
    if isinstance(key, RSAKey):
        bits = key.public_key.key_size
        if bits < MIN_RSA_BITS:
            return f"is a {bits}-bit RSA key, at least {MIN_RSA_BITS} required"
        return key
    if isinstance(key, ECKey):
        return key
    return f"has unsupported key class {type(key).__name__}"


class EhrAuthenticator:
    """Verifies EHR JWTs against the configured tenants. One instance per app; it holds the key caches."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        replay: ReplayStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._http = http
        self._replay = replay
        self._clock = clock
        self._leeway = settings.jwt_leeway_s
        self._tenants_by_issuer: dict[str, TenantSettings] = {}
        self._static_keys: dict[str, _KeySet] = {}
        self._remote: dict[str, _RemoteJwks] = {}
        for tenant in settings.all_tenants():
            if tenant.issuer in self._tenants_by_issuer:
                log.warning(
                    "tenant %r repeats issuer %s; the earlier tenant wins", tenant.name, tenant.issuer
                )
            for spelling in _slash_variants(tenant.issuer):
                self._tenants_by_issuer.setdefault(spelling, tenant)
            if tenant.jwks:
                self._static_keys[tenant.name] = _parse_jwks(tenant.jwks, f"static:{tenant.name}")
                if not self._static_keys[tenant.name].keys:
                    log.warning("tenant %r: its static JWKS has no usable ES384/RS384 key", tenant.name)

    async def authenticate(self, authorization: str | None, audience: str) -> EhrIdentity:
        token = _bearer_token(authorization)
        try:
            compact = jws.extract_compact(token.encode("ascii"), registry=_PARSE_REGISTRY)
            header = compact.headers()
            if not isinstance(header, dict):
                # A JSON string header that merely contains "alg" gets past joserfc's parser.
                raise _fail("malformed token (header is not a JSON object)")
            alg = _checked_header(header)
            kid: str = header["kid"]
            claims = json.loads(compact.payload)
        except (JoseError, ValueError, TypeError, KeyError, RecursionError) as exc:
            # ValueError covers bad base64, bad UTF-8 and bad JSON; RecursionError deeply nested JSON.
            raise _fail(f"malformed token ({type(exc).__name__})") from None
        if not isinstance(claims, dict):
            raise _fail("malformed token (payload is not a JSON object)")

        iss = claims.get("iss")
        tenant = self._tenants_by_issuer.get(iss) if isinstance(iss, str) else None
        if tenant is None:
            raise _fail(f"unknown issuer {_show(iss)} (kid={_show(kid)})")
        where = f"iss={tenant.issuer!r} kid={_show(kid)}"

        key = await self._key_for(tenant, header.get("jku"), kid, alg, where)
        try:
            valid = jws.validate_compact(compact, key, registry=_VERIFY_REGISTRIES[alg])
        except (JoseError, ValueError, TypeError) as exc:
            raise _fail(f"signature not verifiable ({type(exc).__name__}; {where})") from None
        if not valid:
            raise _fail(f"bad signature ({where})")

        identity, exp = self._checked_claims(claims, tenant, audience, where)
        now = self._clock()
        ttl = math.ceil(max(exp - now, 1) + self._leeway)
        if not await self._replay.first_use(f"{tenant.issuer}|{identity.jti}", ttl):
            raise _fail(f"replayed jti ({where})")
        return identity

    def _checked_claims(
        self, claims: dict[str, Any], tenant: TenantSettings, audience: str, where: str
    ) -> tuple[EhrIdentity, float]:
        now = self._clock()
        leeway = self._leeway

        aud = claims.get("aud")
        accepted = _slash_variants(audience)
        if isinstance(aud, str):
            aud_ok = aud in accepted
        elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
            aud_ok = any(a in accepted for a in aud)
        else:
            aud_ok = False
        if not aud_ok:
            raise _fail(f"aud does not name this service ({where})")

        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not _is_number(exp):
            raise _fail(f"exp missing or not a number ({where})")
        if not _is_number(iat):
            raise _fail(f"iat missing or not a number ({where})")
        if nbf is not None and not _is_number(nbf):
            raise _fail(f"nbf not a number ({where})")
        assert isinstance(exp, int | float)
        assert isinstance(iat, int | float)
        if now >= exp + leeway:
            raise _fail(f"token expired ({where})")
        if iat > now + leeway:
            raise _fail(f"token issued in the future ({where})")
        if isinstance(nbf, int | float) and nbf > now + leeway:
            raise _fail(f"token not yet valid (nbf) ({where})")
        if exp < iat:
            raise _fail(f"exp before iat ({where})")
        max_lifetime = self._settings.jwt_max_lifetime_s
        if max_lifetime > 0 and exp - iat > max_lifetime:
            raise _fail(f"token lifetime {int(exp - iat)}s exceeds {max_lifetime}s ({where})")

        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _fail(f"jti missing or not a non-empty string ({where})")
        if len(jti) > MAX_JTI_CHARS:
            raise _fail(f"jti longer than {MAX_JTI_CHARS} characters ({where})")
        sub = claims.get("sub")
        if sub is not None and not isinstance(sub, str):
            raise _fail(f"sub not a string ({where})")
        tenant_claim = claims.get("tenant")
        if tenant_claim is not None and not isinstance(tenant_claim, str):
            raise _fail(f"tenant claim not a string ({where})")

        identity = EhrIdentity(
            tenant=tenant.name, issuer=tenant.issuer, subject=sub, jti=jti, tenant_claim=tenant_claim
        )
        return identity, float(exp)

    async def _key_for(self, tenant: TenantSettings, jku: object, kid: str, alg: str, where: str) -> Key:
        if jku is not None:
            if not isinstance(jku, str) or jku not in tenant.jku_allowlist:
                raise _fail(f"jku {_show(jku)} not allowlisted for the tenant ({where})")
            return await self._remote_key(jku, kid, alg, where)
        static = self._static_keys.get(tenant.name)
        if static is not None:
            return _pick(static, kid, alg, where, "static JWKS")
        if len(tenant.jku_allowlist) == 1:
            return await self._remote_key(tenant.jku_allowlist[0], kid, alg, where)
        raise _fail(f"no jku in header and the tenant has no single key source ({where})")

    async def _remote_key(self, url: str, kid: str, alg: str, where: str) -> Key:
        state = self._remote.get(url)
        if state is None:
            state = self._remote[url] = _RemoteJwks()
        attempted = False
        if state.keys is None or self._clock() - state.fetched_at >= self._settings.jwks_cache_ttl_s:
            attempted = await self._refresh(url, state)
        if state.keys is None:
            raise _fail(f"no keys could be fetched from jku {url!r} ({where})")
        if self._clock() - state.fetched_at >= self._settings.jwks_cache_ttl_s + JWKS_STALE_IF_ERROR_S:
            raise _fail(f"cached keys of jku {url!r} expired and could not be refreshed ({where})")
        if kid not in state.keys.kids and not attempted:
            # The EHR may have rotated keys since we cached its set.
            await self._refresh(url, state)
        return _pick(state.keys, kid, alg, where, f"jku {url!r}")

    async def _refresh(self, url: str, state: _RemoteJwks) -> bool:
        """Fetch `url` into `state` unless a fetch was tried too recently; True if this call tried."""
        async with state.lock:
            now = self._clock()
            # Also covers the coroutines that queued on the lock behind the one that just fetched.
            # A clock that went backwards (now < attempted_at) does not block fetching.
            if state.attempted_at is not None and 0 <= now - state.attempted_at < JWKS_MIN_REFETCH_INTERVAL_S:
                return False
            state.attempted_at = now
            try:
                document = await self._fetch(url)
                keys = _parse_jwks(document, url)
            except (_JwksFetchError, ValueError) as exc:
                log.warning("could not refresh JWKS from %s: %s", url, exc)
                return True
            state.keys = keys
            state.fetched_at = now
            return True

    async def _fetch(self, url: str) -> object:
        try:
            async with self._http.stream(
                "GET",
                url,
                headers={"Accept": "application/jwk-set+json, application/json"},
                timeout=self._settings.fhir_timeout_s,
                # The allowlist names exact URLs; following a redirect would leave it.
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise _JwksFetchError(f"HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > MAX_JWKS_BYTES:
                    raise _JwksFetchError(f"larger than {MAX_JWKS_BYTES} bytes")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise _JwksFetchError(f"larger than {MAX_JWKS_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise _JwksFetchError(type(exc).__name__) from None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise _JwksFetchError("not JSON") from None


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise _fail("no Authorization header")
    if len(authorization) > MAX_AUTHORIZATION_CHARS:
        raise _fail("Authorization header too long")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise _fail("Authorization scheme is not Bearer")
    token = token.strip()
    if not token or not token.isascii() or any(c.isspace() for c in token):
        raise _fail("malformed bearer token")
    return token


def _checked_header(header: dict[str, Any]) -> str:
    """The header's algorithm, once the header is acceptable. Touches no key."""
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise _fail(f"alg {_show(alg)} not allowed, only {'/'.join(ALLOWED_ALGORITHMS)}")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise _fail(f"typ {_show(typ)} is not JWT")
    if "crit" in header or "b64" in header:
        raise _fail("header has crit/b64 parameters, which we do not support")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _fail("kid missing from header")
    assert isinstance(alg, str)
    return alg


def _pick(keys: _KeySet, kid: str, alg: str, where: str, source: str) -> Key:
    by_alg = keys.keys.get(kid)
    if by_alg is None:
        if kid in keys.kids:
            raise _fail(f"key for kid is unusable (see JWKS warnings) in {source} ({where})")
        raise _fail(f"unknown kid in {source} ({where})")
    key = by_alg.get(alg)
    if key is None:
        raise _fail(f"key type of kid does not match alg {alg} in {source} ({where})")
    return key
