"""The card preview: fire any hook for a patient and see the cards as an EHR shows them (GET /preview).

`install_preview(app, settings, registry)` mounts it when `settings.preview_enabled`; the app factory first
passes its settings through `enable_preview`, which adds the preview key's tenant (cds_hooks.preview.key).
"""

from __future__ import annotations

from fastapi import FastAPI

from cds_hooks.preview.handler import PreviewHandler
from cds_hooks.preview.key import PREVIEW_TENANT, PreviewKey, enable_preview
from cds_hooks.preview.router import router
from cds_hooks.settings import Settings
from plugin.services import ServiceRegistry

__all__ = ["PREVIEW_PATH", "PREVIEW_TENANT", "PreviewKey", "enable_preview", "install_preview"]

PREVIEW_PATH = "/preview"


def install_preview(app: FastAPI, settings: Settings, registry: ServiceRegistry, key: PreviewKey) -> None:
    """Serve the page and its API on `app`, calling the hook endpoints with `key`."""
    app.state.preview = PreviewHandler(settings, registry, key)
    app.include_router(router)
