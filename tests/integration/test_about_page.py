"""The published model card over real HTTP: /about (HTML) and /about.json agree, are complete and are safe."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cds_hooks.about import model_card_for, router
from cds_hooks.app import create_app
from cds_hooks.settings import load_settings
from plugin.model_card import ModelCardInputs
from tests.support.asgi_server import ServedApp, serve_asgi, unused_loopback_url

pytestmark = pytest.mark.integration

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
STATUS_LABELS = {
    "provided": "Provided",
    "not-disclosed-by-developer": "Not disclosed by developer",
    "not-applicable": "Not applicable",
    "not-yet-measured": "Not yet measured",
}
# Elements that load something from elsewhere, or run code: none may appear on the page.
LOADING_TAGS = {
    "script",
    "img",
    "link",
    "iframe",
    "frame",
    "object",
    "embed",
    "video",
    "audio",
    "source",
    "base",
}


class Page(HTMLParser):
    """Collects what the assertions need: tags, links, ids, and the text of each attribute row."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: dict[str, list[str]] = {}
        self.alerts: list[str] = []
        self.styles: list[str] = []
        self._row: str | None = None
        self._in_alert = False
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        row_id = attributes.get("id") or ""
        if tag == "tr" and row_id.startswith("attr-"):
            self._row = row_id.removeprefix("attr-")
            self.rows[self._row] = []
        self._in_alert = self._in_alert or attributes.get("role") == "alert"
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        if tag == "p":
            self._in_alert = False
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self.rows[self._row].append(data)
        if self._in_alert:
            self.alerts.append(data)
        if self._in_style:
            self.styles.append(data)

    def row_text(self, attribute_id: str) -> str:
        return "".join(self.rows[attribute_id])


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


@contextmanager
def serve_about(inputs: ModelCardInputs | None = None) -> Iterator[ServedApp]:
    """A bare FastAPI app with only the about router and the settings it reads."""

    def build(url: str) -> Any:
        app = FastAPI()
        app.state.settings = load_settings(public_base_url=url)
        if inputs is not None:
            app.state.model_card_inputs = inputs
        app.include_router(router)
        return app

    with serve_asgi(build, name="about") as served:
        yield served


DISTILL = ModelCardInputs(
    backend="sglang",
    model="deepseek-r1-distill-qwen-7b",
    prompt_versions={"r1-chart-review": "chart-review/2+instructions/2#0123456789ab"},
    samples=5,
    min_agreement=0.6,
)


def test_html_and_json_agree_on_every_attribute() -> None:
    with serve_about(DISTILL) as api, httpx.Client(base_url=api.url) as client:
        page_response = client.get("/about", headers={"Accept": BROWSER_ACCEPT})
        json_response = client.get("/about.json")
    assert page_response.status_code == json_response.status_code == 200
    assert page_response.headers["content-type"] == "text/html; charset=utf-8"
    assert json_response.headers["content-type"] == "application/json"
    document = json_response.json()
    page = parse(page_response.text)

    groups = document["source_attributes"]
    assert len(groups) == 9
    attributes = [a for g in groups for a in g["attributes"]]
    assert len(attributes) == 31
    assert list(page.rows) == [a["id"] for a in attributes]
    for attribute in attributes:
        text = page.row_text(attribute["id"])
        assert attribute["value"] in text
        assert attribute["name"] in text
        assert attribute["citation"] in text
        assert STATUS_LABELS[attribute["status"]] in text  # the status is visible, not only a colour
    ids = {attrs.get("id") for _, attrs in page.tags}
    assert {f"hti1-{g['id']}" for g in groups} <= ids
    assert {
        "model",
        "intended-use",
        "out-of-scope-uses",
        "known-risks",
        "validation",
        "source-attributes",
    } <= ids
    for section in ("intended_use", "out_of_scope"):
        for item in document[section]:
            assert item in page_response.text.replace("&quot;", '"').replace("&#x27;", "'")
    assert document["model"]["family"] == "deepseek-r1-distill"
    assert document["model"]["label"] in page_response.text
    assert "chart-review/2+instructions/2#0123456789ab" in page_response.text
    assert page.alerts == []  # a clinically meaningful model gets no demo warning


def is_icon(tag: str, attrs: dict[str, str | None]) -> bool:
    """The one thing the page loads: this service's own icon, from its own origin."""
    return tag == "link" and attrs.get("rel") == "icon" and attrs.get("href") == "/favicon.ico"


