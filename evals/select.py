"""Deterministic item selection: a seeded shuffle per group, interleaved, cut to the limit."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["select"]

_T = TypeVar("_T")


def select(items: Sequence[_T], group: Callable[[_T], str], limit: int | None, seed: int) -> list[_T]:
    """Every item in file order when there is no limit; else `limit` items, the groups taking turns.

    Within each group the order is a shuffle seeded with (seed, group), so a slice is a fair sample of each
    dataset rather than its first rows, and the same seed always picks the same items. Taking turns keeps a
    small slice spread over every dataset asked for.
    """
    if limit is None or limit >= len(items):
        return list(items)
    groups: dict[str, list[_T]] = {}
    for item in items:
        groups.setdefault(group(item), []).append(item)
    for name, members in groups.items():
        random.Random(f"{seed}:{name}").shuffle(members)  # noqa: S311 - sampling, not secrecy
    chosen: list[_T] = []
    cursors = dict.fromkeys(groups, 0)
    while len(chosen) < limit:
        for name, members in groups.items():
            if len(chosen) >= limit:
                break
            if cursors[name] < len(members):
                chosen.append(members[cursors[name]])
                cursors[name] += 1
    return chosen
