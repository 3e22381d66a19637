"""JSON bytes for the values that cross the queue: a de-identified context in, a review outcome out.

The API stores a `ClinicalContext` in Redis under its fingerprint, a worker loads it and stores the
`ReviewOutcome` of its review, the API renders cards from that. Both travel as orjson bytes in an envelope::

    {"codec": 1, "kind": "context" | "outcome", "value": {...}}

Decisions:

- Only the `ClinicalContext` is encoded, never a `BuiltContext`: its `HandleMap` (handle → FHIR
  reference) stays in the API process, so a worker never sees a reference (DESIGN §2.4, §3).
- One generic walker, no per-class code: a dataclass is an object of its fields (what orjson writes
  natively), and decoding is driven by `dataclasses.fields` and `typing.get_type_hints`, compiled once per
  type into a decoder and cached. A field added to a dataclass needs no change here, as long as its type
  is one of: str, int, float, bool, None, `X | None` and other unions whose members differ in their JSON
  kind, `tuple[X, ...]`, fixed `tuple[X, Y]`, list, frozenset/set (written sorted), dict/Mapping with str
  keys, Literal, Enum (StrEnum...), nested dataclasses, pydantic models (dumped and validated in JSON
  mode) and `Any`, which means plain JSON (dict, list, str, int, float, bool, None) and comes back as such.
  A type outside that list, or an ambiguous union, raises `CodecError` on first use, naming the field.
- Decoding is strict: exact JSON kinds (a bool is not an int), Literal and Enum values checked, unknown
  keys refused; a missing key is accepted only for a field with a default (an entry written before the
  field existed), and the dataclass's own `__post_init__` checks run. Every failure, including bad
  bytes, another codec version or another kind, is a `CodecError` naming the path of the bad value.
- Encoding trusts the static types (mypy --strict keeps them), so it runs at orjson's native speed; it only
  refuses what JSON cannot hold: non-finite floats (orjson would write null) and objects it cannot write.
- Exact round trip: ``decode(encode(x)) == x`` with tuples, frozensets, enums, None and nested types
  rebuilt as they were. A `Mapping` comes back as a dict; a float field given an int gets a float.

The module does no I/O: bytes in, values out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
import threading
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Literal, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from plugin.context.model import ClinicalContext
from plugin.errors import PluginError
from plugin.review import ReviewOutcome

__all__ = [
    "CODEC_VERSION",
    "CodecError",
    "decode_context",
    "decode_outcome",
    "encode_context",
    "encode_outcome",
]

CODEC_VERSION: Final = 1

Kind = Literal["context", "outcome"]
_T = TypeVar("_T")
_Decoder = Callable[[Any], Any]
_Checker = Callable[[Any], None]


class CodecError(PluginError, ValueError):
    """Bytes that are not a value of this codec version and kind, or a value that has no JSON form.

    `path` locates the bad value inside the envelope's value ("decision.accepted[0].severity"); empty when
    the envelope itself is wrong.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class _Invalid(Exception):
    """Raised inside the walker; collects the path on the way out, becomes a CodecError at the top."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []  # innermost first


def _kind_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _expected(what: str, value: object) -> _Invalid:
    return _Invalid(f"expected {what}, got {_kind_name(value)}")


def _located(error: _Invalid) -> str:
    path = ""
    for part in reversed(error.path):
        path += part if part.startswith("[") or not path else f".{part}"
    return path


# --- decoders --------------------------------------------------------------------------------------------

_JsonKind = type  # the Python type orjson.loads gives: dict, list, str, int, float, bool, NoneType
_ALL_KINDS: Final[frozenset[_JsonKind]] = frozenset({dict, list, str, int, float, bool, type(None)})
_MISSING: Final = object()

# Compiled once per type. Readers take no lock and see finished work only: what one compilation makes
# (placeholders for types that contain themselves included) stays pending until the outermost one ends.
_lock = threading.RLock()
_depth = 0
_decoders: dict[object, _Decoder] = {}
_pending_decoders: dict[object, _Decoder] = {}
_checkers: dict[object, _Checker | None] = {}
_pending_checkers: dict[object, _Checker | None] = {}


@contextlib.contextmanager
def _compiling() -> Iterator[None]:
    global _depth
    with _lock:
        _depth += 1
        try:
            yield
            if _depth == 1:
                _decoders.update(_pending_decoders)
                _checkers.update(_pending_checkers)
        finally:
            _depth -= 1
            if _depth == 0:
                _pending_decoders.clear()
                _pending_checkers.clear()


def _scalar(expected: type) -> _Decoder:
    name = {str: "a string", int: "an integer", bool: "a boolean", type(None): "null"}[expected]

    def decode(value: Any) -> Any:
        if type(value) is not expected:
            raise _expected(name, value)
        return value

    return decode


def _decode_float(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return typing.cast(float, value)
    if kind is int:
        return float(value)
    raise _expected("a number", value)


def _decode_any(value: Any) -> Any:
    return value  # orjson.loads only ever gives plain JSON values


_SCALARS: Final[dict[object, tuple[_Decoder, frozenset[_JsonKind]]]] = {
    str: (_scalar(str), frozenset({str})),
    int: (_scalar(int), frozenset({int})),
    bool: (_scalar(bool), frozenset({bool})),
    float: (_decode_float, frozenset({float, int})),
    type(None): (_scalar(type(None)), frozenset({type(None)})),
    Any: (_decode_any, _ALL_KINDS),
    object: (_decode_any, _ALL_KINDS),
}


def _decoder(tp: object, where: str) -> _Decoder:
    found = _decoders.get(tp)
    if found is not None:
        return found
    with _compiling():
        found = _decoders.get(tp) or _pending_decoders.get(tp)
        if found is None:
            found = _compile(tp, where)
            _pending_decoders[tp] = found
        return found


def _json_kinds(tp: object) -> frozenset[_JsonKind]:
    """The JSON kinds a value of `tp` is written as (for telling union members apart)."""
    if tp in _SCALARS:
        return _SCALARS[tp][1]
    origin = typing.get_origin(tp)
    if origin is Literal:
        return frozenset(type(_json_form(arg)) for arg in typing.get_args(tp))
    if origin in (tuple, list, frozenset, set) or tp in (tuple, list, frozenset, set):
        return frozenset({list})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return frozenset(type(member.value) for member in tp)
    return frozenset({dict})  # dataclasses, mappings, pydantic models


def _json_form(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def _compile(tp: object, where: str) -> _Decoder:
    if tp in _SCALARS:
        return _SCALARS[tp][0]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return _literal(args)
    if origin in (typing.Union, types.UnionType):
        return _union(args, where)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence(_decoder(args[0], where), tuple)
        return _fixed(tuple(_decoder(arg, where) for arg in args if arg != ()))  # tuple[()]: no items
    if origin is list:
        return _sequence(_decoder(args[0] if args else Any, where), list)
    if origin in (frozenset, set):
        return _sequence(_decoder(args[0] if args else Any, where), origin)
    if tp in (tuple, list, frozenset, set):  # unparametrised: items are plain JSON
        return _sequence(_decode_any, typing.cast(Callable[[Any], Any], tp))
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        key, value = args if args else (str, Any)
        if key is not str:
            raise CodecError(f"mapping keys must be str, not {key!r}", where)
        return _mapping(_decoder(value, where))
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return _enum(tp)
        if issubclass(tp, BaseModel):
            return _pydantic(tp)
        if dataclasses.is_dataclass(tp):
            return _dataclass(tp)
    raise CodecError(f"no JSON form for type {tp!r}", where)


def _literal(args: tuple[Any, ...]) -> _Decoder:
    table = {(type(_json_form(arg)), _json_form(arg)): arg for arg in args}
    allowed = ", ".join(repr(_json_form(arg)) for arg in args)

    def decode(value: Any) -> Any:
        try:
            return table[(type(value), value)]
        except (KeyError, TypeError):  # TypeError: an unhashable list or dict
            raise _Invalid(f"expected one of {allowed}, got {value!r:.60}") from None

    return decode


def _enum(cls: type[enum.Enum]) -> _Decoder:
    table = {(type(member.value), member.value): member for member in cls}

    def decode(value: Any) -> Any:
        try:
            return table[(type(value), value)]
        except (KeyError, TypeError):
            raise _Invalid(f"{value!r:.60} is not a {cls.__name__}") from None

    return decode


def _union(args: tuple[Any, ...], where: str) -> _Decoder:
    members = [arg for arg in args if arg is not type(None)]
    optional = len(members) < len(args)
    if len(members) == 1:
        inner = _decoder(members[0], where)
        if not optional:
            return inner

        def optional_decode(value: Any) -> Any:
            return None if value is None else inner(value)

        return optional_decode
    # Several members: each JSON kind must lead to exactly one of them (an int goes to `int` before
    # `float`), or the union needs a tag this codec does not invent.
    by_kind: dict[_JsonKind, _Decoder] = {}
    claimed: dict[_JsonKind, list[object]] = {}
    for member in members:
        for kind in _json_kinds(member):
            claimed.setdefault(kind, []).append(member)
    for kind, owners in claimed.items():
        if len(owners) > 1 and kind is int and int in owners:
            owners = [int]
        if len(owners) > 1:
            names = " | ".join(getattr(o, "__name__", repr(o)) for o in owners)
            raise CodecError(f"ambiguous union: {names} are all written as JSON {kind.__name__}", where)
        by_kind[kind] = _decoder(owners[0], where)
    if optional:
        by_kind[type(None)] = _decode_any
    expected = " or ".join(sorted(k.__name__ for k in by_kind))

    def decode(value: Any) -> Any:
        member = by_kind.get(type(value))
        if member is None:
            raise _expected(expected, value)
        return member(value)

    return decode


def _failing_index(decoders: Callable[[int], _Decoder], value: list[Any]) -> int:
    """Which item failed (the error path only: decoding is free of side effects, so it can be redone)."""
    for n, x in enumerate(value):
        try:
            decoders(n)(x)
        except _Invalid:
            return n
    return -1  # pragma: no cover (the caller saw an item fail)


def _sequence(item: _Decoder, build: Callable[[Any], Any]) -> _Decoder:
    if item is _SCALARS[str][0]:

        def decode_strings(value: Any) -> Any:
            if type(value) is not list:
                raise _expected("an array", value)
            for x in value:
                if type(x) is not str:
                    error = _expected("a string", x)
                    error.path.append(f"[{value.index(x)}]")
                    raise error
            return build(value)

        return decode_strings

    def decode(value: Any) -> Any:
        if type(value) is not list:
            raise _expected("an array", value)
        try:
            return build(map(item, value))
        except _Invalid as error:
            error.path.append(f"[{_failing_index(lambda _: item, value)}]")
            raise

    return decode


def _fixed(items: tuple[_Decoder, ...]) -> _Decoder:
    size = len(items)

    def decode(value: Any) -> Any:
        if type(value) is not list or len(value) != size:
            raise _expected(f"an array of {size}", value)
        try:
            return tuple([dec(x) for dec, x in zip(items, value, strict=True)])
        except _Invalid as error:
            error.path.append(f"[{_failing_index(items.__getitem__, value)}]")
            raise

    return decode


def _mapping(item: _Decoder) -> _Decoder:
    if item is _decode_any:

        def decode_json(value: Any) -> Any:
            if type(value) is not dict:
                raise _expected("an object", value)
            return value

        return decode_json

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise _expected("an object", value)
        out = {}
        for key, x in value.items():
            try:
                out[key] = item(x)
            except _Invalid as error:
                error.path.append(f"[{key!r:.40}]")
                raise
        return out

    return decode


def _pydantic(cls: type[BaseModel]) -> _Decoder:
    # Written with model_dump(mode="json"), so read back in JSON mode: the model's own validation
    # (strict or not, tuples from arrays, enums from values) applies exactly as to an API body.
    validator = cls.__pydantic_validator__

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise _expected("an object", value)
        try:
            return validator.validate_json(orjson.dumps(value))
        except ValidationError as exc:
            first = exc.errors()[0]
            error = _Invalid(f"not a valid {cls.__name__}: {first['msg']}")
            error.path.extend(str(p) for p in reversed(first["loc"]))
            raise error from None

    return decode


# Inline checks for fields of these types; anything else calls its compiled decoder.
_INLINE: Final[dict[object, tuple[str, str]]] = {
    str: ("type({v}) is not str", "a string"),
    int: ("type({v}) is not int", "an integer"),
    bool: ("type({v}) is not bool", "a boolean"),
    str | None: ("{v} is not None and type({v}) is not str", "a string or null"),
    int | None: ("{v} is not None and type({v}) is not int", "an integer or null"),
    bool | None: ("{v} is not None and type({v}) is not bool", "a boolean or null"),
}


def _missing(name: str, field_name: str) -> _Invalid:
    error = _Invalid(f"missing field of {name}")
    error.path.append(field_name)
    return error


def _wrong(field_name: str, what: str, value: object) -> _Invalid:
    error = _expected(what, value)
    error.path.append(field_name)
    return error


def _dataclass(cls: type) -> _Decoder:
    """A decoder generated for `cls` (as dataclasses generates __init__): a loop over field specs costs
    about twice as much, and this runs for every object of every cache hit.

    The generated source holds only field names (identifiers), indexes and our own templates: nothing from
    the data being decoded ever reaches it.
    """
    name = cls.__name__
    # Registered before the fields are compiled, so that a dataclass may (indirectly) contain itself.
    late: list[_Decoder] = []
    _pending_decoders[cls] = lambda value: late[0](value)
    hints = typing.get_type_hints(cls)
    namespace: dict[str, Any] = {
        "cls": cls,
        "_MISSING": _MISSING,
        "_Invalid": _Invalid,
        "_expected": _expected,
        "_missing": _missing,
        "_wrong": _wrong,
        "_check_unknown": _check_unknown,
    }
    lines = [
        "def decode(value):",
        "    if type(value) is not dict:",
        f"        raise _expected({f'an object ({name})'!r}, value)",
        "    get = value.get",
        "    used = 0",
    ]
    arguments: list[str] = []
    known: list[str] = []
    for n, f in enumerate(dataclasses.fields(cls)):
        known.append(f.name)
        if not f.init:  # orjson writes it; __post_init__ recomputes it
            continue
        v = f"v{n}"
        lines.append(f"    {v} = get({f.name!r}, _MISSING)")
        lines.append(f"    if {v} is _MISSING:")
        if f.default is not dataclasses.MISSING:
            namespace[f"default{n}"] = f.default
            lines.append(f"        {v} = default{n}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"factory{n}"] = f.default_factory
            lines.append(f"        {v} = factory{n}()")
        else:
            lines.append(f"        raise _missing({name!r}, {f.name!r})")
        lines.append("    else:")
        lines.append("        used += 1")
        tp = hints[f.name]
        inline = _INLINE.get(tp)
        if inline is not None:
            test, what = inline
            lines.append(f"        if {test.format(v=v)}:")
            lines.append(f"            raise _wrong({f.name!r}, {what!r}, {v})")
        elif tp is float:
            lines.append(f"        if type({v}) is not float:")
            lines.append(f"            if type({v}) is not int:")
            lines.append(f"                raise _wrong({f.name!r}, 'a number', {v})")
            lines.append(f"            {v} = float({v})")
        else:
            # X | None: test for null here, saving a call per absent value.
            args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else ()
            optional = len(args) == 2 and type(None) in args
            inner = next(a for a in args if a is not type(None)) if optional else tp
            namespace[f"decode{n}"] = _decoder(inner, f"{name}.{f.name}")
            lines.append("        try:")
            call = f"decode{n}({v})"
            lines.append(
                f"            {v} = None if {v} is None else {call}"
                if optional
                else f"            {v} = {call}"
            )
            lines.append("        except _Invalid as error:")
            lines.append(f"            error.path.append({f.name!r})")
            lines.append("            raise")
        arguments.append(f"{f.name}={v}" if f.kw_only else v)
    namespace["known"] = frozenset(known)
    lines += [
        "    if used != len(value):",
        f"        _check_unknown({name!r}, value, known)",
        "    try:",
        f"        return cls({', '.join(arguments)})",
        "    except (ValueError, TypeError) as exc:  # the dataclass's own checks (__post_init__)",
        f"        raise _Invalid(f'not a valid {name}: {{exc}}') from None",
    ]
    exec("\n".join(lines), namespace)  # noqa: S102 (see the docstring)
    decode: _Decoder = namespace["decode"]
    late.append(decode)
    return decode


def _check_unknown(name: str, value: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(value) - known)
    if unknown:  # else only init=False fields, which orjson writes and __init__ does not take
        raise _Invalid(f"unknown field(s) of {name}: {', '.join(unknown)[:120]}")


# --- encoding --------------------------------------------------------------------------------------------


def _check_json(value: object) -> None:
    """Refuse non-finite floats anywhere in a value of unknown shape (Any, unions)."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(typing.cast(float, value)):
            raise _Invalid(f"{value} has no JSON form")
    elif kind is dict or isinstance(value, Mapping):
        for key, item in typing.cast(Mapping[Any, Any], value).items():
            try:
                _check_json(item)
            except _Invalid as error:
                error.path.append(f"[{key!r:.40}]")
                raise
    elif kind in (list, tuple) or isinstance(value, frozenset | set):
        for n, item in enumerate(typing.cast(list[Any], value)):
            try:
                _check_json(item)
            except _Invalid as error:
                error.path.append(f"[{n}]")
                raise
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        checker = _checker(type(value))
        if checker is not None:
            checker(value)


