"""EHR JWT verification (cds_hooks.auth) and the in-memory jti replay store it relies on."""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey

from cds_hooks.auth import JWKS_MIN_REFETCH_INTERVAL_S, JWKS_STALE_IF_ERROR_S, EhrAuthenticator, EhrIdentity
from cds_hooks.errors import AuthenticationFailed
from cds_hooks.replay import MemoryReplayStore
from cds_hooks.settings import SANDBOX_ISSUER, SANDBOX_JKU, Settings, TenantSettings
from tests.support.jwt_factory import (
    OMIT,
    JwksServer,
    SigningKey,
    b64url,
    b64url_json,
    claims,
    es384_key,
    jwks,
    load_spec_example,
    mint,
    mint_alg_none,
    mint_hmac_with_public_key,
    rs384_key,
    tamper_claims,
)

pytestmark = pytest.mark.unit

NOW = 1_700_000_000.0
ISS = "https://ehr.example.org/issuer"
JKU = "https://ehr.example.org/.well-known/jwks.json"
OTHER_JKU = "https://ehr.example.org/keys/second.json"
AUD = "https://cds.example.test/cds-services/r1-review"
LEEWAY = 30


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def es() -> SigningKey:
    return es384_key("es-1")


@pytest.fixture(scope="module")
def rs() -> SigningKey:
    return rs384_key("rs-1")


def make_settings(*tenants: TenantSettings, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "tenants": tenants or (TenantSettings(name="ehr", issuer=ISS, jku_allowlist=(JKU,)),),
        "jwt_leeway_s": LEEWAY,
        "jwt_max_lifetime_s": 3600,
        "jwks_cache_ttl_s": 3600,
    }
    base.update(overrides)
    return Settings(**base)


@dataclass
class Env:
    es: SigningKey
    rs: SigningKey
    server: JwksServer
    clock: FakeClock
    replay: MemoryReplayStore
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    auth: EhrAuthenticator = field(init=False)

    def __post_init__(self) -> None:
        self.auth = self.authenticator(make_settings())

    def authenticator(self, settings: Settings) -> EhrAuthenticator:
        client = self.server.client()
        self.clients.append(client)
        return EhrAuthenticator(settings, client, self.replay, clock=self.clock)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return claims(ISS, AUD, now=self.clock.now, **overrides)

    def token(self, key: SigningKey | None = None, *, jku: str | None = JKU, **claim_overrides: Any) -> str:
        return mint(key or self.es, self.claims(**claim_overrides), jku=jku)

    async def verify(self, token: str, audience: str = AUD) -> EhrIdentity:
        return await self.auth.authenticate(f"Bearer {token}", audience)

    async def refused(self, token: str, audience: str = AUD) -> str:
        with pytest.raises(AuthenticationFailed) as caught:
            await self.verify(token, audience)
        return caught.value.diagnostics


@pytest.fixture
async def env(es: SigningKey, rs: SigningKey) -> AsyncIterator[Env]:
    environment = Env(
        es=es,
        rs=rs,
        server=JwksServer({JKU: jwks(es, rs)}),
        clock=FakeClock(NOW),
        replay=MemoryReplayStore(clock=lambda: 0.0),
    )
    yield environment
    for client in environment.clients:
        await client.aclose()


# ---------------------------------------------------------------------------------------------------------
# Accepted tokens
# ---------------------------------------------------------------------------------------------------------


async def test_valid_es384_token_gives_the_identity(env: Env) -> None:
    token = mint(env.es, env.claims(sub="ehr-client-7", tenant="t-1", jti="jti-es"), jku=JKU)
    identity = await env.verify(token)
    assert identity == EhrIdentity(
        tenant="ehr", issuer=ISS, subject="ehr-client-7", jti="jti-es", tenant_claim="t-1"
    )
    assert env.server.count(JKU) == 1


async def test_valid_rs384_token_gives_the_identity(env: Env) -> None:
    identity = await env.verify(env.token(env.rs, jti="jti-rs"))
    assert identity == EhrIdentity(tenant="ehr", issuer=ISS, subject=None, jti="jti-rs", tenant_claim=None)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_bearer_scheme_is_case_insensitive(env: Env, scheme: str) -> None:
    await env.auth.authenticate(f"{scheme} {env.token()}", AUD)


async def test_without_jku_the_single_allowlisted_jku_is_used(env: Env) -> None:
    await env.verify(env.token(jku=None))
    assert env.server.requests == [JKU]


