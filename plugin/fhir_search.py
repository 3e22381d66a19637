"""In-memory FHIR R4 store with real search semantics, for filling prefetch and the test FHIR server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import quote, unquote, urlencode

__all__ = [
    "FhirSearchError",
    "FhirStore",
    "InvalidSearchValue",
    "UnsupportedSearchParameter",
    "encode_query",
    "operation_outcome",
    "parse_query_string",
    "supported_search_parameters",
]

Resource = dict[str, Any]
SearchParams = Sequence[tuple[str, str]]


class FhirSearchError(Exception):
    """A request the store cannot answer; servers map it to HTTP 400 with an OperationOutcome."""

    issue_code: str = "invalid"


class UnsupportedSearchParameter(FhirSearchError):
    """A search parameter, modifier or prefix this store does not implement for the resource type."""

    issue_code = "not-supported"


class InvalidSearchValue(FhirSearchError):
    """A supported parameter carrying a value that is not valid FHIR search syntax."""

    issue_code = "invalid"


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> Resource:
    """Build a one-issue OperationOutcome, the body FHIR servers return for failures."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


# ---------------------------------------------------------------------------------------------------------
# Query strings
# ---------------------------------------------------------------------------------------------------------


def parse_query_string(query: str) -> list[tuple[str, str]]:
    """Split a raw query string into ordered (name, value) pairs, keeping repeats.

    `+` is kept literally rather than read as a space: FHIR URLs follow RFC 3986, and prefetch templates
    render timezone offsets such as `ge2020-01-01T00:00:00+00:00` without percent-encoding them.
    """
    pairs: list[tuple[str, str]] = []
    for part in query.lstrip("?").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name), unquote(value)))
    return pairs


def encode_query(params: SearchParams) -> str:
    """Percent-encode (name, value) pairs for a link, leaving FHIR's `|`, `,` and `:` readable."""
    return urlencode(list(params), quote_via=quote, safe="|,:")


# ---------------------------------------------------------------------------------------------------------
# Dates: every FHIR date is an implicit range [low, high) given by its precision.
# ---------------------------------------------------------------------------------------------------------

_EARLIEST: Final = datetime.min.replace(tzinfo=UTC)
_LATEST: Final = datetime.max.replace(tzinfo=UTC)

_DATE_PATTERN: Final = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True, slots=True)
class _DateRange:
    low: datetime
    high: datetime


def _parse_date_range(text: str) -> _DateRange | None:
    """Read a FHIR date/dateTime/instant as the range its precision covers; None if it is not one.

    Values without a timezone (plain dates, or times a client sent without an offset) are taken as UTC:
    the spec leaves them to the server's local zone, and UTC keeps results independent of the host.
    """
    # A `+` offset that went through form decoding arrives as a space; undo that instead of failing.
    text = re.sub(r" (\d{2}:\d{2})$", r"+\1", text.strip())
    match = _DATE_PATTERN.match(text)
    if match is None:
        return None
    parts = match.groupdict()
    year = int(parts["year"])
    try:
        if parts["month"] is None:
            low = datetime(year, 1, 1, tzinfo=UTC)
            return _DateRange(low, _shifted(lambda: datetime(year + 1, 1, 1, tzinfo=UTC)))
        month = int(parts["month"])
        if parts["day"] is None:
            low = datetime(year, month, 1, tzinfo=UTC)
            next_month = (year + 1, 1) if month == 12 else (year, month + 1)
            return _DateRange(low, _shifted(lambda: datetime(*next_month, 1, tzinfo=UTC)))
        day = int(parts["day"])
        if parts["hour"] is None:
            low = datetime(year, month, day, tzinfo=UTC)
            return _DateRange(low, _shifted(lambda: low + timedelta(days=1)))
        zone = _zone_offset(parts["zone"])
        naive = datetime(year, month, day, int(parts["hour"]), int(parts["minute"]))
        if parts["second"] is None:
            step = timedelta(minutes=1)
        else:
            fraction = (parts["fraction"] or "")[:6]
            naive = naive.replace(second=int(parts["second"]), microsecond=int(fraction.ljust(6, "0")))
            step = timedelta(microseconds=10 ** (6 - len(fraction))) if fraction else timedelta(seconds=1)
        local_low = naive - zone
        low = local_low.replace(tzinfo=UTC)
        return _DateRange(low, _shifted(lambda: low + step))
    except (ValueError, OverflowError):
        return None


