"""Reviews for the memory broker beside the port: the real ReviewService over a scripted model, as a worker runs it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from inference.parsing import parse_sample
from inference.prompts import build_prompt
from plugin.ai_review import ReviewTicket
from plugin.context.fingerprint import ReviewVersion
from plugin.context.model import BuiltContext, HandleMap
from plugin.governance import GovernancePolicy
from plugin.model_port import ScriptedModel
from plugin.review import ReviewOutcome, ReviewService
from tests.support import governance_corpus as corpus


def version(service_id: str) -> ReviewVersion:
    return ReviewVersion(service_id, "prompt-1", "scripted", corpus.knowledge().version)


def scripted_runner(
    model: ScriptedModel, gate: asyncio.Event | None = None
) -> Callable[[ReviewTicket], Awaitable[ReviewOutcome]]:
    """Two samples per review; with a gate, each review waits for it (a review still running)."""
    service = ReviewService(
        model, build_prompt, parse_sample, corpus.knowledge(), GovernancePolicy(), samples=2
    )

    async def run(ticket: ReviewTicket) -> ReviewOutcome:
        if gate is not None:
            await gate.wait()
        # As a worker does: the stored context only, no references, no patient.
        return await service.review(ticket.service_id, BuiltContext(ticket.context, HandleMap()), None)

    return run
