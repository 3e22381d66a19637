"""Settings of the HTTP edge, read from `R1CDS_*` environment variables by `load_settings()`."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"


class TenantSettings(BaseModel):
    """One EHR allowed to call us: who signs its JWTs and where its keys may come from."""

    model_config = {"extra": "forbid", "frozen": True}

    name: str
    issuer: str
    jku_allowlist: tuple[str, ...] = ()
    jwks: dict[str, Any] | None = None  # a static JWK set, for EHRs that register keys out of band
    fhir_server_allowlist: tuple[str, ...] = ()  # URL prefixes; empty means any https server

    @model_validator(mode="after")
    def _has_a_key_source(self) -> TenantSettings:
        if not self.jku_allowlist and not self.jwks:
            raise ValueError(f"tenant {self.name!r} needs jku_allowlist or a static jwks")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="R1CDS_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # The base URL EHRs use to reach us; JWT `aud` must equal base + "/cds-services/{id}".
    public_base_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"  # json: one object per line, exception types and frames only

    auth_disabled: bool = False
    tenants: tuple[TenantSettings, ...] = ()
    trust_cds_hooks_sandbox: bool = False
    jwt_leeway_s: int = Field(default=30, ge=0, le=300)
    jwt_max_lifetime_s: int = Field(default=3600, ge=60)
    jwks_cache_ttl_s: int = Field(default=3600, ge=0)

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = Field(default=0.25, gt=0)

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    fhir_timeout_s: float = Field(default=3.0, gt=0)
    fhir_max_pages: int = Field(default=10, ge=1)
    fhir_max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    fhir_max_concurrency: int = Field(default=8, ge=1)
    fhir_allow_http: bool = False  # plain-http FHIR servers only for loopback testing
    fhir_server_allowlist: tuple[str, ...] = ()  # URL prefixes any tenant may name; empty means any

    # Chart notes are scrubbed of the patient's identifiers and dates, then shown to the model only as
    # delimited, untrusted data. Off by default: free text is where PHI and injected instructions hide.
    context_include_free_text: bool = False

    # Final answers (review landed, nothing pending or failed) reused for identical calls in this process.
    answer_cache_size: int = Field(default=2048, ge=0)  # entries; 0 turns the cache off
    answer_cache_ttl_s: float = Field(default=60.0, gt=0)

    # The card preview page (/preview) and the signing key it calls the hook endpoints with
    # (cds_hooks.preview). Off by default: it lets anyone who reaches the service fire hooks, send
    # feedback, and have the service fetch from FHIR servers they name (R1CDS_FHIR_SERVER_ALLOWLIST holds).
    # `r1cds up` turns it on unless R1CDS_PREVIEW_ENABLED says otherwise.
    # Uploaded Bundle files are held to max_body_bytes, like hook calls.
    preview_enabled: bool = False

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _refuse_wildcard_cors_with_auth(self) -> Settings:
        if "*" in self.cors_origins and not self.auth_disabled:
            # Browsers never send credentials to "*"; an EHR front end needs its origin listed.
            raise ValueError("R1CDS_CORS_ORIGINS='*' is only allowed with R1CDS_AUTH_DISABLED=true")
        return self

    @property
    def public_base(self) -> str:
        return str(self.public_base_url).rstrip("/")

    def all_tenants(self) -> tuple[TenantSettings, ...]:
        if not self.trust_cds_hooks_sandbox:
            return self.tenants
        sandbox = TenantSettings(
            name="cds-hooks-sandbox", issuer=SANDBOX_ISSUER, jku_allowlist=(SANDBOX_JKU,)
        )
        return (*self.tenants, sandbox)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and explicit overrides, for tests and the CLI) into validated settings."""
    return Settings(**overrides)
