"""Fetch-back goes only where it may (issue 19 item 5): allowlist by URL component, no non-public address."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from pydantic import ValidationError

from cds_hooks.errors import PrefetchUnobtainable
from cds_hooks.fhir_guard import (
    ForbiddenAddress,
    GuardedBackend,
    fhir_client,
    forbidden_address,
    parse_server_url,
)
from cds_hooks.prefetch import PrefetchResolver
from cds_hooks.protocol import HookRequest
from cds_hooks.settings import Settings, TenantSettings, load_settings
from plugin.services import ServiceDeclaration

pytestmark = pytest.mark.unit

PATIENT = {"resourceType": "Patient", "id": "p1"}
DECLARATION = ServiceDeclaration(
    id="guard-probe",
    hooks=("patient-view",),
    title="Guard probe",
    description="Fetches the patient back.",
    prefetch={"patient": "Patient/{{context.patientId}}"},
    required_prefetch=frozenset({"patient"}),
)
TENANT = TenantSettings(
    name="ehr", issuer="https://ehr.example.org", jku_allowlist=("https://ehr.example.org/j",)
)


def _request(fhir_server: str) -> HookRequest:
    return HookRequest.model_validate(
        {
            "hook": "patient-view",
            "hookInstance": "h1",
            "fhirServer": fhir_server,
            "fhirAuthorization": {
                "access_token": "ehr-secret-token",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "r1-cds",
            },
            "context": {"userId": "Practitioner/1", "patientId": "p1"},
        }
    )


class Recorder:
    """A FHIR server in process that notes every URL it is asked for."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return httpx.Response(200, json=PATIENT)


async def _resolve(settings: Settings, fhir_server: str, tenant: TenantSettings | None = None) -> list[str]:
    """The URLs fetch-back asked for; a refused server raises PrefetchUnobtainable (patient is required)."""
    recorder = Recorder()
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as http:
        await PrefetchResolver(settings, http).resolve(DECLARATION, _request(fhir_server), tenant)
    return recorder.urls


ALLOWLIST = ("https://fhir.a.org/fhir-a",)


@pytest.mark.parametrize(
    "fhir_server",
    [
        "https://fhir.a.org.attacker.net/fhir-a",  # suffix domain
        "https://fhir.a.org@attacker.net/fhir-a",  # userinfo
        "https://fhir.a.org:pw@attacker.net/fhir-a",
        "https://fhir.a.org/fhir-a-evil",  # a longer path segment
        "https://fhir.a.org/fhir-a/../admin",  # dot segments
        "https://fhir.a.org:8443/fhir-a",  # another port
        "http://fhir.a.org/fhir-a",  # another scheme
    ],
)
async def test_prefix_tricks_do_not_pass_the_allowlist(fhir_server: str) -> None:
    settings = load_settings(fhir_server_allowlist=ALLOWLIST, fhir_allow_http=True)
    with pytest.raises(PrefetchUnobtainable) as refused:
        await _resolve(settings, fhir_server)
    assert "attacker" not in refused.value.diagnostics and "evil" not in refused.value.diagnostics


async def test_a_tenant_allowlist_is_compared_by_component_too() -> None:
    tenant = TenantSettings(
        name="ehr",
        issuer="https://ehr.example.org",
        jku_allowlist=("https://ehr.example.org/j",),
        fhir_server_allowlist=ALLOWLIST,
    )
    with pytest.raises(PrefetchUnobtainable):
        await _resolve(load_settings(), "https://fhir.a.org.attacker.net/fhir-a", tenant)


