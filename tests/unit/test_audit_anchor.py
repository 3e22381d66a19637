"""The audit anchor's checkpoints: HMAC-SHA256 signatures, the key's minimum length, the JSONL file, settings."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from workers.audit_store import (
    ANCHOR_KEY_MIN_BYTES,
    AnchorLog,
    AuditStoreError,
    ChainEntry,
    Checkpoint,
    anchor_log,
    read_anchor,
)
from workers.settings import load_review_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def no_anchor_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PATH", "KEY", "EVERY", "INTERVAL_S"):
        monkeypatch.delenv(f"R1CDS_AUDIT_ANCHOR_{name}", raising=False)


KEY = "k3y-" + "0123456789abcdef" * 2  # 36 bytes
HEAD = "ab" * 32
AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def test_a_checkpoint_verifies_under_its_key_only() -> None:
    checkpoint = Checkpoint.signed(KEY.encode(), 41, HEAD, AT)
    assert (checkpoint.seq, checkpoint.hash, checkpoint.at) == (41, HEAD, "2026-12-07T09:30:00.000000Z")
    assert checkpoint.valid(KEY.encode())
    assert not checkpoint.valid(b"another key of at least thirty-two bytes")


@pytest.mark.parametrize(
    "change",
    [{"seq": 40}, {"hash": "cd" * 32}, {"at": "2026-12-07T09:31:00.000000Z"}, {"sig": "00" * 32}],
    ids=["seq", "hash", "time", "signature"],
)
def test_any_edited_field_breaks_the_signature(change: dict[str, object]) -> None:
    document = Checkpoint.signed(KEY.encode(), 41, HEAD, AT).as_dict() | change
    edited = Checkpoint.parse(orjson.dumps(document))
    assert not edited.valid(KEY.encode())


def test_a_line_reads_back_to_the_same_checkpoint() -> None:
    checkpoint = Checkpoint.signed(KEY.encode(), 7, HEAD, AT)
    line = checkpoint.line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert Checkpoint.parse(line.rstrip(b"\n")) == checkpoint


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1, 2]",
        b'{"v": 2, "seq": 1}',
        b'{"v": 1, "seq": 0, "hash": "a", "at": "b", "sig": "c"}',
        b'{"v": 1, "seq": true, "hash": "a", "at": "b", "sig": "c"}',
        b'{"v": 1, "seq": 3, "hash": "a"}',
    ],
)
def test_what_is_not_a_checkpoint_is_refused(line: bytes) -> None:
    with pytest.raises(ValueError, match=r"not JSON|not a version 1|no sequence|missing"):
        Checkpoint.parse(line)


@pytest.mark.parametrize("key", ["", "short", "x" * (ANCHOR_KEY_MIN_BYTES - 1), b"\x00" * 31])
def test_a_key_shorter_than_32_bytes_is_refused(tmp_path: Path, key: str | bytes) -> None:
    with pytest.raises(AuditStoreError, match="at least 32 bytes") as refused:
        AnchorLog(tmp_path / "anchor.jsonl", key)
    assert not (tmp_path / "anchor.jsonl").exists(), "refused before anything was written"
    if key:
        assert str(key) not in str(refused.value)


def test_the_key_is_counted_in_utf8_bytes(tmp_path: Path) -> None:
    # 16 characters of two bytes each: 32 bytes, enough.
    AnchorLog(tmp_path / "anchor.jsonl", "é" * 16)
    with pytest.raises(AuditStoreError):
        AnchorLog(tmp_path / "other.jsonl", "é" * 15 + "a")


def test_the_file_is_created_at_once_and_appended_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "anchors" / "audit-anchor.jsonl"
    log = AnchorLog(path, SecretStr(KEY))
    assert path.read_bytes() == b"", "created at construction: a missing file later means a removed one"
    assert (path.stat().st_mode & 0o777) == 0o600
    first = log.append(3, HEAD, AT)
    second = log.append(9, "cd" * 32)
    lines, torn = read_anchor(path)
    assert not torn
    assert [line.checkpoint for line in lines] == [first, second]
    assert all(c is not None and c.valid(KEY.encode()) for c in (line.checkpoint for line in lines))
    assert KEY not in path.read_text() and KEY not in repr(log)


def test_reading_names_bad_lines_and_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "anchor.jsonl"
    good = Checkpoint.signed(KEY.encode(), 5, HEAD, AT).line()
    path.write_bytes(good + b"garbage\n\n" + good[:40])
    lines, torn = read_anchor(path)
    assert torn, "the last line has no newline: a write cut short"
    assert [(line.number, line.checkpoint is not None) for line in lines] == [(1, True), (2, False)]


def test_a_file_that_cannot_be_opened_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "is-a-directory"
    os.mkdir(path)
    with pytest.raises(AuditStoreError, match="cannot open the audit anchor file"):
        AnchorLog(path, KEY)


def test_settings_build_the_anchor_and_never_show_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert anchor_log(load_review_settings()) is None, "no path set: no anchor"
    path = tmp_path / "anchor.jsonl"
    monkeypatch.setenv("R1CDS_AUDIT_ANCHOR_PATH", str(path))
    with pytest.raises(AuditStoreError, match="without R1CDS_AUDIT_ANCHOR_KEY"):
        anchor_log(load_review_settings())
    monkeypatch.setenv("R1CDS_AUDIT_ANCHOR_KEY", "too-short-a-key")
    settings = load_review_settings()
    assert "too-short-a-key" not in repr(settings)
    with pytest.raises(AuditStoreError, match="at least 32 bytes") as refused:
        anchor_log(settings)
    assert "too-short-a-key" not in str(refused.value)
    monkeypatch.setenv("R1CDS_AUDIT_ANCHOR_KEY", KEY)
    monkeypatch.setenv("R1CDS_AUDIT_ANCHOR_EVERY", "50")
    monkeypatch.setenv("R1CDS_AUDIT_ANCHOR_INTERVAL_S", "5")
    settings = load_review_settings()
    built = anchor_log(settings)
    assert built is not None and (built.path, built.every, built.interval_s) == (path, 50, 5.0)
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())


def test_defaults_of_the_anchor_settings() -> None:
    settings = load_review_settings()
    assert settings.audit_anchor_path is None and settings.audit_anchor_key is None
    assert (settings.audit_anchor_every, settings.audit_anchor_interval_s) == (1000, 60.0)


def test_an_idempotency_key_has_a_bounded_length() -> None:
    ChainEntry("2026-12-07T09:30:00.000000Z", "hook-call", "{}", "a" * 128)
    with pytest.raises(ValueError, match="1 to 128 characters"):
        ChainEntry("2026-12-07T09:30:00.000000Z", "hook-call", "{}", "a" * 129)
    with pytest.raises(ValueError, match="1 to 128 characters"):
        ChainEntry("2026-12-07T09:30:00.000000Z", "hook-call", "{}", "")