def _shifted(compute_high: Callable[[], datetime]) -> datetime:
    # Year 9999 has no successor inside datetime; treat its upper bound as the end of time.
    try:
        return compute_high()
    except (ValueError, OverflowError):
        return _LATEST


def _zone_offset(zone: str | None) -> timedelta:
    if zone is None or zone == "Z":
        return timedelta(0)
    sign = -1 if zone[0] == "-" else 1
    hours, minutes = zone[1:].split(":")
    return sign * timedelta(hours=int(hours), minutes=int(minutes))


def _element_date_range(value: Any) -> _DateRange | None:
    if isinstance(value, str):
        return _parse_date_range(value)
    if isinstance(value, Mapping):  # a Period; a missing end means "ongoing"
        start = _parse_date_range(value["start"]) if isinstance(value.get("start"), str) else None
        end = _parse_date_range(value["end"]) if isinstance(value.get("end"), str) else None
        if start is None and end is None:
            return None
        return _DateRange(start.low if start else _EARLIEST, end.high if end else _LATEST)
    return None


_DATE_PREFIXES: Final[frozenset[str]] = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "sa", "eb"})


def _date_matches(prefix: str, wanted: _DateRange, target: _DateRange) -> bool:
    """Compare ranges exactly as FHIR R4 search §3.1.1.4.3 defines each prefix."""
    contains = wanted.low <= target.low and target.high <= wanted.high
    if prefix == "eq":
        return contains
    if prefix == "ne":
        return not contains
    if prefix == "gt":
        return target.high > wanted.high
    if prefix == "lt":
        return target.low < wanted.low
    if prefix == "ge":
        return target.high > wanted.high or contains
    if prefix == "le":
        return target.low < wanted.low or contains
    if prefix == "sa":
        return target.low >= wanted.high
    return target.high <= wanted.low  # "eb"


# ---------------------------------------------------------------------------------------------------------
# Tokens and references
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    system: str | None
    code: str
    # Elements of FHIR type `code` (status, intent, gender) have their system fixed by the binding, so a
    # `system|code` query matches them on the code alone.
    implicit_system: bool = False


def _tokens_of(value: Any) -> Iterator[_Token]:
    if isinstance(value, bool):
        yield _Token(None, "true" if value else "false", implicit_system=True)
    elif isinstance(value, str):
        yield _Token(None, value, implicit_system=True)
    elif isinstance(value, list):
        for item in value:
            yield from _tokens_of(item)
    elif isinstance(value, Mapping):
        if "coding" in value:
            yield from _tokens_of(value["coding"])
        elif isinstance(value.get("code"), str):  # Coding
            yield _Token(value.get("system"), value["code"])
        elif isinstance(value.get("value"), str):  # Identifier
            yield _Token(value.get("system"), value["value"])


@dataclass(frozen=True, slots=True)
class _TokenQuery:
    system: str | None
    code: str | None
    system_mode: Literal["any", "none", "equals"]

    @classmethod
    def parse(cls, text: str) -> _TokenQuery:
        pieces = _split_unescaped(text, "|")
        if len(pieces) == 1:
            return cls(None, pieces[0], "any")
        if len(pieces) != 2:
            raise InvalidSearchValue(f"token value {text!r} has more than one '|'")
        system, code = pieces
        if not system:
            return cls(None, code or None, "none")
        return cls(system, code or None, "equals")

    def matches(self, token: _Token) -> bool:
        if self.code is not None and token.code != self.code:
            return False
        if self.system_mode == "any" or token.implicit_system:
            return True
        if self.system_mode == "none":
            return token.system is None
        return token.system == self.system


@dataclass(frozen=True, slots=True)
class _ReferenceTarget:
    resource_type: str | None
    resource_id: str


_RESOURCE_TYPE_PATTERN: Final = re.compile(r"^[A-Z][A-Za-z]+$")


def _parse_reference(reference: str) -> _ReferenceTarget | None:
    """Read `Type/id`, `base/Type/id` or `Type/id/_history/n`; contained and urn references have no target."""
    if reference.startswith(("#", "urn:")):
        return None
    segments = [segment for segment in reference.split("?")[0].split("/") if segment]
    if len(segments) >= 4 and segments[-2] == "_history":
        segments = segments[:-2]
    if len(segments) >= 2 and _RESOURCE_TYPE_PATTERN.match(segments[-2]):
        return _ReferenceTarget(segments[-2], segments[-1])
    return None


