"""Run folders: the reproducibility record, the per-item result cache that makes runs resumable, progress.

A run lives in `<output>/<run name>/`:

    manifest.json   what makes the run reproducible: suite, options, model identity (from the adapter),
                    prompt hash, sampling parameters, seed, the SHA-256 of every data file read, and the
                    config hash over all of these
    items.jsonl     one JSON line per finished item: {"item": id, "config": config hash, "result": {...}},
                    appended and flushed as each item finishes
    results.json    the suite's metrics, written at the end
    report.html     this run's report (evals.report); `<output>/index.html` compares every run there

The default run name is `<suite>-<first 12 hex of the config hash>`, so running the same command again
resumes: items already in items.jsonl under the same config hash are not asked again. `--limit` is not part
of the config, so a larger limit later reuses the smaller run's items. A line cut short by an interrupt is
ignored on reading.

Item results hold the model's extracted answers and short outcome codes, never the prompt; the safety suite
keeps the first 2,000 characters of a reply so a reviewer can check the judgement. No patient data enters
a run folder (the pipeline suites record card counts, codes and timings, not card text).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from evals.data import file_sha256
from evals.errors import EvalError

__all__ = ["Progress", "RunFolder", "RunSpec", "canonical_hash", "run_items", "run_sync"]

_T = TypeVar("_T")
Result = dict[str, Any]


def run_sync(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """asyncio.run, or, when this thread already runs an event loop (a notebook, a host application,
    Playwright's sync API), the same on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="r1cds-eval") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def canonical_hash(document: Any) -> str:
    return hashlib.sha256(
        json.dumps(document, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything that decides an item's result; its hash keys the cache."""

    suite: str
    options: Mapping[str, Any]
    model: Mapping[str, Any]
    prompt_hash: str
    sampling: Mapping[str, Any]
    data_files: Mapping[str, str]  # path relative to the data folder -> SHA-256

    @property
    def config(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "options": dict(self.options),
            "model": dict(self.model),
            "prompt_hash": self.prompt_hash,
            "sampling": dict(self.sampling),
            "data_files": dict(self.data_files),
        }

    @property
    def config_hash(self) -> str:
        return canonical_hash(self.config)

    @staticmethod
    def hash_files(root: Path, paths: Iterable[Path]) -> dict[str, str]:
        return {os.path.relpath(path, root): file_sha256(path) for path in sorted(set(paths))}


@dataclass
class RunFolder:
    path: Path
    spec: RunSpec
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @classmethod
    def open(cls, output: Path, spec: RunSpec, name: str | None = None) -> RunFolder:
        folder = output / (name or f"{spec.suite}-{spec.config_hash[:12]}")
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "manifest.json"
        if manifest.exists():
            previous = json.loads(manifest.read_text(encoding="utf-8"))
            if previous.get("config_hash") != spec.config_hash:
                raise EvalError(
                    f"{folder} holds a run with another configuration (model, prompt, sampling or data "
                    "changed); choose another --run-name or remove the folder"
                )
        return cls(folder, spec)

    @property
    def items_path(self) -> Path:
        return self.path / "items.jsonl"

    def cached(self) -> dict[str, Result]:
        found: dict[str, Result] = {}
        if not self.items_path.exists():
            return found
        config = self.spec.config_hash
        for line in self.items_path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by an interrupted run
            if (
                isinstance(entry, dict)
                and entry.get("config") == config
                and isinstance(entry.get("result"), dict)
            ):
                found[str(entry["item"])] = entry["result"]
        return found

    def appender(self) -> IO[str]:
        cut_short = False
        if self.items_path.exists() and self.items_path.stat().st_size > 0:
            with self.items_path.open("rb") as existing:
                existing.seek(-1, os.SEEK_END)
                cut_short = existing.read(1) != b"\n"
        sink = self.items_path.open("a", encoding="utf-8")
        if cut_short:
            sink.write("\n")  # end the line an interrupted run cut short, so the next one stands alone
        return sink

    def write_manifest(self, extra: Mapping[str, Any] | None = None) -> None:
        document = {
            **self.spec.config,
            "config_hash": self.spec.config_hash,
            "run": self.path.name,
            "started_at": self.started_at,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            **(extra or {}),
        }
        _write_json(self.path / "manifest.json", document)

    def write_results(self, results: Mapping[str, Any]) -> Path:
        target = self.path / "results.json"
        _write_json(target, {"run": self.path.name, "suite": self.spec.suite, **results})
        return target


def _write_json(path: Path, document: Any) -> None:
    temporary = path.with_suffix(path.suffix + ".partial")
    temporary.write_text(
        json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
    )
    os.replace(temporary, path)


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, a line per 10% otherwise)."""

    WIDTH = 30

    def __init__(self, total: int, label: str, stream: IO[str] | None = None, done: int = 0) -> None:
        self.total = total
        self.label = label
        self.done = done
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._started = time.monotonic()
        self._fresh = 0
        self._last_decile = -1
        self.draw()

    def advance(self, count: int = 1) -> None:
        self.done += count
        self._fresh += count
        self.draw()

    def line(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = round(self.WIDTH * fraction)
        elapsed = time.monotonic() - self._started
        eta = ""
        if self._fresh and self.done < self.total:
            eta = f" eta {elapsed / self._fresh * (self.total - self.done):.0f}s"
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:.0f}s{eta}"

    def draw(self) -> None:
        if self._tty:
            self._stream.write("\r" + self.line())
            self._stream.flush()
            return
        decile = int(10 * self.done / self.total) if self.total else 10
        if decile != self._last_decile or self.done == self.total:
            self._last_decile = decile
            self._stream.write(self.line() + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


async def run_items(
    folder: RunFolder,
    items: Sequence[_T],
    key: Callable[[_T], str],
    evaluate: Callable[[_T], Awaitable[Result]],
    *,
    concurrency: int = 4,
    label: str = "",
    stream: IO[str] | None = None,
) -> dict[str, Result]:
    """Results for every item, from the cache or by `evaluate`, each new one appended as it finishes.

    A result holding an "error" key (the model failed for that item) is reported but not cached.
    """
    cached = folder.cached()
    results = {key(item): cached[key(item)] for item in items if key(item) in cached}
    todo = [item for item in items if key(item) not in results]
    progress = Progress(len(items), label or folder.spec.suite, stream, done=len(results))
    semaphore = asyncio.Semaphore(max(1, concurrency))
    config = folder.spec.config_hash

    with folder.appender() as sink:

        async def one(item: _T) -> None:
            async with semaphore:
                result = await evaluate(item)
            results[key(item)] = result
            if "error" in result:
                progress.advance()
                return  # not cached: a resumed run asks again
            sink.write(
                json.dumps({"item": key(item), "config": config, "result": result}, ensure_ascii=False) + "\n"
            )
            sink.flush()
            progress.advance()

        try:
            await asyncio.gather(*(one(item) for item in todo))
        finally:
            progress.close()
    return {key(item): results[key(item)] for item in items}