def test_page_loads_nothing_from_elsewhere() -> None:
    with serve_about(DISTILL) as api:
        response = httpx.get(f"{api.url}/about")
    page = parse(response.text)
    assert not [tag for tag, attrs in page.tags if tag in LOADING_TAGS and not is_icon(tag, attrs)]
    assert all(
        not name.startswith("on") and name not in ("src", "srcset")
        for _, attrs in page.tags
        for name in attrs
    )
    style = "".join(page.styles)
    assert style and "url(" not in style and "@import" not in style
    hrefs = [attrs["href"] for tag, attrs in page.tags if tag == "a" and attrs.get("href")]
    assert hrefs and all(h == "about.json" or (h or "").startswith("https://") for h in hrefs)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_text_from_the_deployment_is_escaped() -> None:
    hostile = ModelCardInputs(
        backend="openai",
        model='<script>alert("x")</script>',
        contact="<b>CDS team</b> & \"friends\" <img src='https://evil.example/x.png'>",
    )
    with serve_about(hostile) as api:
        page_text = httpx.get(f"{api.url}/about").text
        document = httpx.get(f"{api.url}/about.json").json()
    assert "<script>" not in page_text
    assert "<img" not in page_text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page_text
    assert "&lt;b&gt;CDS team&lt;/b&gt; &amp; &quot;friends&quot;" in page_text
    page = parse(page_text)
    assert not [tag for tag, attrs in page.tags if tag in LOADING_TAGS and not is_icon(tag, attrs)]
    assert '<script>alert("x")</script>' in document["model"]["model"]
    assert hostile.contact is not None
    assert hostile.contact in page.row_text("developer")


def test_demo_model_says_it_is_not_clinically_meaningful() -> None:
    with serve_about(ModelCardInputs(backend="llamacpp", model="default")) as api:
        page_text = httpx.get(f"{api.url}/about").text
        document = httpx.get(f"{api.url}/about.json").json()
    assert document["model"]["family"] == "demo"
    assert document["model"]["clinically_meaningful"] is False
    assert "not clinically meaningful" in document["model"]["label"]
    alert = " ".join(parse(page_text).alerts)
    assert "not clinically meaningful" in alert
    assert "do not use them for patient care" in alert


def test_accept_header_selects_json_on_about() -> None:
    with serve_about(DISTILL) as api, httpx.Client(base_url=api.url) as client:
        as_json = client.get("/about", headers={"Accept": "application/json"})
        preferred = client.get("/about", headers={"Accept": "text/html;q=0.5, application/json"})
        browser = client.get("/about", headers={"Accept": BROWSER_ACCEPT})
        anything = client.get("/about", headers={"Accept": "*/*"})
        canonical = client.get("/about.json")
    assert as_json.headers["content-type"] == preferred.headers["content-type"] == "application/json"
    assert as_json.json() == preferred.json() == canonical.json()
    assert browser.headers["content-type"].startswith("text/html")
    assert anything.headers["content-type"].startswith("text/html")
    assert as_json.headers["vary"] == "Accept"


def test_without_inputs_the_card_says_the_model_was_not_reported() -> None:
    with serve_about() as api:
        document = httpx.get(f"{api.url}/about.json").json()
    assert document["model"]["family"] == "unreported"
    assert len([a for g in document["source_attributes"] for a in g["attributes"]]) == 31
    developer = document["source_attributes"][0]["attributes"][0]["value"]
    assert "not told which model" in developer


def test_real_app_serves_the_card_once_the_router_is_included() -> None:
    """The composition root's wiring: create_app, include_router, optional model_card_inputs."""
    inputs = ModelCardInputs(backend="sglang", model="deepseek-r1", samples=5, min_agreement=0.6)
    apps: list[FastAPI] = []

    def build(url: str) -> Any:
        # Nothing here talks to Redis: the lifespan only creates its client.
        app = create_app(
            load_settings(
                public_base_url=url, redis_url=unused_loopback_url().replace("http://", "redis://") + "/0"
            )
        )
        app.include_router(router)
        app.state.model_card_inputs = inputs
        apps.append(app)
        return app

    with serve_asgi(build, name="r1cds-api") as api, httpx.Client(base_url=api.url) as client:
        page = client.get("/about")
        document = client.get("/about.json").json()
        discovery = client.get("/cds-services")
    assert page.status_code == 200
    assert discovery.status_code == 200
    assert document["model"]["family"] == "deepseek-r1"
    assert document["version"] == model_card_for(apps[0].state).version
    assert "MIT" in document["model"]["summary"]
    assert "Not clinically validated" in page.text