async def test_without_jku_a_static_jwks_is_used_and_nothing_is_fetched(env: Env) -> None:
    tenant = TenantSettings(name="static-ehr", issuer=ISS, jwks=jwks(env.es))
    env.auth = env.authenticator(make_settings(tenant))
    identity = await env.verify(env.token(jku=None))
    assert identity.tenant == "static-ehr"
    assert env.server.requests == []


async def test_with_two_allowlisted_jkus_the_header_must_name_one(env: Env) -> None:
    tenant = TenantSettings(name="ehr", issuer=ISS, jku_allowlist=(JKU, OTHER_JKU))
    env.server.documents[OTHER_JKU] = jwks(env.rs)
    env.auth = env.authenticator(make_settings(tenant))
    await env.verify(env.token(env.rs, jku=OTHER_JKU))
    reason = await env.refused(env.token(env.rs, jku=None))
    assert "no single key source" in reason
    assert env.server.requests == [OTHER_JKU]


async def test_typ_jwt_in_any_case_or_absent_is_accepted(env: Env) -> None:
    await env.verify(mint(env.es, env.claims(), jku=JKU, typ="jwt"))
    await env.verify(mint(env.es, env.claims(), jku=JKU, typ=OMIT))


async def test_unknown_non_critical_header_parameters_are_ignored(env: Env) -> None:
    await env.verify(mint(env.es, env.claims(), jku=JKU, x_vendor="epic"))


@pytest.mark.parametrize("issuer_in_token", [ISS + "/", ISS])
async def test_issuer_tolerates_one_trailing_slash(env: Env, issuer_in_token: str) -> None:
    identity = await env.verify(env.token(iss=issuer_in_token))
    assert identity.issuer == ISS  # the configured spelling, so both spellings share one replay namespace


@pytest.mark.parametrize(
    "aud",
    [AUD, AUD + "/", ["https://other.example/x", AUD], [AUD + "/"]],
    ids=["str", "slash", "list", "list/"],
)
async def test_audience_forms_that_name_the_service(env: Env, aud: str | list[str]) -> None:
    await env.verify(env.token(aud=aud))


async def test_times_within_leeway_are_accepted(env: Env) -> None:
    now = int(NOW)
    await env.verify(env.token(exp=now - LEEWAY + 1, iat=now - 300))
    await env.verify(env.token(iat=now + LEEWAY, nbf=now + LEEWAY))


# ---------------------------------------------------------------------------------------------------------
# The Authorization header and malformed tokens
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   "])
async def test_missing_authorization_is_refused(env: Env, header: str | None) -> None:
    with pytest.raises(AuthenticationFailed):
        await env.auth.authenticate(header, AUD)


@pytest.mark.parametrize("scheme", ["Basic", "Token", "Bearer:", "JWT"])
async def test_non_bearer_scheme_is_refused(env: Env, scheme: str) -> None:
    with pytest.raises(AuthenticationFailed, match="not Bearer"):
        await env.auth.authenticate(f"{scheme} {env.token()}", AUD)


async def test_bare_token_without_scheme_is_refused(env: Env) -> None:
    with pytest.raises(AuthenticationFailed):
        await env.auth.authenticate(env.token(), AUD)


async def test_bearer_with_two_tokens_is_refused(env: Env) -> None:
    with pytest.raises(AuthenticationFailed):
        await env.auth.authenticate(f"Bearer {env.token()} {env.token()}", AUD)


GOOD_HEADER = b64url_json({"alg": "ES384", "typ": "JWT", "kid": "es-1"})
GOOD_PAYLOAD = b64url_json({"iss": ISS, "aud": AUD})