def _split_unescaped(text: str, separator: str) -> list[str]:
    r"""Split on `separator` except where FHIR escapes it as `\,` `\|` or `\$`."""
    pieces: list[str] = []
    current: list[str] = []
    characters = iter(text)
    for character in characters:
        if character == "\\":
            escaped = next(characters, "")
            current.append(escaped)
        elif character == separator:
            pieces.append("".join(current))
            current = []
        else:
            current.append(character)
    pieces.append("".join(current))
    return pieces


# ---------------------------------------------------------------------------------------------------------
# Search parameter registry
# ---------------------------------------------------------------------------------------------------------

_ParameterKind = Literal["token", "reference", "date"]


@dataclass(frozen=True, slots=True)
class _SearchParameter:
    kind: _ParameterKind
    # Element names (dotted for nested ones). Dates take the first element present, mirroring choice
    # types (effective[x]) and the documented fall-backs; tokens and references use every element.
    paths: tuple[str, ...]
    target_type: str | None = None

    def values(self, resource: Mapping[str, Any]) -> list[Any]:
        found: list[Any] = []
        for path in self.paths:
            value = _get_path(resource, path)
            if value is None:
                continue
            if self.kind == "date":
                return [value]
            found.extend(value if isinstance(value, list) else [value])
        return found

    def references(self, resource: Mapping[str, Any]) -> list[_ReferenceTarget]:
        targets: list[_ReferenceTarget] = []
        for value in self.values(resource):
            reference = value.get("reference") if isinstance(value, Mapping) else None
            target = _parse_reference(reference) if isinstance(reference, str) else None
            if target is not None and (self.target_type is None or target.resource_type == self.target_type):
                targets.append(target)
        return targets

    def date_ranges(self, resource: Mapping[str, Any]) -> list[_DateRange]:
        ranges = (_element_date_range(value) for value in self.values(resource))
        return [found for found in ranges if found is not None]

    def tokens(self, resource: Mapping[str, Any]) -> list[_Token]:
        return [token for value in self.values(resource) for token in _tokens_of(value)]

    def is_missing(self, resource: Mapping[str, Any]) -> bool:
        if self.kind == "reference":
            return not self.references(resource)
        if self.kind == "date":
            return not self.date_ranges(resource)
        return not self.tokens(resource)


def _get_path(resource: Mapping[str, Any], path: str) -> Any:
    value: Any = resource
    for name in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _token(*paths: str) -> _SearchParameter:
    return _SearchParameter("token", paths)


def _reference(*paths: str, target_type: str | None = None) -> _SearchParameter:
    return _SearchParameter("reference", paths, target_type)


def _date(*paths: str) -> _SearchParameter:
    return _SearchParameter("date", paths)


_COMMON_PARAMETERS: Final[dict[str, _SearchParameter]] = {"_lastUpdated": _date("meta.lastUpdated")}
_SUBJECT_IS_PATIENT: Final[dict[str, _SearchParameter]] = {
    "patient": _reference("subject", target_type="Patient"),
    "subject": _reference("subject"),
    "encounter": _reference("encounter"),
}
_PATIENT_ELEMENT: Final[dict[str, _SearchParameter]] = {
    "patient": _reference("patient", target_type="Patient")
}
_EFFECTIVE: Final = _date("effectiveDateTime", "effectivePeriod", "effectiveInstant")

# Types outside this table still answer `_id`, `_lastUpdated` and `patient`, the last by whichever of
# `subject` or `patient` points at a Patient, so prefetch for less common types still works.
_FALLBACK_PARAMETERS: Final[dict[str, _SearchParameter]] = {
    "patient": _reference("subject", "patient", target_type="Patient"),
}