def _check_float(value: Any) -> None:
    if type(value) is float and not math.isfinite(value):
        raise _Invalid(f"{value} has no JSON form")


def _checker(tp: object) -> _Checker | None:
    """What to look at before encoding a `tp`: None when it cannot hold a float."""
    if tp in _checkers:
        return _checkers[tp]
    with _compiling():
        if tp in _checkers:
            return _checkers[tp]
        if tp not in _pending_checkers:
            # Provisional, for a type that contains itself: defers to the finished checker.
            _pending_checkers[tp] = lambda value: _check_late(tp, value)
            _pending_checkers[tp] = _compile_checker(tp)
        return _pending_checkers[tp]


def _check_late(tp: object, value: Any) -> None:
    check = _checkers[tp]
    if check is not None:
        check(value)


def _check_items(inner: _Checker) -> _Checker:
    def check(value: Any) -> None:
        for n, item in enumerate(value):
            try:
                inner(item)
            except _Invalid as error:
                error.path.append(f"[{n}]")
                raise

    return check


def _check_values(inner: _Checker) -> _Checker:
    def check(value: Any) -> None:
        for key, item in value.items():
            try:
                inner(item)
            except _Invalid as error:
                error.path.append(f"[{key!r:.40}]")
                raise

    return check


def _check_optional(inner: _Checker) -> _Checker:
    def check(value: Any) -> None:
        if value is not None:
            inner(value)

    return check


