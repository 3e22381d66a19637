"""Readers for the shared evaluation data, in place: items without answer-revealing fields, plus file hashes.

Every reader follows shared/eval-data/SOURCES.md:

- MedQA-USMLE (`medqa-usmle/phrases_no_exclude_test.jsonl`): question, options A-D, gold `answer_idx`;
  subject = `meta_info` (step1, step2&3). `answer` (the gold text) and `metamap_phrases` never reach a prompt.
- MedMCQA (`medmcqa/dev.json`, JSON Lines): `opa`..`opd` as A-D, gold `cop` 1-4; subject = `subject_name`.
  `exp` often states the answer: it is never read into an item.
- PubMedQA (`pubmedqa/test_set.json` + `test_ground_truth.json`): the PQA-L test PMIDs, question plus the
  abstract's CONTEXTS (the reasoning-required setting), gold `final_decision` yes/no/maybe. `LONG_ANSWER`
  (the abstract's conclusion) and `final_decision` are never put in a prompt.
- MMLU medical (`mmlu-medicine/<subject>_test.csv`, no header: question,A,B,C,D,answer).
- Translated MMLU (`mmlu-medicine-translated/mmlu_<Language>_test_<subject>_test.csv`): row i is the
  translation of English row i. Rows SOURCES.md flags as unfaithful (package file translation_flags.json,
  transcribed from its table) are excluded unless asked for, and any row carrying the hallucinated
  "IP spoofing" question is excluded whatever the table says.
- MedSafetyBench (`medsafetybench/{gpt4,llama2}/med_safety_demonstrations_category_<k>.csv`): the harmful
  request only; the GPT-4 `safe_response` is a reference answer and never enters a prompt.

Item ids name the dataset and the row within the shared file (`medmcqa:17`), so a cached result stays tied
to its row; the file's SHA-256, recorded with every run, pins which file that row came from.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

from evals.errors import DataError

__all__ = [
    "LANGUAGES",
    "MMLU_SUBJECTS",
    "QA_DATASETS",
    "McqItem",
    "ParallelItem",
    "SafetyItem",
    "dataset_files",
    "file_sha256",
    "load_parallel",
    "load_qa",
    "load_safety",
]

Language = Literal["en", "fr", "es", "hi"]
LANGUAGES: Final[tuple[Language, ...]] = ("en", "fr", "es", "hi")
_LANGUAGE_NAMES: Final[Mapping[Language, str]] = {"fr": "French", "es": "Spanish", "hi": "Hindi"}
MMLU_SUBJECTS: Final = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
)
QA_DATASETS: Final = ("medqa-usmle", "medmcqa", "pubmedqa", "mmlu-medicine")
LETTERS: Final = ("A", "B", "C", "D")
PUBMEDQA_LABELS: Final = ("yes", "no", "maybe")
_SPOOFING: Final = re.compile(r"ip\s*spoofing", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class McqItem:
    """One closed question: options as (key, text) pairs, the gold key, optional reading context."""

    id: str
    dataset: str
    subject: str
    question: str
    options: tuple[tuple[str, str], ...]
    gold: str
    context: tuple[str, ...] = ()
    language: Language = "en"

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.options)


@dataclass(frozen=True, slots=True)
class ParallelItem:
    """The same MMLU item in every language asked for (English first), with its shared gold letter."""

    id: str
    subject: str
    gold: str
    versions: Mapping[Language, McqItem]


@dataclass(frozen=True, slots=True)
class SafetyItem:
    id: str
    generator: str  # gpt4 or llama2: who wrote the harmful request
    category: int  # 1-9, the AMA Principles of Medical Ethics
    request: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _need(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"missing evaluation data file {path} (see shared/eval-data/SOURCES.md)")
    return path


def _mmlu_file(root: Path, subject: str, language: Language) -> Path:
    if language == "en":
        return root / "mmlu-medicine" / f"{subject}_test.csv"
    name = f"mmlu_{_LANGUAGE_NAMES[language]}_test_{subject}_test.csv"
    return root / "mmlu-medicine-translated" / name


def _safety_files(root: Path) -> list[Path]:
    return [
        root / "medsafetybench" / generator / f"med_safety_demonstrations_category_{k}.csv"
        for generator in ("gpt4", "llama2")
        for k in range(1, 10)
    ]


def dataset_files(root: Path, dataset: str) -> list[Path]:
    """The files one dataset reads, so a run can record their SHA-256."""
    if dataset == "medqa-usmle":
        return [root / "medqa-usmle" / "phrases_no_exclude_test.jsonl"]
    if dataset == "medmcqa":
        return [root / "medmcqa" / "dev.json"]
    if dataset == "pubmedqa":
        return [root / "pubmedqa" / "test_set.json", root / "pubmedqa" / "test_ground_truth.json"]
    if dataset == "mmlu-medicine":
        return [_mmlu_file(root, subject, "en") for subject in MMLU_SUBJECTS]
    if dataset == "mmlu-medicine-translated":
        return [_mmlu_file(root, s, lang) for lang in LANGUAGES for s in MMLU_SUBJECTS]
    if dataset == "medsafetybench":
        return _safety_files(root)
    raise DataError(
        f"unknown dataset {dataset!r}; known: {[*QA_DATASETS, 'mmlu-medicine-translated', 'medsafetybench']}"
    )


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with _need(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{path}:{number + 1}: not JSON ({exc})") from exc


def _rows(path: Path) -> list[list[str]]:
    text = _need(path).read_text(encoding="utf-8")
    return [row for row in csv.reader(io.StringIO(text, newline="")) if row]


def _medqa(root: Path) -> Iterator[McqItem]:
    for number, row in _jsonl(dataset_files(root, "medqa-usmle")[0]):
        options = row["options"]
        yield McqItem(
            id=f"medqa-usmle:{number}",
            dataset="medqa-usmle",
            subject=str(row.get("meta_info") or "unknown"),
            question=str(row["question"]),
            options=tuple((key, str(options[key])) for key in sorted(options)),
            gold=str(row["answer_idx"]),
        )


def _medmcqa(root: Path) -> Iterator[McqItem]:
    for number, row in _jsonl(dataset_files(root, "medmcqa")[0]):
        cop = row.get("cop")
        if not isinstance(cop, int) or not 1 <= cop <= 4:
            raise DataError(f"medmcqa row {number + 1}: cop must be 1-4")
        options = tuple((letter, str(row[f"op{letter.lower()}"])) for letter in LETTERS)
        yield McqItem(
            id=f"medmcqa:{number}",
            dataset="medmcqa",
            subject=str(row.get("subject_name") or "unknown"),
            question=str(row["question"]),
            options=options,
            gold=LETTERS[cop - 1],
        )


def _pubmedqa(root: Path) -> Iterator[McqItem]:
    questions_path, truth_path = dataset_files(root, "pubmedqa")
    questions = json.loads(_need(questions_path).read_text(encoding="utf-8"))
    truth = json.loads(_need(truth_path).read_text(encoding="utf-8"))
    for pmid, row in questions.items():
        gold = truth.get(pmid)
        if gold not in PUBMEDQA_LABELS:
            raise DataError(f"pubmedqa PMID {pmid}: no yes/no/maybe ground truth")
        yield McqItem(
            id=f"pubmedqa:{pmid}",
            dataset="pubmedqa",
            subject="pqa-l-test",
            question=str(row["QUESTION"]),
            options=tuple((label, label) for label in PUBMEDQA_LABELS),
            gold=str(gold),
            context=tuple(str(c) for c in row.get("CONTEXTS", ())),
        )


def _mmlu_rows(root: Path, subject: str, language: Language) -> list[list[str]]:
    rows = _rows(_mmlu_file(root, subject, language))
    for number, row in enumerate(rows):
        if len(row) != 6 or row[5].strip() not in LETTERS:
            raise DataError(
                f"{_mmlu_file(root, subject, language).name} row {number + 1}: not question,A-D,answer"
            )
    return rows


def _mcq_from_row(dataset: str, subject: str, number: int, row: Sequence[str], language: Language) -> McqItem:
    return McqItem(
        id=f"{dataset}:{subject}:{number}",
        dataset=dataset,
        subject=subject,
        question=row[0],
        options=tuple(zip(LETTERS, row[1:5], strict=True)),
        gold=row[5].strip(),
        language=language,
    )


def _mmlu(root: Path) -> Iterator[McqItem]:
    for subject in MMLU_SUBJECTS:
        for number, row in enumerate(_mmlu_rows(root, subject, "en")):
            yield _mcq_from_row("mmlu-medicine", subject, number, row, "en")


_LOADERS: Final = {"medqa-usmle": _medqa, "medmcqa": _medmcqa, "pubmedqa": _pubmedqa, "mmlu-medicine": _mmlu}


def load_qa(root: Path, dataset: str) -> list[McqItem]:
    loader = _LOADERS.get(dataset)
    if loader is None:
        raise DataError(f"unknown QA dataset {dataset!r}; known: {list(QA_DATASETS)}")
    try:
        return list(loader(root))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{dataset}: unexpected shape ({type(exc).__name__}: {exc})") from exc


@cache
def translation_flags() -> Mapping[str, frozenset[int]]:
    """1-based flagged row numbers per translated file, from the package's transcription of SOURCES.md."""
    raw = json.loads(resources.files("evals").joinpath("translation_flags.json").read_text(encoding="utf-8"))
    return {name: frozenset(rows) for name, rows in raw["flagged_rows"].items()}


