"""Shared real parts for integration tests: a redis-server, EHR signing keys, and the app over HTTP."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser

from cds_hooks.app import create_app
from cds_hooks.settings import Settings, TenantSettings, load_settings
from plugin.services import ServiceRegistry
from tests.support.asgi_server import ServedApp, serve_asgi
from tests.support.browser import chromium_available, headless_chromium
from tests.support.jwt_factory import SigningKey, es384_key, jwks, rs384_key
from tests.support.redis_server import RedisHandle, running_redis

EHR_ISSUER = "https://ehr.test.invalid"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisHandle]:
    with running_redis() as handle:
        yield handle


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Debian chromium per page-test module; each test opens its own context.

    Module scope, not session: Playwright's sync API keeps an event loop running in this thread while it
    is open, and pytest-asyncio cannot run the async tests of later modules beside it.
    """
    if not chromium_available():
        if os.environ.get("R1CDS_REQUIRE_CHROMIUM") == "1":
            pytest.fail("R1CDS_REQUIRE_CHROMIUM=1 but Debian's chromium is not installed")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium chromium-driver)")
    with headless_chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def ehr_keys() -> tuple[SigningKey, SigningKey]:
    return es384_key("ehr-es384"), rs384_key("ehr-rs384")


ServeApp = Callable[..., AbstractContextManager[ServedApp]]


@pytest.fixture
def serve_app(redis_server: RedisHandle, ehr_keys: tuple[SigningKey, SigningKey]) -> ServeApp:
    """Serve the real app over loopback HTTP with one EHR tenant trusting the test keys."""

    @contextmanager
    def serve(registry: ServiceRegistry | None = None, **overrides: Any) -> Iterator[ServedApp]:
        def build(url: str) -> Any:
            settings: dict[str, Any] = {
                "public_base_url": url,
                "redis_url": redis_server.url,
                "fhir_allow_http": True,
                "fhir_allow_private_networks": True,  # the FHIR servers of the tests listen on loopback
                "tenants": (TenantSettings(name="test-ehr", issuer=EHR_ISSUER, jwks=jwks(*ehr_keys)),),
                **overrides,
            }
            return create_app(load_settings(**settings), registry)

        with serve_asgi(build, name="r1cds-api") as served:
            yield served

    return serve


def settings_of(served: ServedApp) -> Settings:
    app: Any = served.server.config.app
    settings: Settings = app.state.settings
    return settings