def _compile_checker(tp: object) -> _Checker | None:
    if tp is float:
        return _check_float
    if tp in (Any, object, tuple, list, frozenset, set, dict, Mapping):
        return _check_json
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in args if arg is not type(None)]
        checks = [_checker(arg) for arg in members]
        if all(c is None for c in checks):
            return None
        if len(members) == 1 and checks[0] is not None:
            return _check_optional(checks[0])
        return _check_json
    if origin in (tuple, list, frozenset, set):
        checks = [_checker(arg) for arg in args if arg is not Ellipsis and arg != ()]
        if all(c is None for c in checks):
            return None
        if len(args) == 2 and args[1] is Ellipsis and checks[0] is not None:
            return _check_items(checks[0])
        return _check_json
    if origin in (dict, Mapping):
        inner = _checker(args[1])
        return None if inner is None else _check_values(inner)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        checked = [(f.name, c) for f in dataclasses.fields(tp) if (c := _checker(hints[f.name])) is not None]
        if not checked:
            return None

        def check(value: Any) -> None:
            for name, check_field in checked:
                try:
                    check_field(getattr(value, name))
                except _Invalid as error:
                    error.path.append(name)
                    raise

        return check
    return None  # str, int, bool, Literal, Enum, pydantic models (their own serializer decides)


