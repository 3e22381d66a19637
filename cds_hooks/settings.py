"""Settings of the HTTP edge, read from `R1CDS_*` environment variables by `load_settings()`."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cds_hooks.fhir_guard import UnsafeUrl, parse_server_url

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
    # Base URLs, compared by scheme, host, port and whole path segments; empty means any public server.
    fhir_server_allowlist: tuple[str, ...] = ()

    @field_validator("fhir_server_allowlist")
    @classmethod
    def _allowlist_entries_are_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_allowlist(value)

    @model_validator(mode="after")
    def _has_a_key_source(self) -> TenantSettings:
        if not self.jku_allowlist and not self.jwks:
            raise ValueError(f"tenant {self.name!r} needs jku_allowlist or a static jwks")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="R1CDS_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # The base URL EHRs use to reach us; JWT `aud` must equal base + "/cds-services/{id}". Unset, it follows
    # host and port (see `public_base`); behind TLS or a proxy it must be set to what EHRs actually call.
    public_base_url: AnyHttpUrl | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"  # json: one object per line, exception types and frames only
    # A repeating warning is written once, then at most once per this many seconds (0: every one).
    log_repeat_s: float = Field(default=60.0, ge=0.0, le=86400.0)

    auth_disabled: bool = False
    tenants: tuple[TenantSettings, ...] = ()
    trust_cds_hooks_sandbox: bool = False
    jwt_leeway_s: int = Field(default=30, ge=0, le=300)
    jwt_max_lifetime_s: int = Field(default=3600, ge=60)
    jwks_cache_ttl_s: int = Field(default=3600, ge=0)

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = Field(default=0.25, gt=0)

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Resources one hook call may carry: prefetch entries (a Bundle's entries, or one resource) plus
    # `context.draftOrders` entries, counted on the parsed JSON before anything else reads it, and again
    # after fetch-back. More is a 413: rule work grows with them, and one call must not hold the API.
    max_resources_per_call: int = Field(default=2000, ge=1)
    # Hook calls whose rules and cards are being worked out at once, each on a worker thread off the event
    # loop; calls over LARGE_CALL_RESOURCES resources get at most half of them (at least one).
    hook_threads: int = Field(default=4, ge=1, le=64)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    fhir_timeout_s: float = Field(default=3.0, gt=0)
    fhir_max_pages: int = Field(default=10, ge=1)
    fhir_max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    fhir_max_concurrency: int = Field(default=8, ge=1)
    fhir_allow_http: bool = False  # plain-http FHIR servers only for loopback testing
    # Loopback, private, link-local (cloud metadata) and other non-public addresses as fetch-back targets,
    # named or resolved. Only for local use (`make run`) or an allowlist of internal FHIR servers.
    fhir_allow_private_networks: bool = False
    # Base URLs any tenant may name, compared by scheme, host, port and whole path segments; empty: any.
    fhir_server_allowlist: tuple[str, ...] = ()

    # Chart notes are scrubbed of the patient's identifiers and dates, then shown to the model only as
    # delimited, untrusted data. Off by default: free text is where PHI and injected instructions hide.
    context_include_free_text: bool = False

    # Final answers (review landed, nothing pending or failed) reused for identical calls in this process.
    answer_cache_size: int = Field(default=2048, ge=0)  # entries; 0 turns the cache off
    answer_cache_ttl_s: float = Field(default=60.0, gt=0)

    # A non-critical rule card overridden with a reason is not shown again for the same patient and facts
    # for this long (plugin.suppression); 0 turns it off. At most 30 days: an override is a judgement of
    # its day, and a finding hidden for longer would outlive the plan that justified it.
    override_suppression_hours: float = Field(default=24.0, ge=0, le=720, allow_inf_nan=False)

    # The card preview page (/preview) and the signing key it calls the hook endpoints with
    # (cds_hooks.preview). Off by default: it lets anyone who reaches the service fire hooks, send
    # feedback, and have the service fetch from FHIR servers they name (R1CDS_FHIR_SERVER_ALLOWLIST holds).
    # `r1cds up` turns it on unless R1CDS_PREVIEW_ENABLED says otherwise.
    # Uploaded Bundle files are held to max_body_bytes, like hook calls.
    preview_enabled: bool = False

    @field_validator("fhir_server_allowlist")
    @classmethod
    def _allowlist_entries_are_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_allowlist(value)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("public_base_url", mode="before")
    @classmethod
    def _empty_base_is_unset(cls, value: object) -> object:
        # `R1CDS_PUBLIC_BASE_URL=` in an env file means "not set", not "an invalid URL".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _derived_base_is_a_url(self) -> Settings:
        # Fail at start-up, not at the first request that builds a link, when host cannot be part of a URL.
        if self.public_base_url is None:
            try:
                AnyHttpUrl(self.public_base)
            except ValueError:
                raise ValueError(
                    f"R1CDS_HOST={self.host!r} gives no usable URL; set R1CDS_PUBLIC_BASE_URL"
                ) from None
        return self

    @model_validator(mode="after")
    def _refuse_wildcard_cors_with_auth(self) -> Settings:
        if "*" in self.cors_origins and not self.auth_disabled:
            # Browsers never send credentials to "*"; an EHR front end needs its origin listed.
            raise ValueError("R1CDS_CORS_ORIGINS='*' is only allowed with R1CDS_AUTH_DISABLED=true")
        return self

    @property
    def public_base(self) -> str:
        """The base of every link we hand out: R1CDS_PUBLIC_BASE_URL as set, else derived from host and port."""
        if self.public_base_url is not None:
            return str(self.public_base_url).rstrip("/")
        return derived_base(self.host, self.port)

    def all_tenants(self) -> tuple[TenantSettings, ...]:
        if not self.trust_cds_hooks_sandbox:
            return self.tenants
        sandbox = TenantSettings(
            name="cds-hooks-sandbox", issuer=SANDBOX_ISSUER, jku_allowlist=(SANDBOX_JKU,)
        )
        return (*self.tenants, sandbox)


def _check_allowlist(entries: tuple[str, ...]) -> tuple[str, ...]:
    for entry in entries:
        try:
            parse_server_url(entry)
        except UnsafeUrl as exc:
            raise ValueError(f"fhir_server_allowlist entry {entry!r}: {exc}") from None
    return entries


def derived_base(host: str, port: int) -> str:
    """`http://{host}:{port}` for a service reached where it listens: the default public base URL."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        # A name (or the empty wildcard); names are used as they are.
        return f"http://{host or '127.0.0.1'}:{port}"
    if address.is_unspecified:
        # 0.0.0.0 or :: listens everywhere but is no address a browser or EHR can call; loopback is one
        # of the interfaces it covers.
        return f"http://127.0.0.1:{port}"
    if address.version == 6:
        # RFC 3986 brackets an IPv6 literal. One with a zone id (fe80::1%eth0) is no URL browsers take:
        # the settings validator refuses it and asks for R1CDS_PUBLIC_BASE_URL.
        return f"http://[{address}]:{port}"
    return f"http://{address}:{port}"


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and explicit overrides, for tests and the CLI) into validated settings."""
    return Settings(**overrides)