GARBAGE = {
    "word": "garbage",
    "two-segments": f"{GOOD_HEADER}.{GOOD_PAYLOAD}",
    "four-segments": f"{GOOD_HEADER}.{GOOD_PAYLOAD}.c2ln.c2ln",
    "empty-segments": "..",
    "bad-base64-header": f"!!!.{GOOD_PAYLOAD}.c2ln",
    "bad-base64-payload": f"{GOOD_HEADER}.%%%.c2ln",
    "header-not-json": f"{b64url(b'not json')}.{GOOD_PAYLOAD}.c2ln",
    "header-not-object": f"{b64url_json(['ES384'])}.{GOOD_PAYLOAD}.c2ln",
    "header-string-with-alg": f"{b64url_json('alg ES384')}.{GOOD_PAYLOAD}.c2ln",
    "header-object-in-a-string": f"{b64url_json(GOOD_HEADER)}.{GOOD_PAYLOAD}.c2ln",
    "payload-not-json": f"{GOOD_HEADER}.{b64url(b'{nope')}.c2ln",
    "payload-array": f"{GOOD_HEADER}.{b64url_json([1, 2])}.c2ln",
    "payload-deeply-nested": f"{GOOD_HEADER}.{b64url(b'[' * 30_000 + b']' * 30_000)}.c2ln",
    "payload-bad-utf8": f"{GOOD_HEADER}.{b64url(bytes([0xFF, 0xFE]))}.c2ln",
    "non-ascii": f"{GOOD_HEADER}.é.c2ln",
    "oversized": f"{GOOD_HEADER}.{'A' * 200_000}.c2ln",
}


@pytest.mark.parametrize("token", list(GARBAGE.values()), ids=list(GARBAGE))
async def test_garbage_tokens_are_refused_without_fetching_keys(env: Env, token: str) -> None:
    await env.refused(token)
    assert env.server.requests == []


async def test_payload_with_good_signature_segment_but_bad_signature_bytes(env: Env) -> None:
    head, body, _ = env.token().split(".")
    reason = await env.refused(f"{head}.{body}.{b64url(b'x' * 96)}")
    assert "bad signature" in reason
    reason = await env.refused(f"{head}.{body}.%%%")
    assert "signature" in reason


# ---------------------------------------------------------------------------------------------------------
# Algorithms and header parameters: refused before any key is touched
# ---------------------------------------------------------------------------------------------------------


async def test_alg_none_is_refused_before_keys(env: Env) -> None:
    reason = await env.refused(mint_alg_none(env.claims(), kid="es-1", jku=JKU))
    assert "alg 'none' not allowed" in reason
    assert env.server.requests == []


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("key_name", ["es", "rs"])
async def test_hmac_signed_with_the_public_key_is_refused(env: Env, alg: str, key_name: str) -> None:
    key = env.es if key_name == "es" else env.rs
    token = mint_hmac_with_public_key(key, env.claims(), alg=alg, jku=JKU)  # type: ignore[arg-type]
    reason = await env.refused(token)
    assert f"alg '{alg}' not allowed" in reason
    assert env.server.requests == []


async def test_hmac_keyed_with_the_jwk_json_is_refused(env: Env) -> None:
    secret = b64url_json(env.rs.public_jwk()).encode()
    await env.refused(mint_hmac_with_public_key(env.rs, env.claims(), jku=JKU, secret=secret))
    assert env.server.requests == []


@pytest.mark.parametrize("alg", ["ES256", "ES512", "RS256", "RS512", "PS384", "EdDSA", "NONE", "", 384, None])
async def test_other_algorithms_are_refused(env: Env, alg: object) -> None:
    reason = await env.refused(mint(env.es, env.claims(), jku=JKU, alg=alg))
    assert "not allowed" in reason
    assert env.server.requests == []


async def test_rs384_header_on_an_ec_kid_is_refused(env: Env) -> None:
    reason = await env.refused(mint(env.es, env.claims(), jku=JKU, alg="RS384"))
    assert "does not match alg RS384" in reason


async def test_es384_header_on_an_rsa_kid_is_refused(env: Env) -> None:
    reason = await env.refused(mint(env.rs, env.claims(), jku=JKU, alg="ES384"))
    assert "does not match alg ES384" in reason


@pytest.mark.parametrize("typ", ["at+jwt", "JOSE", "application/jwt", 1])
async def test_typ_other_than_jwt_is_refused(env: Env, typ: object) -> None:
    reason = await env.refused(mint(env.es, env.claims(), jku=JKU, typ=typ))
    assert "is not JWT" in reason


@pytest.mark.parametrize("kid", [OMIT, "", 7])
async def test_kid_is_required(env: Env, kid: object) -> None:
    reason = await env.refused(mint(env.es, env.claims(), jku=JKU, kid=kid))
    assert "kid missing" in reason
    assert env.server.requests == []


@pytest.mark.parametrize("extra", [{"crit": ["exp"]}, {"b64": False, "crit": ["b64"]}, {"b64": True}])
async def test_crit_and_b64_headers_are_refused(env: Env, extra: dict[str, Any]) -> None:
    await env.refused(mint(env.es, env.claims(), jku=JKU, **extra))


