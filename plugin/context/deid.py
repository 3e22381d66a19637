"""Safe Harbor scrubbing of chart free text: the patient's own identifiers, dates, contacts and URLs.

Structured facts never carry identifiers (the builder keeps none); free text can, so it is scrubbed
before it may be shown to the model: every name part, identifier value, telecom value and address
element of the Patient resource, plus anything shaped like a date, phone number, e-mail address or URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
_PATTERNS = (
    re.compile(r"\b\d{4}-\d{2}-\d{2}(?:T[\d:.+\-Z]+)?\b"),  # ISO dates and date-times
    re.compile(r"\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b"),  # 03/25/1997, 25.3.97
    re.compile(r"\b\d{4}[/.]\d{1,2}[/.]\d{1,2}\b"),  # 2019/03/25
    re.compile(
        r"\b\d{1,2}[-/ ](?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*[-/ ]\d{2,4}\b",
        re.IGNORECASE,
    ),  # 25-Mar-2019
    re.compile(
        r"\b(?:january|february|march|april|june|july|august|september|october|november|december|"
        r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.?,?\s+\d{4}\b",
        re.IGNORECASE,
    ),  # March 2019: month and year are a date element too
    re.compile(
        r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b\d{1,2}\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{4}\b",
        re.IGNORECASE,
    ),
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),  # e-mail
    re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE),
    re.compile(r"\(?\b\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}\b"),  # North American phone numbers
    re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),  # SSN-shaped
)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)


def identifying_terms(patient: Mapping[str, Any] | None) -> frozenset[str]:
    """The Patient's identifying values, split into words as names appear in text.

    Only values are taken (identifier and telecom `value`, the named parts of names and addresses,
    the mother's maiden name and birthplace extensions), never codes or system URIs, which would
    otherwise redact ordinary words such as the "DL" of mg/dL.
    """
    if patient is None:
        return frozenset()
    whole: set[str] = set()
    worded: set[str] = set()
    for identifier in _objects(patient.get("identifier")) + _objects(patient.get("telecom")):
        whole.update(_strings(identifier.get("value")))
    contact_names = [
        c["name"] for c in _objects(patient.get("contact")) if isinstance(c.get("name"), Mapping)
    ]
    for name in _objects(patient.get("name")) + contact_names:
        for part in ("family", "given", "prefix", "suffix", "text"):
            worded.update(_strings(name.get(part)))
    addresses = _objects(patient.get("address"))
    for extension in _objects(patient.get("extension")):
        url = str(extension.get("url", ""))
        if url.endswith("patient-mothersMaidenName"):
            worded.update(_strings(extension.get("valueString")))
        elif url.endswith("patient-birthPlace") and isinstance(extension.get("valueAddress"), Mapping):
            addresses.append(extension["valueAddress"])
    for address in addresses:
        for part in ("line", "city", "district", "postalCode", "text"):
            worded.update(_strings(address.get(part)))
    whole.update(_strings(patient.get("birthDate")))
    whole.update(_strings(patient.get("id")))
    terms = set(whole)
    for text in worded:
        terms.add(text)
        terms.update(word for word in re.split(r"[\s,]+", text) if len(word) >= 2)
    return frozenset(_fold(t) for t in terms if t.lower() not in _NOT_IDENTIFYING)


def _objects(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _fold(text: str) -> str:
    # Curly and straight apostrophes are the same letter to a reader: O’Keefe must match O'Keefe.
    return text.replace("\u2019", "'").replace("\u2018", "'")


_NOT_IDENTIFYING = frozenset(
    {
        "official",
        "usual",
        "home",
        "work",
        "mobile",
        "phone",
        "email",
        "temp",
        "old",
        "maiden",
        "nickname",
        "us",
        "mr",
        "mrs",
        "ms",
        "dr",
        "http",
        "https",
        "urn",
        "oid",
    }
)


def scrub(text: str, terms: frozenset[str]) -> str:
    text = _fold(text)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    # Longest first, so "Joellen Gleason" is gone before "Joellen" alone is looked for.
    for term in sorted(terms, key=len, reverse=True):
        if not term.strip():
            continue
        boundary = r"\b" if term[0].isalnum() else ""
        end = r"\b" if term[-1].isalnum() else ""
        text = re.sub(f"{boundary}{re.escape(term)}{end}", REDACTED, text, flags=re.IGNORECASE)
    return text