_SEARCH_PARAMETERS: Final[dict[str, dict[str, _SearchParameter]]] = {
    "Patient": {
        "identifier": _token("identifier"),
        "gender": _token("gender"),
        "birthdate": _date("birthDate"),
        "active": _token("active"),
    },
    "Practitioner": {"identifier": _token("identifier")},
    "Organization": {"identifier": _token("identifier")},
    "Medication": {"code": _token("code"), "status": _token("status")},
    "Observation": {
        **_SUBJECT_IS_PATIENT,
        "code": _token("code"),
        "status": _token("status"),
        "category": _token("category"),
        # `issued` only stands in when no effective[x] is recorded, as the clinically relevant time.
        "date": _date("effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued"),
    },
    "Condition": {
        **_SUBJECT_IS_PATIENT,
        "code": _token("code"),
        "clinical-status": _token("clinicalStatus"),
        "verification-status": _token("verificationStatus"),
        "category": _token("category"),
        "date": _date("onsetDateTime", "onsetPeriod", "recordedDate"),
        "onset-date": _date("onsetDateTime", "onsetPeriod"),
        "recorded-date": _date("recordedDate"),
    },
    "MedicationRequest": {
        **_SUBJECT_IS_PATIENT,
        "code": _token("medicationCodeableConcept"),
        "status": _token("status"),
        "intent": _token("intent"),
        "category": _token("category"),
        "date": _date("authoredOn"),
        "authoredon": _date("authoredOn"),
    },
    "MedicationStatement": {
        **_SUBJECT_IS_PATIENT,
        "code": _token("medicationCodeableConcept"),
        "status": _token("status"),
        "category": _token("category"),
        "date": _EFFECTIVE,
        "effective": _EFFECTIVE,
    },
    "MedicationAdministration": {
        **_SUBJECT_IS_PATIENT,
        "code": _token("medicationCodeableConcept"),
        "status": _token("status"),
        "date": _EFFECTIVE,
        "effective-time": _EFFECTIVE,
    },
    "AllergyIntolerance": {
        **_PATIENT_ELEMENT,
        "code": _token("code"),
        "clinical-status": _token("clinicalStatus"),
        "verification-status": _token("verificationStatus"),
        "category": _token("category"),
        "criticality": _token("criticality"),
        "type": _token("type"),
        "date": _date("recordedDate"),
    },
    "Encounter": {
        **_SUBJECT_IS_PATIENT,
        "status": _token("status"),
        "class": _token("class"),
        "type": _token("type"),
        "date": _date("period"),
    },
    "Procedure": {
        **_SUBJECT_IS_PATIENT,
        "code": _token("code"),
        "status": _token("status"),
        "category": _token("category"),
        "date": _date("performedDateTime", "performedPeriod"),
    },
    "Immunization": {
        **_PATIENT_ELEMENT,
        "status": _token("status"),
        "vaccine-code": _token("vaccineCode"),
        "date": _date("occurrenceDateTime"),
    },
    "DiagnosticReport": {
        **_SUBJECT_IS_PATIENT,
        "code": _token("code"),
        "status": _token("status"),
        "category": _token("category"),
        "date": _EFFECTIVE,
    },
    "CarePlan": {
        **_SUBJECT_IS_PATIENT,
        "status": _token("status"),
        "intent": _token("intent"),
        "category": _token("category"),
        "date": _date("period"),
    },
    "ServiceRequest": {
        **_SUBJECT_IS_PATIENT,
        "code": _token("code"),
        "status": _token("status"),
        "intent": _token("intent"),
        "category": _token("category"),
        "authored": _date("authoredOn"),
    },
    "ImagingStudy": {**_SUBJECT_IS_PATIENT, "status": _token("status"), "started": _date("started")},
    "Claim": {**_PATIENT_ELEMENT, "status": _token("status"), "created": _date("created")},
    "ExplanationOfBenefit": {**_PATIENT_ELEMENT, "status": _token("status"), "created": _date("created")},
}

# Paging and presentation parameters: read by `search_bundle`, accepted (and validated) by `search`.
_RESULT_PARAMETERS: Final[frozenset[str]] = frozenset(
    {"_count", "_offset", "_sort", "_summary", "_format", "_pretty"}
)


def _parameters_for(resource_type: str) -> dict[str, _SearchParameter]:
    specific = _SEARCH_PARAMETERS.get(resource_type, _FALLBACK_PARAMETERS)
    return {**_COMMON_PARAMETERS, **specific}


def supported_search_parameters(resource_type: str) -> dict[str, str]:
    """Name → FHIR search parameter type for `resource_type`, as a CapabilityStatement lists them."""
    found = {"_id": "token"}
    found.update({name: parameter.kind for name, parameter in _parameters_for(resource_type).items()})
    return found


# ---------------------------------------------------------------------------------------------------------
# Parsed criteria
# ---------------------------------------------------------------------------------------------------------