def _default(value: object) -> object:
    """What orjson cannot write natively: pydantic models, frozensets, read-only mappings."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, frozenset | set):
        try:
            return sorted(value)  # deterministic bytes for equal sets
        except TypeError:
            return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"no JSON form for {type(value).__name__}")


def _encode(kind: str, tp: type[_T], value: _T) -> bytes:
    if not isinstance(value, tp):
        raise CodecError(f"encode_{kind} takes a {tp.__name__}, not a {type(value).__name__}")
    checker = _checker(tp)
    if checker is not None:
        try:
            checker(value)
        except _Invalid as error:
            raise CodecError(error.message, _located(error)) from None
    try:
        return orjson.dumps({"codec": CODEC_VERSION, "kind": kind, "value": value}, default=_default)
    except TypeError as exc:  # orjson.JSONEncodeError: an object it cannot write, an int over 64 bits
        raise CodecError(f"cannot encode the {kind}: {exc}") from None


def _decode(kind: str, tp: type[_T], data: bytes) -> _T:
    try:
        envelope = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"not JSON: {exc}") from None
    if type(envelope) is not dict or set(envelope) != {"codec", "kind", "value"}:
        raise CodecError("not a codec envelope (expected the keys codec, kind and value)")
    version = envelope["codec"]
    if type(version) is not int or version != CODEC_VERSION:
        raise CodecError(f"codec version {version!r:.40} is not {CODEC_VERSION}")
    if envelope["kind"] != kind:
        raise CodecError(f"holds kind {envelope['kind']!r:.40}, expected {kind!r}")
    try:
        decoded: _T = _decoder(tp, tp.__name__)(envelope["value"])
    except _Invalid as error:
        raise CodecError(error.message, _located(error)) from None
    return decoded


# --- the four entry points ---------------------------------------------------------------------------


def encode_context(context: ClinicalContext) -> bytes:
    """The de-identified context as JSON bytes; never a BuiltContext (its HandleMap stays in the API)."""
    return _encode("context", ClinicalContext, context)


def decode_context(data: bytes) -> ClinicalContext:
    """The context `encode_context` wrote; CodecError for anything else."""
    return _decode("context", ClinicalContext, data)


def encode_outcome(outcome: ReviewOutcome) -> bytes:
    """A review outcome (decision, retrieval, prompt record, model, samples, steps) as JSON bytes."""
    return _encode("outcome", ReviewOutcome, outcome)


def decode_outcome(data: bytes) -> ReviewOutcome:
    """The outcome `encode_outcome` wrote; CodecError for anything else."""
    return _decode("outcome", ReviewOutcome, data)
