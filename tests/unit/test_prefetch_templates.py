"""Prefetch template rendering: context tokens, the four user tokens, Bundle paths, unrenderable tokens."""

from __future__ import annotations

import pytest

from cds_hooks.prefetch import TemplateUnrenderable, is_top_n, render_template

pytestmark = pytest.mark.unit

CONTEXT = {
    "userId": "PractitionerRole/role 7",
    "patientId": "p-1",
    "encounterId": "e.9",
    "selections": ["MedicationRequest/a", "MedicationRequest/b"],
    "draftOrders": {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "MedicationRequest", "id": "a"}},
            {"resource": {"resourceType": "ServiceRequest", "id": "s"}},
            {"resource": {"resourceType": "MedicationRequest", "id": "b"}},
        ],
    },
}


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("Patient/{{context.patientId}}", "Patient/p-1"),
        (
            "Encounter?_id={{ context.encounterId }}&patient={{context.patientId}}",
            "Encounter?_id=e.9&patient=p-1",
        ),
        ("PractitionerRole/{{userPractitionerRoleId}}", "PractitionerRole/role%207"),
        ("MedicationRequest?_id={{context.draftOrders.MedicationRequest.id}}", "MedicationRequest?_id=a,b"),
        ("X?refs={{context.selections}}", "X?refs=MedicationRequest%2Fa,MedicationRequest%2Fb"),
        ("Observation?patient={{context.patientId}}&code=4548-4", "Observation?patient=p-1&code=4548-4"),
    ],
)
def test_tokens_render(template: str, rendered: str) -> None:
    assert render_template(template, CONTEXT) == rendered


@pytest.mark.parametrize(
    "template",
    [
        "Practitioner/{{userPractitionerId}}",  # the user is a PractitionerRole
        "Encounter/{{context.missing}}",
        "X?{{context.draftOrders.Procedure.id}}",
        "X?{{context.draftOrders}}",
        "X?{{unknownToken}}",
    ],
)
def test_unrenderable_tokens_are_reported(template: str) -> None:
    with pytest.raises(TemplateUnrenderable):
        render_template(template, CONTEXT)


def test_injected_query_characters_are_escaped() -> None:
    context = {**CONTEXT, "patientId": "p1&_include=*"}
    assert (
        render_template("Condition?patient={{context.patientId}}", context)
        == "Condition?patient=p1%26_include%3D%2A"
    )


@pytest.mark.parametrize(
    ("query", "top_n"),
    [
        ("Encounter?patient=1&_sort=-date&_count=10", True),
        ("Observation?patient=1&_count=7", False),
        ("Observation?patient=1&_sort=-date", False),
        ("Patient/1", False),
        ("Observation?patient=1&x_count=2&_sort=date", False),
    ],
)
def test_sorted_queries_with_a_page_size_ask_for_the_first_page_only(query: str, top_n: bool) -> None:
    assert is_top_n(query) is top_n
