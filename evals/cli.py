"""`r1cds eval ...`: the evaluation suites and the comparison report, registered on the main command line."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from evals.backends import BACKENDS, BackendConfig, open_backend
from evals.data import LANGUAGES, QA_DATASETS
from evals.errors import EvalError
from evals.report import load_runs, write_report
from evals.runner import RunFolder, run_sync
from evals.settings import load_eval_settings
from evals.suites.common import ModelRunOptions
from plugin.model_port import LanguageModel, ModelError

__all__ = ["add_commands"]

log = logging.getLogger(__name__)


class _Unreachable(Exception):
    """A server the run needs does not answer; exit status 1, not a usage error."""


def _positive(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _http_url(value: str | None, option: str) -> str | None:
    """`value` unchanged when it is an http(s) URL with a host; EvalError naming the option otherwise."""
    if value is None:
        return None
    try:
        url: httpx.URL | None = httpx.URL(value)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        # Not echoed: a URL may carry credentials.
        raise EvalError(f"{option} must be an http:// or https:// URL with a host name")
    return value


def _common(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="evaluation data (default R1CDS_EVAL_DATA or ../shared/eval-data)"
    )
    parser.add_argument(
        "--output", type=Path, help="run folders go here (default R1CDS_EVAL_OUTPUT or eval-runs)"
    )
    parser.add_argument("--run-name", help="run folder name (default <suite>-<config hash>: reruns resume)")
    parser.add_argument(
        "--limit", type=_positive, help="evaluate this many items (a seeded, stratified slice)"
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed and slice seed (default 0)")
    parser.add_argument(
        "--samples",
        type=_positive,
        help="samples per item (majority vote, agreement); default 1, for cds/injection the review's setting",
    )
    if model:
        parser.add_argument("--backend", choices=BACKENDS, default="sglang")
        parser.add_argument(
            "--model-url", help="model server root, e.g. http://sglang:30000 (llamacpp: optional)"
        )
        parser.add_argument("--model-name", default="default", help="served model id (llamacpp: GGUF path)")
        parser.add_argument("--temperature", type=float, default=0.6)
        parser.add_argument("--top-p", type=float, default=0.95)
        parser.add_argument("--max-tokens", type=_positive, default=8192, help="reasoning + answer budget")
        parser.add_argument(
            "--concurrency", type=_positive, help="requests in flight (default 4; llamacpp 1)"
        )
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for one answer")


def add_commands(commands: Any) -> None:
    """Register `eval` and its sub-commands on the `r1cds` sub-parsers object."""
    top = commands.add_parser(
        "eval", help="evaluation suites: qa, safety, crosslingual, cds, injection, report"
    )
    suites = top.add_subparsers(dest="eval_command", required=True)

    qa = suites.add_parser("qa", help="medical QA accuracy (MedQA-USMLE, MedMCQA, PubMedQA, MMLU medicine)")
    _common(qa)
    qa.add_argument("--datasets", nargs="+", choices=QA_DATASETS, default=list(QA_DATASETS))
    qa.set_defaults(run=run, eval_run=_qa)

    safety = suites.add_parser(
        "safety", help="MedSafetyBench harmful requests: refusal and harm, raw and governed"
    )
    _common(safety)
    safety.add_argument("--judge-backend", choices=BACKENDS, help="also grade replies with a judge model")
    safety.add_argument("--judge-url", help="judge model server root")
    safety.add_argument("--judge-model", default="default", help="judge model id")
    safety.add_argument(
        "--no-governed", action="store_true", help="skip the pass through the review and governance"
    )
    safety.add_argument(
        "--fixtures", type=Path, help="folder of FHIR Bundles; the first is the governed pass's chart"
    )
    safety.set_defaults(run=run, eval_run=_safety)

    cross = suites.add_parser(
        "crosslingual", help="parallel MMLU medicine items in en/fr/es/hi: accuracy, agreement"
    )
    _common(cross)
    cross.add_argument("--languages", nargs="+", choices=LANGUAGES, default=list(LANGUAGES))
    cross.add_argument(
        "--include-flagged", action="store_true", help="keep rows SOURCES.md flags as mistranslated"
    )
    cross.set_defaults(run=run, eval_run=_crosslingual)

    for name, helptext in (
        ("cds", "the pipeline end to end over the fixture patients: cards, rejections, citations, latency"),
        ("injection", "FHIR notes carrying injected instructions through the pipeline (free text on)"),
    ):
        pipeline = suites.add_parser(name, help=helptext)
        _common(pipeline)
        pipeline.add_argument("--url", help="a running R1 CDS deployment (default: start the embedded stack)")
        pipeline.add_argument(
            "--audit-database-url",
            help="the deployment's audit database, for rejection reasons (embedded stack: its own)",
        )
        pipeline.add_argument(
            "--fixtures",
            type=Path,
            help="folder of FHIR patient Bundles (default ../shared/fixtures/synthea)",
        )
        pipeline.add_argument("--wait", type=float, default=900.0, help="seconds to wait for each AI review")
        pipeline.add_argument(
            "--key",
            type=Path,
            help="with --url: private key (JWK JSON or PEM, ES384 or RS384) signing each hook call as an EHR",
        )
        pipeline.add_argument("--iss", default="https://r1cds-eval.invalid", help="with --key: JWT issuer")
        pipeline.add_argument("--kid", help="with --key: key id (default: the JWK's kid or its thumbprint)")
        pipeline.add_argument("--jku", help="with --key: JWK set URL to name in the JWT header")
        pipeline.set_defaults(run=run, eval_run=_cds if name == "cds" else _injection)

    report = suites.add_parser("report", help="HTML report comparing finished runs side by side")
    report.add_argument(
        "runs", type=Path, nargs="*", help="run folders, or folders of runs (default: the output folder)"
    )
    report.add_argument("--output", type=Path, help="folder of runs (default R1CDS_EVAL_OUTPUT or eval-runs)")
    report.add_argument("--out", type=Path, help="HTML file to write (default <output>/index.html)")
    report.set_defaults(run=run, eval_run=_report)


# ---------------------------------------------------------------------------------------------- running


def _options(args: argparse.Namespace) -> ModelRunOptions:
    settings = load_eval_settings(eval_data=args.data_dir, eval_output=args.output)
    if not settings.data_dir.is_dir():
        raise EvalError(f"no evaluation data at {settings.data_dir} (set --data-dir or R1CDS_EVAL_DATA)")
    concurrency = args.concurrency or (1 if args.backend == "llamacpp" else 4)
    return ModelRunOptions(
        data_dir=settings.data_dir,
        output=settings.eval_output,
        limit=args.limit,
        samples=args.samples or 1,
        seed=args.seed,
        temperature=args.temperature,
        top_p=args.top_p,
        max_completion_tokens=args.max_tokens,
        concurrency=concurrency,
        run_name=args.run_name,
    )


def _backend(args: argparse.Namespace) -> BackendConfig:
    return BackendConfig(
        kind=args.backend,
        url=_http_url(args.model_url, "--model-url"),
        model=args.model_name,
        api_key=os.environ.get("R1CDS_MODEL_API_KEY") or None,
        timeout_s=args.timeout,
    )


def _finish(folder: RunFolder) -> int:
    runs = load_runs([folder.path])
    own = write_report(runs, folder.path / "report.html", f"R1 CDS evaluation: {folder.path.name}")
    index = write_report(load_runs([folder.path.parent]), folder.path.parent / "index.html")
    print(f"results: {folder.path / 'results.json'}")
    print(f"report:  {own}")
    print(f"all runs compared: {index}")
    return 0


def _with_model(
    args: argparse.Namespace, suite: Callable[[LanguageModel, ModelRunOptions], Awaitable[RunFolder]]
) -> int:
    options = _options(args)

    async def main() -> RunFolder:
        async with open_backend(_backend(args)) as model:
            return await suite(model, options)

    return _finish(run_sync(main()))


def _qa(args: argparse.Namespace) -> int:
    from evals.suites.qa import run_qa

    async def suite(model: LanguageModel, options: ModelRunOptions) -> RunFolder:
        folder, _ = await run_qa(model, options, args.datasets)
        return folder

    return _with_model(args, suite)


def _safety(args: argparse.Namespace) -> int:
    from evals.suites.safety import run_safety

    judge = None
    if args.judge_backend:
        judge = BackendConfig(
            kind=args.judge_backend,
            url=_http_url(args.judge_url, "--judge-url"),
            model=args.judge_model,
            timeout_s=args.timeout,
        )

    async def suite(model: LanguageModel, options: ModelRunOptions) -> RunFolder:
        if judge is None:
            folder, _ = await run_safety(
                model, options, judge=None, governed=not args.no_governed, fixtures=args.fixtures
            )
            return folder
        async with open_backend(judge) as judge_model:
            folder, _ = await run_safety(
                model, options, judge=judge_model, governed=not args.no_governed, fixtures=args.fixtures
            )
            return folder

    return _with_model(args, suite)


def _crosslingual(args: argparse.Namespace) -> int:
    from evals.suites.crosslingual import run_crosslingual

    async def suite(model: LanguageModel, options: ModelRunOptions) -> RunFolder:
        folder, _ = await run_crosslingual(
            model, options, args.languages, include_flagged=args.include_flagged
        )
        return folder

    return _with_model(args, suite)


def _pipeline(args: argparse.Namespace, suite: str) -> int:
    from evals.pipeline import PipelineOptions, run_pipeline_suite

    options = _options(args)
    fixtures = args.fixtures or options.data_dir.parent / "fixtures" / "synthea"
    _check_deployment(_http_url(args.url, "--url"))
    pipeline = PipelineOptions(
        url=args.url,
        audit_database_url=args.audit_database_url,
        fixtures=fixtures,
        wait_s=args.wait,
        backend=_backend(args),
        samples=args.samples,
        signer=_signer(args),
    )
    return _finish(run_pipeline_suite(suite, options, pipeline))


def _check_deployment(url: str | None) -> None:
    """Fail at once on a deployment that does not answer, rather than after recording every item as failed."""
    if url is None:
        return
    discovery = f"{url.rstrip('/')}/cds-services"
    try:
        response = httpx.get(discovery, timeout=10.0)
    except httpx.TransportError as exc:
        raise _Unreachable(f"could not reach the CDS service at {_origin(url)}: {_reason(exc)}") from None
    if response.status_code != 200:
        raise _Unreachable(f"discovery at {_origin(url)} answered HTTP {response.status_code}")


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}{f':{parsed.port}' if parsed.port else ''}"


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    lines = str(exc).strip().splitlines()
    return re.sub(r"^\[Errno -?\d+\]\s*", "", lines[0]) if lines else type(exc).__name__


def _signer(args: argparse.Namespace) -> Any:
    if args.key is None:
        return None
    if args.url is None:
        raise EvalError(
            "--key signs calls to a deployment: it needs --url (the embedded stack trusts the harness)"
        )
    from cds_hooks.fire import Signer

    try:
        return Signer.from_file(args.key, issuer=args.iss, kid=args.kid, jku=args.jku)
    except (OSError, ValueError) as exc:
        raise EvalError(f"cannot read the signing key {args.key}: {type(exc).__name__}") from None


def _cds(args: argparse.Namespace) -> int:
    return _pipeline(args, "cds")


def _injection(args: argparse.Namespace) -> int:
    return _pipeline(args, "injection")


def _report(args: argparse.Namespace) -> int:
    settings = load_eval_settings(eval_output=args.output)
    folders = args.runs or [settings.eval_output]
    target = args.out or settings.eval_output / "index.html"
    print(write_report(load_runs(folders), target))
    return 0


def _failure(exc: Exception) -> tuple[str, int] | None:
    """The one-line message and exit status of a failure the user can fix; None for a bug."""
    if isinstance(exc, EvalError):
        return str(exc), 2
    if isinstance(exc, _Unreachable | ModelError):
        return str(exc), 1  # the model server or the deployment, not what was typed
    if "workers.audit_store" in sys.modules:  # --audit-database-url is read only by the pipeline suites
        from workers.audit_store import AuditStoreError

        if isinstance(exc, AuditStoreError):
            return f"--audit-database-url: {exc}", 2
    return None


def run(args: argparse.Namespace) -> int:
    """Run the sub-command, mapping the harness's own failures to one line on stderr and a status."""
    try:
        code: int = args.eval_run(args)
    except Exception as exc:
        failure = _failure(exc)
        if failure is None:
            raise  # anything else reaches cds_hooks.cli.main, which knows settings and file errors
        message, status = failure
        lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
        print(f"r1cds: error: {'; '.join(lines)}", file=sys.stderr)
        return status
    return code