@pytest.mark.parametrize(
    ("fhir_server", "fetched"),
    [
        ("https://fhir.a.org/fhir-a", "https://fhir.a.org/fhir-a/Patient/p1"),
        ("https://fhir.a.org/fhir-a/r4", "https://fhir.a.org/fhir-a/r4/Patient/p1"),
        ("https://fhir.a.org:443/fhir-a", "https://fhir.a.org/fhir-a/Patient/p1"),
        ("https://FHIR.A.org/fhir-a/", "https://fhir.a.org/fhir-a/Patient/p1"),
    ],
)
async def test_the_allowlisted_base_its_subpaths_and_its_default_port_pass(
    fhir_server: str, fetched: str
) -> None:
    settings = load_settings(fhir_server_allowlist=ALLOWLIST)
    assert await _resolve(settings, fhir_server) == [fetched]


NON_PUBLIC = [
    "http://127.0.0.1:8080/latest/meta-data",
    "http://2130706433/",  # 127.0.0.1 in decimal
    "http://0x7f.1/",  # in hex, two parts
    "http://0177.0.0.1/",  # in octal
    "http://127.1/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[::1]/fhir",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://169.254.169.254/latest/meta-data",  # cloud metadata, link-local
    "http://[fe80::1]/",
    "http://10.1.2.3/fhir",
    "http://172.16.0.1/fhir",
    "http://172.31.255.254/fhir",
    "http://192.168.1.1/fhir",
    "http://100.64.0.1/fhir",  # shared address space
    "http://0.0.0.0/fhir",
    "http://[::]/fhir",
    "http://224.0.0.1/fhir",  # multicast
    "http://localhost:8080/fhir",
    "https://127.0.0.1./fhir",
]


@pytest.mark.parametrize("fhir_server", NON_PUBLIC)
async def test_non_public_addresses_are_refused_without_an_allowlist(fhir_server: str) -> None:
    settings = load_settings(fhir_allow_http=True)
    with pytest.raises(PrefetchUnobtainable) as refused:
        await _resolve(settings, fhir_server)
    assert "R1CDS_FHIR_ALLOW_PRIVATE_NETWORKS" in refused.value.diagnostics


@pytest.mark.parametrize("fhir_server", ["http://127.0.0.1:8080/fhir", "http://2130706433/fhir"])
async def test_the_local_profile_setting_allows_private_networks(
    fhir_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("R1CDS_FHIR_ALLOW_PRIVATE_NETWORKS", "true")
    monkeypatch.setenv("R1CDS_FHIR_ALLOW_HTTP", "true")
    settings = load_settings()
    assert settings.fhir_allow_private_networks
    assert await _resolve(settings, fhir_server) == [f"{fhir_server}/Patient/p1"]


def test_private_networks_are_off_by_default_and_on_under_make_run() -> None:
    assert load_settings().fhir_allow_private_networks is False
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text(encoding="utf-8")
    assert "R1CDS_FHIR_ALLOW_PRIVATE_NETWORKS=$${R1CDS_FHIR_ALLOW_PRIVATE_NETWORKS:-true}" in makefile


@pytest.mark.parametrize(
    "entry", ["https://user@fhir.a.org/fhir", "ftp://fhir.a.org/fhir", "https://fhir.a.org/../x", "not a url"]
)
def test_allowlist_entries_that_are_no_base_url_fail_at_start_up(entry: str) -> None:
    with pytest.raises(ValidationError):
        load_settings(fhir_server_allowlist=(entry,))
    with pytest.raises(ValidationError):
        TenantSettings(
            name="ehr",
            issuer="https://ehr.example.org",
            jku_allowlist=("https://ehr.example.org/j",),
            fhir_server_allowlist=(entry,),
        )


def test_urls_are_normalised_before_comparison() -> None:
    url = parse_server_url("HTTPS://Fhir.A.ORG:443/fhir-a/r4/")
    assert (url.scheme, url.host, url.port, url.segments) == ("https", "fhir.a.org", 443, ("fhir-a", "r4"))
    assert parse_server_url("https://bücher.example/fhir").host == "xn--bcher-kva.example"
    assert parse_server_url("http://0x7f.1/").host == "127.0.0.1"
    assert parse_server_url("http://[::FFFF:127.0.0.1]/").host == "::ffff:7f00:1"


def test_public_addresses_are_not_forbidden() -> None:
    for text in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"):
        assert not forbidden_address(
            parse_server_url(f"https://[{text}]/" if ":" in text else f"https://{text}/").address
        )  # type: ignore[arg-type]


async def test_next_links_into_a_longer_path_segment_are_not_followed() -> None:
    recorder = Recorder()
    page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": "https://fhir.a.org/fhir-a-evil/steal"}],
        "entry": [],
    }
    declaration = ServiceDeclaration(
        id="paged",
        hooks=("patient-view",),
        title="Paged",
        description="Paged.",
        prefetch={"obs": "Observation?patient={{context.patientId}}"},
    )
    request = _request("https://fhir.a.org/fhir-a").model_copy(update={"prefetch": {"obs": page}})
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as http:
        resolved = await PrefetchResolver(load_settings(), http).resolve(declaration, request)
    assert recorder.urls == []
    assert [(i.key, i.code) for i in resolved.issues] == [("obs", "security")]


