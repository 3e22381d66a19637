"""Answer extraction: JSON, boxed, stated, bare and option-text answers; unreadable ones are None."""

from __future__ import annotations

import pytest

from evals.extract import extract_choice

pytestmark = pytest.mark.unit

MCQ = (("A", "Cisplatin"), ("B", "Vincristine"), ("C", "Bleomycin"), ("D", "Methotrexate"))
YES_NO = (("yes", "yes"), ("no", "no"), ("maybe", "maybe"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"answer": "C"}', "C"),
        ('{"answer": "c"}', "C"),
        ('```json\n{"answer": "D"}\n```', "D"),
        ('{"answer": "B. Vincristine"}', "B"),
        ("Weighing the options... \\boxed{A}", "A"),
        ("First \\boxed{B}, on reflection \\boxed{\\text{D}}", "D"),
        ("The answer is C.", "C"),
        ("Final answer: (B)", "B"),
        ("Réponse : D", "D"),
        ("उत्तर: A", "A"),
        ("**B**", "B"),
        ("(D)", "D"),
        ("I would give methotrexate here.", "D"),
        ("", None),
        ("I do not know.", None),
        ("Cisplatin or bleomycin, hard to say", None),
        ('{"answer": "E"}', None),
    ],
)
def test_extracts_the_chosen_letter(content: str, expected: str | None) -> None:
    assert extract_choice(content, MCQ) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [('{"answer": "maybe"}', "maybe"), ("The answer is no", "no"), ("Yes", "yes"), ("unclear", None)],
)
def test_extracts_pubmedqa_labels(content: str, expected: str | None) -> None:
    assert extract_choice(content, YES_NO) == expected
