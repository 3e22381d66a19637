"""The preview's signing key: an EHR tenant that exists only in a process whose preview is enabled.

The key is an EC P-384 pair generated when the app is created and never written anywhere. Its public half
becomes one more tenant (static JWKS, issuer `{public_base}/preview`) in the app's settings, so the page's
calls go through the same EHR authentication as any EHR's. With the preview off no such tenant exists, so
nothing signed by a preview key of any process is trusted. Each token is short-lived, names one endpoint
as its audience and carries a fresh `jti`, exactly like an EHR's.

One key per process: a deployment that runs several API processes behind one address should not enable
the preview (a token minted by one process is refused by the others).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Final

from joserfc.jwk import ECKey

from cds_hooks.fire import Signer
from cds_hooks.settings import Settings, TenantSettings

PREVIEW_TENANT: Final = "r1cds-preview"
TOKEN_LIFETIME_S: Final = 120


@dataclass(frozen=True, slots=True)
class PreviewKey:
    signer: Signer
    jwks: dict[str, Any]

    @classmethod
    def generate(cls, public_base: str) -> PreviewKey:
        key = ECKey.generate_key("P-384", private=True)
        kid = f"{PREVIEW_TENANT}-{secrets.token_hex(8)}"
        public = {**key.as_dict(private=False), "kid": kid, "use": "sig", "alg": "ES384"}
        signer = Signer(key=key, alg="ES384", issuer=f"{public_base}/preview", kid=kid)
        return cls(signer=signer, jwks={"keys": [public]})

    @property
    def issuer(self) -> str:
        return self.signer.issuer

    def tenant(self) -> TenantSettings:
        return TenantSettings(name=PREVIEW_TENANT, issuer=self.issuer, jwks=self.jwks)

    def authorization(self, audience: str) -> str:
        return f"Bearer {self.signer.token(audience, lifetime_s=TOKEN_LIFETIME_S)}"


def enable_preview(settings: Settings) -> tuple[Settings, PreviewKey]:
    """Settings with the preview tenant added, and its key. Call only when `settings.preview_enabled`."""
    if not settings.preview_enabled:
        raise ValueError("the preview is not enabled in these settings")
    key = PreviewKey.generate(settings.public_base)
    others = tuple(t for t in settings.tenants if t.name != PREVIEW_TENANT)
    return settings.model_copy(update={"tenants": (*others, key.tenant())}), key