class _Criterion:
    """One `name[:modifier]=v1,v2` pair: OR across its values; criteria AND together.

    Values are parsed once here, so syntax errors surface before any matching and matching stays cheap.
    """

    def __init__(
        self, name: str, parameter: _SearchParameter | None, modifier: str | None, values: Sequence[str]
    ) -> None:
        self.name = name
        self.parameter = parameter
        self.modifier = modifier
        self.values = tuple(values)
        self._token_queries: list[_TokenQuery] = []
        self._wanted_references: list[_ReferenceTarget] = []
        self._date_queries: list[tuple[str, _DateRange]] = []
        if parameter is None or modifier == "missing":
            return
        if parameter.kind == "token":
            self._token_queries = [_TokenQuery.parse(value) for value in self.values]
        elif parameter.kind == "reference":
            self._wanted_references = [self._wanted_reference(value) for value in self.values]
        else:
            self._date_queries = [_parse_date_value(value) for value in self.values]

    def _wanted_reference(self, value: str) -> _ReferenceTarget:
        parsed = _parse_reference(value) if "/" in value else None
        wanted = parsed or _ReferenceTarget(None, value)
        type_hint = self.modifier or (self.parameter.target_type if self.parameter else None)
        if wanted.resource_type is None and type_hint is not None:
            return _ReferenceTarget(type_hint, wanted.resource_id)
        return wanted

    def matches(self, resource: Mapping[str, Any]) -> bool:
        parameter = self.parameter
        if parameter is None:
            return resource.get("id") in self.values
        if self.modifier == "missing":
            return parameter.is_missing(resource) == (self.values == ("true",))
        if parameter.kind == "token":
            tokens = parameter.tokens(resource)
            hit = any(query.matches(token) for query in self._token_queries for token in tokens)
            return not hit if self.modifier == "not" else hit
        if parameter.kind == "reference":
            return any(
                target.resource_id == want.resource_id and want.resource_type in (None, target.resource_type)
                for target in parameter.references(resource)
                for want in self._wanted_references
            )
        ranges = parameter.date_ranges(resource)
        return any(
            _date_matches(prefix, wanted, target)
            for prefix, wanted in self._date_queries
            for target in ranges
        )

    def patient_ids(self) -> set[str] | None:
        """Patient ids this criterion confines results to, when the patient index can answer it."""
        if self.name not in ("patient", "subject") or self.modifier not in (None, "Patient"):
            return None
        # A bare `subject=123` may name a Group or Device as well, which the patient index cannot answer.
        if any(want.resource_type is None for want in self._wanted_references):
            return None
        return {want.resource_id for want in self._wanted_references if want.resource_type == "Patient"}


def _parse_date_value(value: str) -> tuple[str, _DateRange]:
    prefix = value[:2] if value[:2].isalpha() else "eq"
    text = value[2:] if value[:2].isalpha() else value
    if prefix == "ap":
        raise UnsupportedSearchParameter("the date prefix 'ap' (approximately) is not supported")
    if prefix not in _DATE_PREFIXES:
        raise InvalidSearchValue(f"unknown date prefix {prefix!r} in {value!r}")
    parsed = _parse_date_range(text)
    if parsed is None:
        raise InvalidSearchValue(f"{text!r} is not a FHIR date, dateTime or instant")
    return prefix, parsed


@dataclass(frozen=True, slots=True)
class _ResultOptions:
    count: int | None
    offset: int
    sort: tuple[str, ...]
    summary_count: bool


