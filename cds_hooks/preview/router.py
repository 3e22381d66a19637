"""Preview routes, each one line delegating to the PreviewHandler; mounted only when the preview is enabled."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from cds_hooks.preview.handler import PreviewHandler


async def _preview(request: Request) -> PreviewHandler:
    handler: PreviewHandler = request.app.state.preview
    return handler


Preview = Annotated[PreviewHandler, Depends(_preview)]

router = APIRouter(prefix="/preview", include_in_schema=False)


@router.get("", response_class=Response)
async def page(handler: Preview) -> Response:
    return handler.page()


@router.get("/static/{name}", response_class=Response)
async def asset(name: str, handler: Preview) -> Response:
    return handler.asset(name)


@router.post("/api/prepare", response_class=Response)
async def prepare(request: Request, handler: Preview) -> Response:
    return await handler.prepare(request)


@router.post("/api/token", response_class=Response)
async def token(request: Request, handler: Preview) -> Response:
    return await handler.token(request)


@router.post("/api/draft", response_class=Response)
async def draft(request: Request, handler: Preview) -> Response:
    return await handler.draft(request)


@router.post("/api/bundle", response_class=Response)
async def bundle(request: Request, handler: Preview) -> Response:
    return await handler.bundle(request)