async def test_embedded_jwk_is_never_trusted(env: Env) -> None:
    intruder = es384_key("es-1")  # same kid as the real key
    token = mint(intruder, env.claims(), jku=JKU, jwk=intruder.public_jwk())
    assert "bad signature" in await env.refused(token)


async def test_signature_by_another_key_with_the_same_kid_is_refused(env: Env) -> None:
    assert "bad signature" in await env.refused(env.token(es384_key("es-1")))


async def test_tampered_payload_is_refused(env: Env) -> None:
    token = env.token(sub="clinician-1")
    await env.verify(token)
    for change in ({"sub": "admin"}, {"jti": "fresh-jti"}, {"exp": int(NOW) + 60}, {"tenant": "t"}):
        assert "bad signature" in await env.refused(tamper_claims(token, **change))


# ---------------------------------------------------------------------------------------------------------
# Issuer and key source
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iss", ["https://evil.example.org/issuer", ISS + "//", ISS.upper(), ISS + "x", OMIT, 5, ""]
)
async def test_unknown_issuer_is_refused_without_fetching(env: Env, iss: object) -> None:
    reason = await env.refused(env.token(iss=iss))
    assert "unknown issuer" in reason
    assert env.server.requests == []


@pytest.mark.parametrize(
    "jku",
    [
        "https://evil.example/jwks.json",
        JKU + "/../evil",
        JKU + "?x=1",
        JKU + "#frag",
        JKU[:-1],
        JKU.replace("https", "http"),
        JKU.upper(),
    ],
)
async def test_jku_not_exactly_allowlisted_is_never_fetched(env: Env, jku: str) -> None:
    env.server.documents[jku] = jwks(env.es)
    reason = await env.refused(env.token(jku=jku))
    assert "not allowlisted" in reason
    assert env.server.requests == []


async def test_jku_of_another_tenant_is_refused(env: Env) -> None:
    other = TenantSettings(name="other", issuer="https://other.example/iss", jku_allowlist=(OTHER_JKU,))
    env.server.documents[OTHER_JKU] = jwks(env.es)
    env.auth = env.authenticator(
        make_settings(TenantSettings(name="ehr", issuer=ISS, jku_allowlist=(JKU,)), other)
    )
    assert "not allowlisted" in await env.refused(env.token(jku=OTHER_JKU))
    assert env.server.requests == []


async def test_unknown_kid_refetches_once_then_is_rate_limited(env: Env) -> None:
    await env.verify(env.token())
    assert env.server.count(JKU) == 1
    env.clock.advance(JWKS_MIN_REFETCH_INTERVAL_S + 1)

    stranger = es384_key("not-published")
    assert "unknown kid" in await env.refused(env.token(stranger))
    assert env.server.count(JKU) == 2  # the cached set, then exactly one refetch

    env.clock.advance(1)
    assert "unknown kid" in await env.refused(env.token(stranger))
    assert env.server.count(JKU) == 2  # within the refetch interval: no more fetches

    env.clock.advance(JWKS_MIN_REFETCH_INTERVAL_S)
    await env.refused(env.token(stranger))
    assert env.server.count(JKU) == 3


async def test_unknown_kid_on_a_cold_cache_fetches_once(env: Env) -> None:
    assert "unknown kid" in await env.refused(env.token(es384_key("not-published")))
    assert env.server.count(JKU) == 1


async def test_rotated_key_is_found_by_the_refetch(env: Env) -> None:
    await env.verify(env.token())
    rotated = es384_key("es-2")
    env.server.documents[JKU] = jwks(rotated)
    env.clock.advance(JWKS_MIN_REFETCH_INTERVAL_S + 1)
    await env.verify(env.token(rotated))
    assert env.server.count(JKU) == 2
    assert "unknown kid" in await env.refused(env.token())  # the retired key is gone


async def test_keys_are_cached_for_the_ttl_then_refetched(env: Env) -> None:
    for _ in range(5):
        await env.verify(env.token())
    assert env.server.count(JKU) == 1
    env.clock.advance(3600)
    await env.verify(env.token())
    assert env.server.count(JKU) == 2


