"""Reads the versioned data files packaged under plugin/knowledge/, the one way every loader does."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

__all__ = ["read_knowledge_json"]


def read_knowledge_json(
    name: str,
    error: type[Exception],
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> object:
    """The decoded `plugin/knowledge/<name>`; `error` (the loader's own exception) names a missing or
    malformed file, so a bad release fails at first use with the file named."""
    resource = resources.files("plugin").joinpath("knowledge", name)
    try:
        return json.loads(resource.read_text(encoding="utf-8"), object_pairs_hook=object_pairs_hook)
    except (OSError, json.JSONDecodeError) as exc:
        raise error(f"cannot read knowledge/{name}: {exc}") from exc