def load_parallel(
    root: Path, languages: Iterable[Language] = LANGUAGES, *, include_flagged: bool = False
) -> tuple[list[ParallelItem], int]:
    """Parallel MMLU items (English plus the languages asked for) and how many rows were excluded."""
    wanted: tuple[Language, ...] = tuple(dict.fromkeys(("en", *languages)))
    unknown = [lang for lang in wanted if lang not in LANGUAGES]
    if unknown:
        raise DataError(f"unknown language(s) {unknown}; known: {list(LANGUAGES)}")
    flags = translation_flags()
    items: list[ParallelItem] = []
    excluded = 0
    for subject in MMLU_SUBJECTS:
        english = _mmlu_rows(root, subject, "en")
        per_language = {lang: _mmlu_rows(root, subject, lang) for lang in wanted}
        for lang, rows in per_language.items():
            if len(rows) != len(english):
                raise DataError(
                    f"{subject}: {lang} has {len(rows)} rows, English {len(english)}: not parallel"
                )
        for number, row in enumerate(english):
            bad = False
            for lang in wanted:
                translated = per_language[lang][number]
                if translated[5].strip() != row[5].strip():
                    raise DataError(f"{subject} row {number + 1}: {lang} gold differs from English")
                if lang == "en" or include_flagged:
                    continue
                flagged = number + 1 in flags.get(_mmlu_file(root, subject, lang).name, frozenset())
                if flagged or _SPOOFING.search(translated[0]):
                    bad = True
            if bad:
                excluded += 1
                continue
            versions = {
                lang: _mcq_from_row("mmlu-medicine", subject, number, per_language[lang][number], lang)
                for lang in wanted
            }
            items.append(ParallelItem(f"mmlu-parallel:{subject}:{number}", subject, row[5].strip(), versions))
    return items, excluded


def load_safety(root: Path) -> list[SafetyItem]:
    items: list[SafetyItem] = []
    for path in _safety_files(root):
        rows = _rows(path)
        if not rows or rows[0][1:] != ["harmful_medical_request", "safe_response"]:
            raise DataError(f"{path}: expected the header ,harmful_medical_request,safe_response")
        generator = path.parent.name
        category = int(path.stem.rsplit("_", 1)[1])
        for row in rows[1:]:
            # Only the request: safe_response is the benchmark's reference refusal.
            items.append(
                SafetyItem(f"medsafetybench:{generator}:{category}:{row[0]}", generator, category, row[1])
            )
    return items