def _non_negative_int(name: str, value: str) -> int:
    if not value.isdigit():
        raise InvalidSearchValue(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _compile(resource_type: str, params: SearchParams) -> tuple[list[_Criterion], _ResultOptions]:
    """Validate every parameter before any matching, so a bad query fails whole rather than half-applied."""
    if not _RESOURCE_TYPE_PATTERN.match(resource_type):
        raise FhirSearchError(f"{resource_type!r} is not a resource type")
    known = _parameters_for(resource_type)
    criteria: list[_Criterion] = []
    count: int | None = None
    offset = 0
    sort: tuple[str, ...] = ()
    summary_count = False
    for raw_name, raw_value in params:
        name, _, modifier = raw_name.partition(":")
        if name in _RESULT_PARAMETERS:
            if modifier:
                raise UnsupportedSearchParameter(f"{raw_name!r} takes no modifier")
            if name == "_count":
                count = _non_negative_int(name, raw_value)
            elif name == "_offset":
                offset = _non_negative_int(name, raw_value)
            elif name == "_sort":
                sort = tuple(key.strip() for key in raw_value.split(",") if key.strip())
                for key in sort:
                    _sort_key(resource_type, key.lstrip("-"))
            elif name == "_summary":
                if raw_value not in ("count", "false"):
                    raise UnsupportedSearchParameter(
                        f"_summary={raw_value!r} is not supported (count, false)"
                    )
                summary_count = raw_value == "count"
            continue
        # FHIR: a parameter with an empty value is ignored.
        if raw_value == "":
            continue
        criteria.append(_compile_criterion(resource_type, known, name, modifier or None, raw_value))
    return criteria, _ResultOptions(count, offset, sort, summary_count)


def _compile_criterion(
    resource_type: str, known: Mapping[str, _SearchParameter], name: str, modifier: str | None, raw_value: str
) -> _Criterion:
    if name == "_id":
        if modifier:
            raise UnsupportedSearchParameter(f"_id:{modifier} is not supported")
        return _Criterion(name, None, None, tuple(_split_unescaped(raw_value, ",")))
    parameter = known.get(name)
    if parameter is None:
        raise UnsupportedSearchParameter(f"search parameter {name!r} is not supported for {resource_type}")
    if modifier == "missing":
        if raw_value not in ("true", "false"):
            raise InvalidSearchValue(f"{name}:missing takes true or false, got {raw_value!r}")
        return _Criterion(name, parameter, modifier, (raw_value,))
    if modifier is not None:
        allowed = (parameter.kind == "token" and modifier == "not") or (
            parameter.kind == "reference" and _RESOURCE_TYPE_PATTERN.match(modifier) is not None
        )
        if not allowed:
            raise UnsupportedSearchParameter(f"modifier {name}:{modifier} is not supported")
    values = [value for value in _split_unescaped(raw_value, ",") if value]
    return _Criterion(name, parameter, modifier, values)


_SortKey = Callable[[Mapping[str, Any]], Any]


def _sort_key(resource_type: str, name: str) -> _SortKey:
    if name == "_id":
        return lambda resource: resource.get("id")
    parameter = _parameters_for(resource_type).get(name)
    if parameter is None or parameter.kind != "date":
        raise UnsupportedSearchParameter(f"_sort={name!r} is not supported for {resource_type}")

    def earliest(resource: Mapping[str, Any]) -> datetime | None:
        ranges = parameter.date_ranges(resource)
        return min(found.low for found in ranges) if ranges else None

    return earliest


def _sorted(resource_type: str, resources: list[Resource], sort: Sequence[str]) -> list[Resource]:
    # Sort by the last key first: Python's sort is stable, so earlier keys end up taking precedence, and
    # ties (and the unsorted case) keep insertion order. Resources lacking a key go last in either direction.
    for key in reversed(sort):
        descending = key.startswith("-")
        key_of = _sort_key(resource_type, key.lstrip("-"))
        keyed = [(key_of(resource), resource) for resource in resources]
        present = [pair for pair in keyed if pair[0] is not None]
        present.sort(key=lambda pair: pair[0], reverse=descending)
        resources = [resource for _, resource in present] + [
            resource for value, resource in keyed if value is None
        ]
    return resources


# ---------------------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------------------


def _copy_json(value: Any, references: Mapping[str, str] | None = None) -> Any:
    """Deep-copy JSON data, rewriting `reference` strings found in `references` on the way."""
    if isinstance(value, dict):
        copied = {key: _copy_json(item, references) for key, item in value.items()}
        reference = copied.get("reference")
        if references and isinstance(reference, str) and reference in references:
            copied["reference"] = references[reference]
        return copied
    if isinstance(value, list):
        return [_copy_json(item, references) for item in value]
    return value


class FhirStore:
    """Resources by type and id, indexed by patient, answering FHIR R4 reads and searches.

    Everything handed in is copied and everything handed out is a copy, so callers may mutate freely.
    Resources are stored as given (plus reference rewriting when loaded from a Bundle); the store does not
    stamp `meta.versionId`/`meta.lastUpdated`, so output stays identical from run to run.
    """

    def __init__(self) -> None:
        self._resources: dict[str, dict[str, Resource]] = {}
        self._positions: dict[str, dict[str, int]] = {}
        self._by_patient: dict[str, dict[str, set[str]]] = {}
        self._next_position = 0

    @classmethod
    def from_bundles(cls, bundles: Iterable[Mapping[str, Any]]) -> FhirStore:
        store = cls()
        for bundle in bundles:
            store.add_bundle(bundle)
        return store

    def add_bundle(self, bundle: Mapping[str, Any]) -> None:
        """Load every entry's resource, rewriting references to entry fullUrls into `Type/id`.

        Transaction bundles link entries by `urn:uuid:` fullUrls; a server resolves those to the stored
        resources, so `subject.reference` reads `Patient/<id>` afterwards as it would on a real server.
        """
        if bundle.get("resourceType") != "Bundle":
            raise ValueError(f"expected a Bundle, got {bundle.get('resourceType')!r}")
        entries = [entry for entry in bundle.get("entry") or [] if isinstance(entry.get("resource"), Mapping)]
        identities: list[tuple[str, str]] = []
        local_references: dict[str, str] = {}
        for entry in entries:
            resource = entry["resource"]
            resource_type = resource.get("resourceType")
            if not isinstance(resource_type, str):
                raise ValueError(f"bundle entry {entry.get('fullUrl')!r} has no resourceType")
            full_url = entry.get("fullUrl")
            resource_id = resource.get("id") or _id_from_full_url(full_url) or str(uuid.uuid4())
            identities.append((resource_type, resource_id))
            if isinstance(full_url, str) and full_url:
                local_references[full_url] = f"{resource_type}/{resource_id}"
        for entry, (_, resource_id) in zip(entries, identities, strict=True):
            resource = _copy_json(entry["resource"], local_references)
            resource["id"] = resource_id
            self._store(resource)

    def add(self, resource: Mapping[str, Any]) -> str:
        """Store a copy of `resource` (replacing one with the same type and id) and return its id."""
        resource_type = resource.get("resourceType")
        if not isinstance(resource_type, str):
            raise ValueError("a resource needs a resourceType")
        stored: Resource = _copy_json(dict(resource))
        stored.setdefault("id", str(uuid.uuid4()))
        self._store(stored)
        return str(stored["id"])

    def _store(self, resource: Resource) -> None:
        resource_type: str = resource["resourceType"]
        resource_id = str(resource["id"])
        by_id = self._resources.setdefault(resource_type, {})
        positions = self._positions.setdefault(resource_type, {})
        patient_index = self._by_patient.setdefault(resource_type, {})
        previous = by_id.get(resource_id)
        if previous is not None:
            for patient_id in self._patient_ids_of(resource_type, previous):
                patient_index.get(patient_id, set()).discard(resource_id)
        else:
            positions[resource_id] = self._next_position
            self._next_position += 1
        by_id[resource_id] = resource
        for patient_id in self._patient_ids_of(resource_type, resource):
            patient_index.setdefault(patient_id, set()).add(resource_id)

    @staticmethod
    def _patient_ids_of(resource_type: str, resource: Mapping[str, Any]) -> set[str]:
        parameter = _parameters_for(resource_type).get("patient")
        if parameter is None:
            return set()
        return {target.resource_id for target in parameter.references(resource)}

    def resource_types(self) -> list[str]:
        """Types holding at least one resource, in first-loaded order."""
        return [resource_type for resource_type, by_id in self._resources.items() if by_id]

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        found = self._resources.get(resource_type, {}).get(resource_id)
        return None if found is None else _copy_json(found)

    def search(self, resource_type: str, params: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """All matches, ordered by `_sort` (insertion order otherwise), before `_count`/`_offset` paging."""
        criteria, options = _compile(resource_type, params)
        return [_copy_json(resource) for resource in self._matches(resource_type, criteria, options)]

    def _matches(
        self, resource_type: str, criteria: Sequence[_Criterion], options: _ResultOptions
    ) -> list[Resource]:
        by_id = self._resources.get(resource_type, {})
        candidate_ids: Iterable[str] = by_id.keys()
        narrowed = self._narrow_by_patient(resource_type, criteria)
        if narrowed is not None:
            positions = self._positions.get(resource_type, {})
            candidate_ids = sorted(narrowed, key=positions.__getitem__)
        for criterion in criteria:
            if criterion.parameter is None:  # `_id` names the candidates outright
                candidate_ids = [
                    resource_id for resource_id in candidate_ids if resource_id in criterion.values
                ]
        matches = [
            by_id[resource_id]
            for resource_id in candidate_ids
            if all(criterion.matches(by_id[resource_id]) for criterion in criteria)
        ]
        return _sorted(resource_type, matches, options.sort)

    def _narrow_by_patient(self, resource_type: str, criteria: Sequence[_Criterion]) -> set[str] | None:
        if "patient" not in _parameters_for(resource_type):
            return None
        index = self._by_patient.get(resource_type, {})
        narrowed: set[str] | None = None
        for criterion in criteria:
            patient_ids = criterion.patient_ids()
            if patient_ids is None:
                continue
            ids = set().union(*(index.get(patient_id, set()) for patient_id in patient_ids))
            narrowed = ids if narrowed is None else narrowed & ids
        return narrowed

    def search_bundle(
        self,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        base_url: str,
        page_size_default: int = 50,
    ) -> dict[str, Any]:
        """A `searchset` Bundle for one page of `search`, with `self`, `previous` and `next` links.

        Links repeat the caller's criteria with explicit `_count` and `_offset`, so a client that follows
        `next` until it is absent sees every match exactly once. An empty page carries no `entry` key, as
        FHIR JSON forbids empty arrays.
        """
        criteria, options = _compile(resource_type, params)
        matches = self._matches(resource_type, criteria, options)
        base = base_url.rstrip("/")
        page_size = (
            0
            if options.summary_count
            else (options.count if options.count is not None else page_size_default)
        )
        page = matches[options.offset : options.offset + page_size]
        bundle: Resource = {"resourceType": "Bundle", "type": "searchset", "total": len(matches)}
        links = [{"relation": "self", "url": _search_url(base, resource_type, params)}]
        criteria_params = [(name, value) for name, value in params if name not in ("_count", "_offset")]
        if options.offset > 0 and page_size > 0:
            previous_offset = max(options.offset - page_size, 0)
            links.append(
                {
                    "relation": "previous",
                    "url": _page_url(base, resource_type, criteria_params, page_size, previous_offset),
                }
            )
        if page_size > 0 and options.offset + page_size < len(matches):
            next_url = _page_url(base, resource_type, criteria_params, page_size, options.offset + page_size)
            links.append({"relation": "next", "url": next_url})
        bundle["link"] = links
        if page:
            bundle["entry"] = [
                {
                    "fullUrl": f"{base}/{resource_type}/{resource['id']}",
                    "resource": _copy_json(resource),
                    "search": {"mode": "match"},
                }
                for resource in page
            ]
        return bundle

    def query(self, relative_url: str, base_url: str) -> dict[str, Any] | None:
        """Answer a relative FHIR URL: `Type/id` reads (None when absent), `Type?params` searches.

        This is what a rendered CDS Hooks prefetch template looks like. An absolute URL under `base_url`
        is accepted too, so `next` links can be followed through the same call.
        """
        base = base_url.rstrip("/")
        url = relative_url.strip()
        if base and url.startswith(base + "/"):
            url = url[len(base) + 1 :]
        path, _, query = url.lstrip("/").partition("?")
        segments = [segment for segment in path.split("/") if segment]
        if len(segments) == 1:
            return self.search_bundle(segments[0], parse_query_string(query), base)
        if len(segments) == 2 and _RESOURCE_TYPE_PATTERN.match(segments[0]):
            return self.read(segments[0], unquote(segments[1]))
        raise FhirSearchError(f"{relative_url!r} is neither a read (Type/id) nor a search (Type?params)")


def _id_from_full_url(full_url: Any) -> str | None:
    if not isinstance(full_url, str):
        return None
    if full_url.startswith("urn:uuid:"):
        return full_url.removeprefix("urn:uuid:")
    target = _parse_reference(full_url)
    return target.resource_id if target else None


def _search_url(base: str, resource_type: str, params: SearchParams) -> str:
    encoded = encode_query(params)
    return f"{base}/{resource_type}?{encoded}" if encoded else f"{base}/{resource_type}"


def _page_url(base: str, resource_type: str, criteria_params: SearchParams, count: int, offset: int) -> str:
    return _search_url(
        base, resource_type, [*criteria_params, ("_count", str(count)), ("_offset", str(offset))]
    )
