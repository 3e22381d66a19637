"""The public base URL: as set, else derived from host and port, so that every link follows R1CDS_PORT."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cds_hooks.preview import enable_preview
from cds_hooks.settings import derived_base, load_settings

pytestmark = pytest.mark.unit

URL_SETTINGS = ("R1CDS_HOST", "R1CDS_PORT", "R1CDS_PUBLIC_BASE_URL")
ANY_INTERFACE = "0.0.0.0"  # noqa: S104 - a settings value here; nothing binds to it


@pytest.fixture(autouse=True)
def _no_url_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tests set what they mean; nothing inherited from the shell may decide the outcome.
    for name in URL_SETTINGS:
        monkeypatch.delenv(name, raising=False)


def test_nothing_set_keeps_the_old_default() -> None:
    settings = load_settings()
    assert settings.public_base_url is None
    assert settings.public_base == "http://127.0.0.1:8000"


def test_port_alone_moves_the_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R1CDS_PORT", "9123")
    assert load_settings().public_base == "http://127.0.0.1:9123"
    assert load_settings(port=9124).public_base == "http://127.0.0.1:9124"  # as `--port` passes it


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("localhost", "http://localhost:8000"),
        ("cds.internal.example", "http://cds.internal.example:8000"),
        ("10.1.2.3", "http://10.1.2.3:8000"),
    ],
)
def test_host_alone_moves_the_base(monkeypatch: pytest.MonkeyPatch, host: str, base: str) -> None:
    monkeypatch.setenv("R1CDS_HOST", host)
    assert load_settings().public_base == base


@pytest.mark.parametrize("host", [ANY_INTERFACE, "::", "[::]", "0:0:0:0:0:0:0:0", ""])
def test_a_wildcard_host_becomes_loopback(host: str) -> None:
    assert load_settings(host=host, port=9200).public_base == "http://127.0.0.1:9200"


def test_the_docker_image_environment_gives_loopback_on_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    # docker/Dockerfile sets these two; compose adds R1CDS_PUBLIC_BASE_URL for what EHRs call.
    monkeypatch.setenv("R1CDS_HOST", ANY_INTERFACE)
    monkeypatch.setenv("R1CDS_PORT", "8000")
    assert load_settings().public_base == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("::1", "http://[::1]:9300"),
        ("[::1]", "http://[::1]:9300"),
        ("2001:db8::5", "http://[2001:db8::5]:9300"),
    ],
)
def test_an_ipv6_host_is_bracketed(host: str, base: str) -> None:
    assert load_settings(host=host, port=9300).public_base == base


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("https://cds.example.org", "https://cds.example.org"),
        ("https://cds.example.org/", "https://cds.example.org"),
        ("https://cds.example.org/r1/", "https://cds.example.org/r1"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),  # even when it names another port
    ],
)
def test_an_explicit_url_wins_as_is(monkeypatch: pytest.MonkeyPatch, url: str, base: str) -> None:
    monkeypatch.setenv("R1CDS_HOST", ANY_INTERFACE)
    monkeypatch.setenv("R1CDS_PORT", "9400")
    monkeypatch.setenv("R1CDS_PUBLIC_BASE_URL", url)
    assert load_settings().public_base == base


def test_an_empty_url_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R1CDS_PUBLIC_BASE_URL", "")
    monkeypatch.setenv("R1CDS_PORT", "9500")
    assert load_settings().public_base == "http://127.0.0.1:9500"


@pytest.mark.parametrize("host", ["fe80::1%eth0", "two words"])
def test_a_host_no_url_can_hold_is_refused_at_load(host: str) -> None:
    with pytest.raises(ValidationError, match="R1CDS_PUBLIC_BASE_URL"):
        load_settings(host=host)
    assert load_settings(host=host, public_base_url="https://cds.example.org").public_base == (
        "https://cds.example.org"
    )


def test_a_copy_with_another_port_follows_it() -> None:
    # `r1cds up` adjusts settings with model_copy; a derived base is computed, never stored.
    moved = load_settings().model_copy(update={"port": 9600})
    assert moved.public_base == "http://127.0.0.1:9600"
    assert derived_base("127.0.0.1", 9600) == moved.public_base


def test_the_preview_key_signs_as_the_derived_base() -> None:
    settings, key = enable_preview(load_settings(port=9700, preview_enabled=True))
    assert key.issuer == "http://127.0.0.1:9700/preview"
    assert key.issuer in {tenant.issuer for tenant in settings.all_tenants()}
    assert settings.public_base == "http://127.0.0.1:9700"  # the copy with the tenant keeps following
