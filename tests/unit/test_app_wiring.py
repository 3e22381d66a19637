"""Settings reach the services they configure when the app factory wires them."""

from __future__ import annotations

import pytest

from cds_hooks.app import create_app
from cds_hooks.settings import load_settings
from plugin.catalog import RuleService

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("include", [False, True])
def test_free_text_setting_reaches_every_shipped_service(include: bool) -> None:
    app = create_app(load_settings(auth_disabled=True, context_include_free_text=include))
    services = list(app.state.registry)
    assert {s.declaration.id for s in services} == {
        "r1-chart-review",
        "r1-order-review",
        "r1-discharge-review",
    }
    for service in services:
        assert isinstance(service, RuleService)
        assert service.context_options.include_free_text is include
