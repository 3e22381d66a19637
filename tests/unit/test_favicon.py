"""The pages' icon: /favicon.ico answers with an SVG, and the preview, evidence and about pages link it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from xml.etree import ElementTree

import httpx
import pytest

from cds_hooks.app import create_app
from cds_hooks.evidence_page import HEADERS, render_message
from cds_hooks.settings import load_settings

pytestmark = pytest.mark.unit

LINK = '<link rel="icon" href="/favicon.ico" type="image/svg+xml">'


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: these routes read nothing it creates (no Redis, no HTTP client).
    app = create_app(load_settings(auth_disabled=True, preview_enabled=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r1cds.test") as c:
        yield c


async def test_favicon_is_an_svg_icon(client: httpx.AsyncClient) -> None:
    response = await client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["x-content-type-options"] == "nosniff"
    root = ElementTree.fromstring(response.content)  # noqa: S314 - our own constant, not untrusted XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert not any(element.tag.endswith("script") for element in root.iter())


async def test_every_page_links_the_icon_and_its_policy_lets_it_load(client: httpx.AsyncClient) -> None:
    about = await client.get("/about", headers={"Accept": "text/html"})
    preview = await client.get("/preview")
    for page in (about, preview):
        assert page.status_code == 200
        assert LINK in page.text
        assert "img-src 'self'" in page.headers["content-security-policy"]
    assert LINK in render_message("Review not found", "No review has this link.")
    assert "img-src 'self'" in HEADERS["Content-Security-Policy"]
