"""How findings name drugs and cite handles: shared by every rule module so cards read alike."""

from __future__ import annotations

from collections.abc import Iterable

from plugin.rules.model import Exposure

__all__ = ["handles", "names", "proposed", "short"]


def names(exposures: Iterable[Exposure]) -> str:
    """The drugs as a card says them: ingredients joined by " + ", each drug once, in order."""
    seen: dict[str, None] = {}  # ordered, and a lookup that stays cheap with thousands of drafts
    for exposure in exposures:
        seen.setdefault(" + ".join(exposure.ingredients) or exposure.label)
    return ", ".join(seen)


def proposed(*groups: Iterable[Exposure]) -> tuple[str, ...]:
    """Handles of the draft or proposed orders among the groups, sorted."""
    return tuple(sorted({e.handle for group in groups for e in group if e.proposed}))


def handles(*groups: Iterable[Exposure]) -> tuple[str, ...]:
    """Handles of every exposure in the groups, sorted."""
    return tuple(sorted({e.handle for group in groups for e in group}))


def short(text: str, limit: int = 139) -> str:
    """The text cut to `limit` characters with an ellipsis (a card summary stays under 140)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
