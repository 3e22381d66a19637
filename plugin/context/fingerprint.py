"""The review key: a stable hash of the de-identified facts and of everything that shapes the AI answer.

Built from the normalised facts only, so it ignores entry order, resource ids, handles and every field
the context does not keep (narrative, meta, identifiers); it changes when a clinically relevant fact
changes. It never includes the hook name: order-select and order-sign of the same orders share a key,
which is what makes the order-sign review a cache hit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from plugin.context.model import ClinicalContext

# Fields that identify a fact's position or provenance rather than its clinical content.
_EXCLUDED = frozenset({"handle", "evidence"})


@dataclass(frozen=True, slots=True)
class ReviewVersion:
    """What besides the chart decides the answer; any change must give a new key."""

    service_id: str
    prompt_version: str
    model_id: str
    knowledge_base_version: str


def _clinical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clinical(v) for k, v in sorted(value.items()) if k not in _EXCLUDED}
    if isinstance(value, list | tuple):
        items = [_clinical(v) for v in value]
        # Facts are compared as sets: their order in the context follows content already, but sorting
        # the canonical forms makes the key independent of that choice too.
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return value


def fingerprint(context: ClinicalContext, version: ReviewVersion) -> str:
    facts = asdict(context)
    facts.pop("skipped")  # what we could not read is reported, but does not change the review
    document = {"version": asdict(version), "facts": _clinical(facts)}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
