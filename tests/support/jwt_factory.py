"""Keys, JWK sets and JWTs (valid and deliberately broken) for tests and benchmarks of EHR authentication."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from joserfc.jwk import ECKey, RSAKey
from joserfc.jws import JWSRegistry

SPEC_JWT_PATH = Path(__file__).resolve().parent.parent / "data" / "cds_hooks_spec_jwt.json"

# Marks a header or claim to leave out of a token, e.g. `mint(key, claims, jti=OMIT)`.
OMIT: Any = object()


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key with the algorithm and kid an EHR would sign with."""

    alg: Literal["ES384", "RS384"]
    kid: str
    key: ECKey | RSAKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = self.key.as_dict(private=False)
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    def public_pem(self) -> bytes:
        return self.key.as_pem(private=False)


def es384_key(kid: str = "es384-1") -> SigningKey:
    return SigningKey("ES384", kid, ECKey.generate_key("P-384"))


def rs384_key(kid: str = "rs384-1", bits: int = 2048) -> SigningKey:
    return SigningKey("RS384", kid, RSAKey.generate_key(bits))


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk() for k in keys]}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims(
    iss: str,
    aud: str | list[str],
    /,
    *,
    now: float | None = None,
    lifetime_s: int = 300,
    **overrides: Any,
) -> dict[str, Any]:
    """Claims an EHR would send: iss, aud, iat=now, exp=now+lifetime, a fresh jti; then `overrides`
    (a value of OMIT removes that claim)."""
    issued = int(time.time() if now is None else now)
    base: dict[str, Any] = {
        "iss": iss,
        "aud": aud,
        "iat": issued,
        "exp": issued + lifetime_s,
        "jti": str(uuid.uuid4()),
    }
    return _apply(base, overrides)


def header_for(key: SigningKey, jku: str | None = None, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"alg": key.alg, "typ": "JWT", "kid": key.kid}
    if jku is not None:
        base["jku"] = jku
    return _apply(base, overrides)


def mint(
    key: SigningKey,
    token_claims: Mapping[str, Any],
    *,
    jku: str | None = None,
    **header_overrides: Any,
) -> str:
    """A compact JWS signed by `key` with joserfc's implementation of the key's algorithm.

    The header is built independently of the signature, so `alg`, `kid`, `typ` and friends can be
    overridden to anything (e.g. `alg="ES256"` on an ES384 signature) for negative tests.
    """
    header = header_for(key, jku, **header_overrides)
    signing_input = f"{b64url_json(header)}.{b64url_json(dict(token_claims))}".encode("ascii")
    signature = JWSRegistry.algorithms[key.alg].sign(signing_input, key.key)
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


def mint_alg_none(token_claims: Mapping[str, Any], kid: str = "es384-1", **header_overrides: Any) -> str:
    """An unsecured JWT (`alg: none`, empty signature)."""
    header = _apply({"alg": "none", "typ": "JWT", "kid": kid}, header_overrides)
    return f"{b64url_json(header)}.{b64url_json(dict(token_claims))}."


def mint_hmac_with_public_key(
    key: SigningKey,
    token_claims: Mapping[str, Any],
    *,
    alg: Literal["HS256", "HS384", "HS512"] = "HS256",
    jku: str | None = None,
    secret: bytes | None = None,
) -> str:
    """The algorithm-confusion attack: HMAC keyed with the victim's *public* key (PEM by default).

    Built by hand because joserfc rightly refuses to use an asymmetric key as an HMAC secret. A verifier
    that lets the header pick the algorithm and feeds it "the key bytes" would accept this token.
    """
    header = header_for(key, jku, alg=alg)
    signing_input = f"{b64url_json(header)}.{b64url_json(dict(token_claims))}".encode("ascii")
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    mac = hmac.new(secret if secret is not None else key.public_pem(), signing_input, digest).digest()
    return f"{signing_input.decode('ascii')}.{b64url(mac)}"


def tamper_claims(token: str, **changes: Any) -> str:
    """The same header and signature over different claims (OMIT removes a claim)."""
    header_segment, payload_segment, signature_segment = token.split(".")
    padded = payload_segment + "=" * (-len(payload_segment) % 4)
    payload = json.loads(base64.urlsafe_b64decode(padded))
    return f"{header_segment}.{b64url_json(_apply(payload, changes))}.{signature_segment}"


def decode_segment(segment: str) -> Any:
    """The JSON inside one base64url segment of a compact JWS."""
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def load_spec_example() -> dict[str, Any]:
    """The CDS Hooks 2.0 specification's published ES384 example: token, header, payload and public JWKS."""
    data: dict[str, Any] = json.loads(SPEC_JWT_PATH.read_text(encoding="utf-8"))
    return data


class JwksServer:
    """Serves JWK sets at fixed URLs through an httpx MockTransport and counts the requests per URL.

    `client()` gives an AsyncClient whose every request lands here; URLs not registered answer 404, and
    every request is counted, so a test can assert that a non-allowlisted jku was never fetched.
    """

    def __init__(self, documents: Mapping[str, object] | None = None) -> None:
        self.documents: dict[str, object] = dict(documents or {})
        self.requests: list[str] = []
        self.responder: Callable[[httpx.Request], httpx.Response] | None = None

    def count(self, url: str) -> int:
        return self.requests.count(url)

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(url)
        if self.responder is not None:
            return self.responder(request)
        if url not in self.documents:
            return httpx.Response(404)
        return httpx.Response(200, json=self.documents[url])

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


def _apply(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name, value in overrides.items():
        if value is OMIT:
            out.pop(name, None)
        else:
            out[name] = value
    return out