async def test_stale_keys_serve_while_the_key_server_fails_then_fail_closed(env: Env) -> None:
    await env.verify(env.token())
    env.server.responder = lambda request: httpx.Response(503)
    env.clock.advance(3600)
    await env.verify(env.token())  # refresh failed: stale keys still verify
    assert env.server.count(JKU) == 2
    await env.verify(env.token())
    assert env.server.count(JKU) == 2  # failed fetches are rate limited too
    env.clock.advance(JWKS_STALE_IF_ERROR_S)
    assert "could not be refreshed" in await env.refused(env.token())


async def test_concurrent_cold_calls_share_one_fetch(env: Env) -> None:
    tokens = [env.token() for _ in range(20)]
    identities = await asyncio.gather(*(env.verify(t) for t in tokens))
    assert len({i.jti for i in identities}) == 20
    assert env.server.count(JKU) == 1


def _redirect(request: httpx.Request) -> httpx.Response:
    return httpx.Response(302, headers={"Location": "https://evil.example/jwks.json"})


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500),
        httpx.Response(200, content=b"<html>not json</html>"),
        httpx.Response(200, json=["not", "a", "jwks"]),
        httpx.Response(200, json={"keys": "nope"}),
        httpx.Response(200, content=b'{"keys": [], "pad": "' + b"x" * (256 * 1024) + b'"}'),
    ],
    ids=["500", "html", "array", "keys-not-list", "over-256KiB"],
)
async def test_unusable_jwks_responses_are_refused(env: Env, response: httpx.Response) -> None:
    env.server.responder = lambda request: response
    assert "no keys could be fetched" in await env.refused(env.token())


async def test_redirects_are_not_followed(env: Env) -> None:
    env.server.responder = _redirect
    assert "no keys could be fetched" in await env.refused(env.token())
    assert env.server.requests == [JKU]


async def test_a_failed_first_fetch_is_not_retried_within_the_interval(env: Env) -> None:
    env.server.responder = lambda request: httpx.Response(500)
    await env.refused(env.token())
    await env.refused(env.token())
    assert env.server.count(JKU) == 1
    env.server.responder = None
    env.clock.advance(JWKS_MIN_REFETCH_INTERVAL_S)
    await env.verify(env.token())
    assert env.server.count(JKU) == 2


async def test_network_error_is_an_authentication_failure(env: Env) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    env.server.responder = boom
    assert "no keys could be fetched" in await env.refused(env.token())


def _rsa_1024() -> SigningKey:
    # Deliberately weak: the verifier must refuse it.
    raw = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        return SigningKey("RS384", "weak", RSAKey.import_key(raw))


async def test_rsa_keys_under_2048_bits_are_not_used(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    weak = _rsa_1024()
    env.server.documents[JKU] = jwks(weak)
    with caplog.at_level(logging.WARNING, logger="cds_hooks.auth"):
        assert "unusable" in await env.refused(env.token(weak))
    assert "1024-bit RSA key" in caplog.text


async def test_ec_key_on_another_curve_is_not_used_for_es384(env: Env) -> None:
    p256 = SigningKey("ES384", "p256", ECKey.import_key(ec.generate_private_key(ec.SECP256R1())))
    env.server.documents[JKU] = {"keys": [{**p256.public_jwk(), "alg": "ES384"}]}
    assert "unusable" in await env.refused(mint(env.es, env.claims(), jku=JKU, kid="p256"))


@pytest.mark.parametrize(
    "change",
    [{"use": "enc"}, {"key_ops": ["encrypt"]}, {"alg": "RS256"}, {"kty": "oct"}],
    ids=["use-enc", "key_ops", "alg-rs256", "kty-oct"],
)
async def test_keys_not_meant_for_rs384_verification_are_not_used(env: Env, change: dict[str, Any]) -> None:
    env.server.documents[JKU] = {"keys": [{**env.rs.public_jwk(), **change}]}
    await env.refused(env.token(env.rs))


async def test_a_jwks_that_publishes_private_keys_is_not_trusted(env: Env) -> None:
    env.server.documents[JKU] = {"keys": [{**env.es.key.as_dict(private=True), "kid": "es-1"}]}
    assert "unusable" in await env.refused(env.token())


async def test_one_bad_key_does_not_spoil_the_set(env: Env) -> None:
    env.server.documents[JKU] = {
        "keys": [
            "junk",
            {"kty": "EC", "kid": "broken", "crv": "P-384", "x": "AA", "y": "AA"},
            env.es.public_jwk(),
        ]
    }
    await env.verify(env.token())


# ---------------------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud",
    [
        "https://cds.example.test/cds-services/other",
        AUD + "//",
        [],
        ["https://cds.example.test/cds-services/other"],
        [AUD, 5],
        OMIT,
        None,
        5,
    ],
)
async def test_wrong_audience_is_refused(env: Env, aud: object) -> None:
    assert "aud does not name this service" in await env.refused(env.token(aud=aud))


