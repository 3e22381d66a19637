"""Override suppression: a rule card a clinician overrode with a reason is not shown again for a while.

The policy, in one place:

- **Recorded** when feedback says `overridden` with a reason, for the card uuid it names, per tenant, for
  `ttl_s` (R1CDS_OVERRIDE_SUPPRESSION_HOURS) from the first such feedback. Feedback names only the uuid and
  cards are not stored server-side, so the feedback path cannot tell a rule card from any other: it records
  any uuid-shaped card id, and the hook path decides what a record can hide. A record for an AI card, an
  unknown or a critical card's uuid is never consulted and expires unused.
- **Applied** to rule cards only (topic system urn:r1cds:rule) that are not critical. "Same finding, same
  facts" is the card uuid (plugin.rules.cards.rule_card_uuid: rule, patient, cited resources and their
  values, summary, severity, knowledge version), so a changed fact gives a new uuid and the card shows.
- **Critical cards are never suppressed**: a critical finding (a contraindication, a dangerous potassium)
  must reach whoever opens the chart next, and an override given under one clinician's circumstances (a
  monitored inpatient, a specialist's plan) must not silence it for the next prescriber.
- **Fails open**: a store that cannot be read or written costs the suppression, never a card. The log says
  the exception class only (no uuid, tenant or patient).

What was suppressed goes into the hook call's audit record (`suppressed`), so it stays reviewable.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from plugin.cards import Card
from plugin.feedback import FeedbackRecord
from plugin.rules.cards import RULE_SYSTEM

__all__ = ["MemorySuppressionStore", "OverrideSuppression", "SuppressionStore", "suppressible"]

log = logging.getLogger(__name__)

_UUID: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class SuppressionStore(Protocol):
    async def suppress(self, tenant: str | None, card_uuid: str, ttl_s: float) -> None:
        """Suppress the card for ttl_s from now, unless it already is (a retry must not extend it)."""
        ...

    async def suppressed(self, tenant: str | None, card_uuids: Sequence[str]) -> frozenset[str]:
        """Those of card_uuids that are suppressed now."""
        ...


class MemorySuppressionStore:
    """Suppressions in process, on an injected clock; for unit tests and single-process demos."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.until: dict[tuple[str | None, str], float] = {}

    async def suppress(self, tenant: str | None, card_uuid: str, ttl_s: float) -> None:
        now = self._clock()
        if self.until.get((tenant, card_uuid), now) <= now:
            self.until[(tenant, card_uuid)] = now + ttl_s

    async def suppressed(self, tenant: str | None, card_uuids: Sequence[str]) -> frozenset[str]:
        now = self._clock()
        return frozenset(u for u in card_uuids if self.until.get((tenant, u), now) > now)


def suppressible(card: Card) -> bool:
    """A card an override may hide: a rule card, with a uuid, that is not critical."""
    topic = card.source.topic
    return (
        card.uuid is not None
        and card.indicator != "critical"
        and topic is not None
        and topic.system == RULE_SYSTEM
    )


class OverrideSuppression:
    """Records overrides (feedback path) and drops suppressed rule cards from answers (hook path)."""

    def __init__(self, store: SuppressionStore, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError("a suppression needs a positive period; leave it out to disable it")
        self._store = store
        self._ttl_s = ttl_s
        self.failures = 0  # store errors so far, each of which showed the cards or lost one suppression

    async def record(self, item: FeedbackRecord) -> bool:
        """Suppress the card the feedback overrode with a reason; True when a suppression was stored."""
        if item.outcome != "overridden" or item.override_reason is None or not _UUID.match(item.card_uuid):
            return False
        try:
            await self._store.suppress(item.tenant, item.card_uuid, self._ttl_s)
        except Exception as exc:  # any store failure: the feedback itself is stored, the card shows again
            self._failed("not recorded", exc)
            return False
        return True

    async def apply(
        self, tenant: str | None, cards: tuple[Card, ...]
    ) -> tuple[tuple[Card, ...], tuple[str, ...]]:
        """The cards to show and the uuids of those suppressed, in answer order."""
        candidates = [card.uuid for card in cards if suppressible(card) and card.uuid is not None]
        if not candidates:
            return cards, ()
        try:
            hidden = await self._store.suppressed(tenant, candidates)
        except Exception as exc:  # fail open: an unreadable store shows every card
            self._failed("not applied; cards shown", exc)
            return cards, ()
        if not hidden:
            return cards, ()
        shown = tuple(c for c in cards if not (suppressible(c) and c.uuid in hidden))
        dropped = tuple(c.uuid for c in cards if suppressible(c) and c.uuid in hidden and c.uuid is not None)
        return shown, dropped

    def _failed(self, what: str, exc: Exception) -> None:
        self.failures += 1
        # The class only: a message could carry a key, and keys name card uuids. Once, then every
        # hundredth, so that a Redis outage does not write a line per hook call.
        if self.failures == 1 or self.failures % 100 == 0:
            log.warning(
                "override suppression %s (%s); %d store failure(s) so far",
                what,
                type(exc).__name__,
                self.failures,
            )