# --- the connect step: what a host name resolves to ------------------------------------------------


class StubResolver:
    def __init__(self, *answers: str) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        return self.answers


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Notes where it was asked to connect and answers with a canned HTTP response."""

    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        body = b'{"resourceType": "Patient", "id": "p1"}'
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: %d\r\n\r\n" % len(
            body
        )
        return httpcore.AsyncMockStream([head + body])

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def test_a_host_name_resolving_to_loopback_is_refused_before_connecting() -> None:
    resolver = StubResolver("93.184.216.34", "127.0.0.1")
    inner = RecordingBackend()
    backend = GuardedBackend(allow_private=False, resolve=resolver, inner=inner)
    with pytest.raises(ForbiddenAddress):
        await backend.connect_tcp("fhir.a.org", 443)
    assert resolver.asked == ["fhir.a.org"] and inner.connected == []


async def test_fetch_back_through_its_own_client_refuses_a_name_resolving_to_loopback() -> None:
    settings = load_settings()
    async with fhir_client(False, StubResolver("127.0.0.1")) as http:
        with pytest.raises(PrefetchUnobtainable) as refused:
            await PrefetchResolver(settings, http).resolve(
                DECLARATION, _request("https://rebind.example.org/fhir")
            )
    assert "non-public" in refused.value.diagnostics
    assert "rebind" not in refused.value.diagnostics


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    resolver = StubResolver("93.184.216.34")
    inner = RecordingBackend()
    backend = GuardedBackend(allow_private=False, resolve=resolver, inner=inner)
    async with httpcore.AsyncConnectionPool(network_backend=backend) as pool:
        response = await pool.request("GET", "http://fhir.a.org/fhir/Patient/p1")
    assert response.status == 200
    # Pinned: one resolution, and the socket opened to the vetted address, not to the name again.
    assert resolver.asked == ["fhir.a.org"] and inner.connected == [("93.184.216.34", 80)]


async def test_private_networks_setting_lets_the_backend_connect_to_loopback() -> None:
    inner = RecordingBackend()
    backend = GuardedBackend(allow_private=True, resolve=StubResolver("127.0.0.1"), inner=inner)
    await backend.connect_tcp("fhir.local.test", 8080)
    assert inner.connected == [("127.0.0.1", 8080)]


async def test_the_fetch_back_client_follows_no_redirect() -> None:
    async with fhir_client(False) as http:
        assert http.follow_redirects is False


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "all_proxy"])
async def test_a_proxy_in_the_environment_is_never_used(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy resolves the host itself, so the address check and the pinning would not hold through it.
    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    async with fhir_client(False, StubResolver("127.0.0.1")) as http:
        assert http._mounts == {}
        with pytest.raises(httpx.ConnectError, match="resolves to a non-public address"):
            await http.get("https://fhir.example.org/fhir/Patient/1")