async def test_expired_token_is_refused(env: Env) -> None:
    now = int(NOW)
    assert "expired" in await env.refused(env.token(exp=now - LEEWAY, iat=now - 600))
    assert "expired" in await env.refused(env.token(exp=now - 3600, iat=now - 3700))


async def test_nbf_in_the_future_is_refused(env: Env) -> None:
    assert "nbf" in await env.refused(env.token(nbf=int(NOW) + LEEWAY + 1))


async def test_iat_in_the_future_is_refused(env: Env) -> None:
    now = int(NOW)
    assert "issued in the future" in await env.refused(env.token(iat=now + LEEWAY + 1, exp=now + 600))


@pytest.mark.parametrize("name", ["exp", "iat"])
@pytest.mark.parametrize("value", [OMIT, None, "1700000000", True, float("nan"), [1]])
async def test_exp_and_iat_must_be_numbers(env: Env, name: str, value: Any) -> None:
    overrides: dict[str, Any] = {name: value}
    assert "not a number" in await env.refused(env.token(**overrides))


async def test_nbf_must_be_a_number_when_present(env: Env) -> None:
    assert "nbf not a number" in await env.refused(env.token(nbf="soon"))


async def test_lifetime_longer_than_the_maximum_is_refused(env: Env) -> None:
    now = int(NOW)
    assert "lifetime" in await env.refused(env.token(iat=now - 10, exp=now + 3600))
    assert "exp before iat" in await env.refused(env.token(iat=now + 20, exp=now + 10))
    assert "lifetime" in await env.refused(env.token(exp=10**400))  # beyond float range


@pytest.mark.parametrize("jti", [OMIT, "", None, 42, ["a"], "x" * 257])
async def test_jti_is_required_and_bounded(env: Env, jti: object) -> None:
    assert "jti" in await env.refused(env.token(jti=jti))


async def test_sub_and_tenant_claims_must_be_strings_when_present(env: Env) -> None:
    assert "sub not a string" in await env.refused(env.token(sub=5))
    assert "tenant claim not a string" in await env.refused(env.token(tenant={"id": 1}))


async def test_replayed_jti_is_refused(env: Env) -> None:
    token = env.token(jti="once-only")
    await env.verify(token)
    assert "replayed jti" in await env.refused(token)
    # The same jti in a freshly signed token is a replay too.
    assert "replayed jti" in await env.refused(env.token(env.rs, jti="once-only"))
    assert env.replay.contains(f"{ISS}|once-only")


async def test_jti_namespaces_are_per_issuer(env: Env) -> None:
    second = TenantSettings(name="second", issuer="https://second.example/iss", jku_allowlist=(OTHER_JKU,))
    env.server.documents[OTHER_JKU] = jwks(env.rs)
    env.auth = env.authenticator(
        make_settings(TenantSettings(name="ehr", issuer=ISS, jku_allowlist=(JKU,)), second)
    )
    await env.verify(env.token(jti="shared"))
    other = mint(env.rs, claims(second.issuer, AUD, now=NOW, jti="shared"), jku=OTHER_JKU)
    assert (await env.verify(other)).tenant == "second"


async def test_refused_tokens_do_not_spend_their_jti(env: Env) -> None:
    await env.refused(env.token(jti="precious", aud="https://elsewhere.example/x"))
    await env.refused(env.token(es384_key("es-1"), jti="precious"))
    await env.verify(env.token(jti="precious"))


async def test_replay_ttl_covers_the_token_lifetime_plus_leeway(env: Env) -> None:
    seen: list[tuple[str, int]] = []

    class Recorder:
        async def first_use(self, key: str, ttl_s: int) -> bool:
            seen.append((key, ttl_s))
            return True

    client = env.server.client()
    env.clients.append(client)
    env.auth = EhrAuthenticator(make_settings(), client, Recorder(), clock=env.clock)
    await env.verify(env.token(jti="ttl", iat=int(NOW), exp=int(NOW) + 300))
    await env.verify(env.token(jti="ttl-edge", iat=int(NOW) - 600, exp=int(NOW) - LEEWAY + 1))
    assert seen == [(f"{ISS}|ttl", 300 + LEEWAY), (f"{ISS}|ttl-edge", 1 + LEEWAY)]


async def test_failure_reasons_and_logs_never_carry_the_token_or_claims(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    secret_jti = "jti-8c1f3d"
    secret_sub = "patient-facing-subject-99"
    tokens = [
        env.token(jti=secret_jti, sub=secret_sub, aud="https://elsewhere.example/x"),
        env.token(jti=secret_jti, sub=secret_sub, exp=int(NOW) - 3600, iat=int(NOW) - 3700),
        tamper_claims(env.token(jti=secret_jti), sub=secret_sub),
    ]
    with caplog.at_level(logging.DEBUG):
        reasons = [await env.refused(token) for token in tokens]
        await env.verify(env.token(jti=secret_jti, sub=secret_sub))
        reasons.append(await env.refused(env.token(jti=secret_jti, sub=secret_sub)))
    for text in [*reasons, caplog.text]:
        assert secret_jti not in text
        assert secret_sub not in text
        for token in tokens:
            assert token.split(".")[1] not in text
            assert token.split(".")[2] not in text


# ---------------------------------------------------------------------------------------------------------
# The CDS Hooks 2.0 specification's own example and the public sandbox
# ---------------------------------------------------------------------------------------------------------

SPEC_ISSUER = "https://fhir-ehr.example.com/"
SPEC_JKU = "https://fhir-ehr.example.com/jwk_uri"
SPEC_AUDIENCE = "https://cds.example.org/cds-services/some-service"


async def _spec_authenticator(max_lifetime_s: int) -> tuple[EhrAuthenticator, JwksServer, httpx.AsyncClient]:
    example = load_spec_example()
    server = JwksServer({SPEC_JKU: example["jwks"]})
    client = server.client()
    settings = make_settings(
        TenantSettings(name="spec-ehr", issuer=SPEC_ISSUER, jku_allowlist=(SPEC_JKU,)),
        jwt_max_lifetime_s=max_lifetime_s,
    )
    return (
        EhrAuthenticator(settings, client, MemoryReplayStore(), clock=lambda: 1_400_000_000.0),
        server,
        client,
    )


async def test_the_spec_example_token_verifies() -> None:
    example = load_spec_example()
    # Its iat and exp are 3.5 years apart, so the lifetime cap must be lifted for this one token.
    auth, server, client = await _spec_authenticator(max_lifetime_s=10**9)
    async with client:
        identity = await auth.authenticate(f"Bearer {example['token']}", SPEC_AUDIENCE)
    assert identity == EhrIdentity(
        tenant="spec-ehr",
        issuer=SPEC_ISSUER,
        subject=None,
        jti="ee22b021-e1b7-4611-ba5b-8eec6a33ac1e",
        tenant_claim="2ddd6c3a-8e9a-44c6-a305-52111ad302a2",
    )
    assert server.requests == [SPEC_JKU]


async def test_the_spec_example_fails_the_default_lifetime_cap_and_other_audiences() -> None:
    example = load_spec_example()
    auth, _, client = await _spec_authenticator(max_lifetime_s=3600)
    async with client:
        with pytest.raises(AuthenticationFailed, match="lifetime"):
            await auth.authenticate(f"Bearer {example['token']}", SPEC_AUDIENCE)
        with pytest.raises(AuthenticationFailed, match="aud"):
            await auth.authenticate(
                f"Bearer {example['token']}", "https://cds.example.org/cds-services/other"
            )


def test_the_spec_example_file_matches_its_token() -> None:
    example = load_spec_example()
    assert "CDS Hooks 2.0" in example["source"]
    header, payload, _ = example["token"].split(".")
    assert b64url_json(example["header"]) == header
    assert b64url_json(example["payload"]) == payload


@pytest.mark.parametrize("trusted", [True, False])
async def test_sandbox_issuer_only_when_trusted(env: Env, trusted: bool) -> None:
    sandbox_key = es384_key("sandbox-kid")
    env.server.documents[SANDBOX_JKU] = jwks(sandbox_key)
    env.auth = env.authenticator(make_settings(trust_cds_hooks_sandbox=trusted))
    token = mint(sandbox_key, claims(SANDBOX_ISSUER, AUD, now=NOW), jku=SANDBOX_JKU)
    if trusted:
        identity = await env.verify(token)
        assert identity.tenant == "cds-hooks-sandbox"
        assert env.server.requests == [SANDBOX_JKU]
    else:
        assert "unknown issuer" in await env.refused(token)
        assert env.server.requests == []


# ---------------------------------------------------------------------------------------------------------
# MemoryReplayStore: the fallback and the test fake of the replay port
# ---------------------------------------------------------------------------------------------------------


async def test_memory_store_first_use_then_replay_then_expiry() -> None:
    clock = FakeClock(100.0)
    store = MemoryReplayStore(clock=clock)
    assert await store.first_use("a", 10)
    assert not await store.first_use("a", 10)
    clock.advance(9.9)
    assert not await store.first_use("a", 10)
    clock.advance(0.2)
    assert await store.first_use("a", 10)


async def test_memory_store_is_bounded_and_evicts_expired_then_oldest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(0.0)
    store = MemoryReplayStore(max_entries=3, clock=clock)
    assert await store.first_use("short", 1)
    assert await store.first_use("old", 100)
    assert await store.first_use("mid", 100)
    clock.advance(2)  # "short" expired
    assert await store.first_use("new", 100)
    assert len(store) == 3
    assert not await store.first_use("old", 100)  # still remembered: the expired one made room
    with caplog.at_level(logging.WARNING, logger="cds_hooks.replay"):
        assert await store.first_use("newest", 100)  # full of live entries: the oldest goes
        assert await store.first_use("newest-2", 100)
    assert len(store) == 3
    assert await store.first_use("old", 100)  # evicted, so no longer known
    assert caplog.text.count("replay store full") == 1  # rate-limited


async def test_memory_store_heap_stays_bounded_under_churn() -> None:
    clock = FakeClock(0.0)
    store = MemoryReplayStore(max_entries=50, clock=clock)
    for i in range(5_000):
        await store.first_use(f"k{i}", 10_000)
    assert len(store) == 50
    assert len(store._heap) <= 100


def test_memory_store_rejects_a_zero_size() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryReplayStore(max_entries=0)


# ---------------------------------------------------------------------------------------------------------
# Whatever arrives, the only failure is AuthenticationFailed (never a 500)
# ---------------------------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_header_like = (
    st.fixed_dictionaries(
        {},
        optional={
            "alg": st.sampled_from(["ES384", "RS384", "none", "HS256"]) | _json_values,
            "kid": st.sampled_from(["es-1", "rs-1"]) | _json_values,
            "typ": st.just("JWT") | _json_values,
            "jku": st.just(JKU) | _json_values,
            "crit": _json_values,
        },
    )
    | _json_values
)
_claims_like = (
    st.fixed_dictionaries(
        {},
        optional={
            "iss": st.just(ISS) | _json_values,
            "aud": st.just(AUD) | _json_values,
            "exp": st.just(int(NOW) + 60) | _json_values,
            "iat": st.just(int(NOW)) | _json_values,
            "nbf": _json_values,
            "jti": st.text(max_size=10) | _json_values,
            "sub": _json_values,
            "tenant": _json_values,
        },
    )
    | _json_values
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=_header_like, payload=_claims_like, signature=st.binary(max_size=120), sign=st.booleans())
def test_arbitrary_token_shaped_input_only_ever_fails_authentication(
    es: SigningKey, header: Any, payload: Any, signature: bytes, sign: bool
) -> None:
    def encode(value: Any) -> str:
        return b64url(json.dumps(value).encode())

    if sign and isinstance(header, dict) and isinstance(payload, dict):
        overrides = {k: (OMIT if v is None else v) for k, v in header.items()}
        jku = overrides.pop("jku", OMIT)
        token = mint(es, payload, jku=None if jku is OMIT else jku, **overrides)
    else:
        token = f"{encode(header)}.{encode(payload)}.{b64url(signature)}"

    async def attempt() -> None:
        server = JwksServer({JKU: jwks(es)})
        async with server.client() as client:
            auth = EhrAuthenticator(make_settings(), client, MemoryReplayStore(), clock=lambda: NOW)
            try:
                await auth.authenticate(f"Bearer {token}", AUD)
            except AuthenticationFailed:
                return

    asyncio.run(attempt())
