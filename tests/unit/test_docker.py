"""docker/: the compose files start only commands, options and settings that exist, and keep production safe.

The YAML checks always run. `docker compose config` runs too where Compose v2 is installed (the docker CLI
plugin, or the standalone `docker-compose` v2 binary; Debian's docker-compose 1.x predates the files' syntax).
CI installs it and sets R1CDS_REQUIRE_COMPOSE=1, which turns its absence into a failure instead of a skip.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from cds_hooks.cli import parser as cli_parser
from cds_hooks.settings import Settings
from workers.settings import ReviewSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
R1_OVERRIDE = DOCKER / "compose.r1-8xh200.yaml"
DOCKERFILE = DOCKER / "Dockerfile"

SETTING_NAMES = {"R1CDS_" + name.upper() for name in (*Settings.model_fields, *ReviewSettings.model_fields)}
APP_SERVICES = ("api", "worker")  # the services that run our image
TRUE = {"1", "true", "yes", "on"}
ANY_INTERFACE = "0.0.0.0"  # noqa: S104 - inside a container, published ports decide who reaches it
SHELL = {"POSTGRES_PASSWORD": "validation-only"}  # what `docker compose up` requires from the shell


# --- reading compose files --------------------------------------------------------------------------------


class _ComposeLoader(yaml.SafeLoader):
    """SafeLoader that reads Compose's merge tags (`!override`, `!reset`) as their plain value."""


def _plain_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_ComposeLoader.add_constructor("!override", _plain_tag)
_ComposeLoader.add_constructor("!reset", _plain_tag)


def load(path: Path) -> dict[str, Any]:
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_ComposeLoader)  # noqa: S506
    assert isinstance(document, dict)
    return document


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}` and `$$`."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if present:
            return env[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise AssertionError(f"${{{name}}} is required: {arg}")
        return ""

    return _VARIABLE.sub(one, value)


def environment(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """A service's environment (mapping or KEY=VALUE list form), interpolated."""
    raw = service.get("environment") or {}
    pairs = dict(item.split("=", 1) for item in raw) if isinstance(raw, list) else raw
    return {str(k): interpolate("" if v is None else str(v), env) for k, v in pairs.items()}


def argv(command: Any) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def option(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def merged(*documents: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Services after Compose's merge rules for what these files use: command and healthcheck test replace,
    environment merges by key, other mappings merge, the GPU reservation is replaced (`!override`)."""
    services: dict[str, dict[str, Any]] = {}
    for document in documents:
        for name, service in document.get("services", {}).items():
            services[name] = _merge(services.get(name, {}), service)
    return services


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base[key], value) if key in base and key != "command" else value
        return out
    return override


def all_services() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in (COMPOSE, R1_OVERRIDE):
        for name, service in load(path).get("services", {}).items():
            yield path.name, name, service


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return merged(compose)


@pytest.fixture(scope="module")
def r1_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return merged(compose, load(R1_OVERRIDE))


# --- our image: same build for api and worker, commands the CLI accepts ----------------------------------------


def test_api_and_worker_run_one_image_built_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    api, worker = services["api"], services["worker"]
    assert api["build"] == worker["build"]
    assert api["image"] == worker["image"]
    context = (DOCKER / api["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / api["build"]["dockerfile"]).resolve() == DOCKERFILE


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    top = cli_parser()
    actions = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return dict(actions[0].choices)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_commands_are_r1cds_subcommands_with_valid_options(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    args = argv(services[name]["command"])
    subcommands = _subcommands()
    assert args[0] in subcommands, f"{name}: `r1cds {args[0]}` is not a subcommand ({sorted(subcommands)})"
    try:
        subcommands[args[0]].parse_args(args[1:])
    except SystemExit as exc:  # argparse reports a bad option by exiting
        pytest.fail(f"{name}: `r1cds {' '.join(args)}` is refused by the CLI ({exc})")


def test_api_serves_and_worker_works(services: dict[str, dict[str, Any]]) -> None:
    assert argv(services["api"]["command"])[0] == "serve"
    assert argv(services["worker"]["command"])[0] == "worker"
    assert services["worker"]["deploy"]["replicas"] >= 1
    assert "8000:8000" in " ".join(services["api"]["ports"])


# --- settings: only real ones, valid together, identical review settings on both sides -------------------


@pytest.mark.parametrize(
    ("path", "name", "service"), list(all_services()), ids=[f"{p}:{n}" for p, n, _ in all_services()]
)
def test_every_r1cds_variable_is_a_setting(path: str, name: str, service: dict[str, Any]) -> None:
    raw = service.get("environment") or {}
    names = [item.split("=", 1)[0] for item in raw] if isinstance(raw, list) else list(raw)
    unknown = sorted(n for n in names if n.startswith("R1CDS_") and n not in SETTING_NAMES)
    assert not unknown, f"{path} {name}: not a field of Settings or ReviewSettings: {unknown}"


def _load_settings(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]
) -> tuple[Settings, ReviewSettings]:
    for key in list(os.environ):
        if key.startswith("R1CDS_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(), ReviewSettings()


@pytest.mark.parametrize("variant", ["default", "r1-8xh200"])
def test_api_and_worker_environments_load_and_agree_on_review_settings(
    monkeypatch: pytest.MonkeyPatch,
    services: dict[str, dict[str, Any]],
    r1_services: dict[str, dict[str, Any]],
    variant: str,
) -> None:
    chosen = services if variant == "default" else r1_services
    _, api_review = _load_settings(monkeypatch, environment(chosen["api"], SHELL))
    _, worker_review = _load_settings(monkeypatch, environment(chosen["worker"], SHELL))
    # The model id is part of every fingerprint and the task limits size the API's lock: one value each.
    shared = set(ReviewSettings.model_fields) - {"worker_concurrency"}
    api_values = {k: getattr(api_review, k) for k in shared}
    worker_values = {k: getattr(worker_review, k) for k in shared}
    assert api_values == worker_values
    assert api_review.model_backend == "sglang"
    assert api_review.visibility_s > api_review.task_hard_limit_s


def test_production_safety() -> None:
    for path, name, service in all_services():
        env = environment(service, SHELL)
        for key in ("R1CDS_AUTH_DISABLED", "R1CDS_TRUST_CDS_HOOKS_SANDBOX"):
            assert env.get(key, "false").strip().lower() not in TRUE, f"{path} {name} sets {key}"
        assert "*" not in env.get("R1CDS_CORS_ORIGINS", ""), f"{path} {name}: wildcard CORS"
    dockerfile_env = _dockerfile_env()
    assert "R1CDS_AUTH_DISABLED" not in dockerfile_env
    assert "R1CDS_TRUST_CDS_HOOKS_SANDBOX" not in dockerfile_env


def test_api_settings_load_and_fail_closed(
    monkeypatch: pytest.MonkeyPatch, services: dict[str, dict[str, Any]]
) -> None:
    settings, _ = _load_settings(monkeypatch, environment(services["api"], SHELL))
    assert not settings.auth_disabled
    assert settings.all_tenants() == ()  # until the operator names tenants, no caller is trusted
    tenants = '[{"name": "ehr", "issuer": "https://ehr.example.org", "jku_allowlist": ["https://ehr.example.org/jwks"]}]'
    settings, _ = _load_settings(
        monkeypatch, environment(services["api"], {**SHELL, "R1CDS_TENANTS": tenants})
    )
    assert [t.name for t in settings.tenants] == ["ehr"]


# --- health checks ---------------------------------------------------------------------------------------


def _health(service: dict[str, Any]) -> list[str]:
    check = service.get("healthcheck") or {}
    assert not check.get("disable"), "health check disabled"
    test = check.get("test")
    assert test, "no health check"
    return argv(test)


def test_health_checks(services: dict[str, dict[str, Any]]) -> None:
    assert "redis-cli" in _health(services["redis"])
    assert "ping" in _health(services["redis"])
    assert "pg_isready" in _health(services["postgres"])
    assert any("/health" in part for part in _health(services["sglang"]))
    assert any("/healthz" in part for part in _health(services["api"]))
    assert any("/health" in part for part in _health(services["router"]))
    # The image's check asks the API port; the worker serves no HTTP and must not turn unhealthy for it.
    assert services["worker"]["healthcheck"] == {"disable": True}


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    worker = services["worker"]["depends_on"]
    assert worker["redis"]["condition"] == worker["sglang"]["condition"] == "service_healthy"
    assert services["postgres"]["volumes"], "the audit database needs a volume"


# --- SGLang and the router -------------------------------------------------------------------------------


def _port(url: str) -> int:
    parts = urlsplit(url)
    assert parts.port is not None, url
    return parts.port


def _check_sglang(services: dict[str, dict[str, Any]], *, gpus: int) -> list[str]:
    args = argv(services["sglang"]["command"])
    assert args[:3] == ["python3", "-m", "sglang.launch_server"]
    assert option(args, "--reasoning-parser") == "deepseek-r1"
    assert option(args, "--host") == ANY_INTERFACE
    review = environment(services["worker"], SHELL)
    model_url = review["R1CDS_MODEL_URL"]
    assert urlsplit(model_url).hostname == "sglang"
    assert int(option(args, "--port")) == _port(model_url)
    assert any(str(_port(model_url)) in part for part in _health(services["sglang"]))
    assert option(args, "--served-model-name") == review["R1CDS_MODEL_NAME"]
    (device,) = services["sglang"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert device["count"] == gpus
    assert services["sglang"].get("ipc") == "host" or "shm_size" in services["sglang"]
    return args


def test_sglang_serves_the_r1_distill_on_one_gpu(services: dict[str, dict[str, Any]]) -> None:
    args = _check_sglang(services, gpus=1)
    assert option(args, "--model-path") == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    assert "/root/.cache/huggingface" in " ".join(services["sglang"]["volumes"])


def test_full_r1_variant_uses_eight_gpus(r1_services: dict[str, dict[str, Any]]) -> None:
    # Compose appends lists from an override file; !override makes the 8 GPUs replace the 1.
    assert re.search(r"devices:\s*!override", R1_OVERRIDE.read_text(encoding="utf-8"))
    args = _check_sglang(r1_services, gpus=8)
    assert option(args, "--model-path") == "deepseek-ai/DeepSeek-R1"
    assert int(option(args, "--tp-size")) == 8
    assert "--trust-remote-code" in args


def test_router_profile_fronts_sglang(services: dict[str, dict[str, Any]]) -> None:
    router = services["router"]
    assert router["profiles"] == ["router"]
    args = argv(router["command"])
    assert args[:3] == ["python3", "-m", "sglang_router.launch_router"]
    sglang_port = option(argv(services["sglang"]["command"]), "--port")
    assert option(args, "--worker-urls") == f"http://sglang:{sglang_port}"
    assert option(args, "--host") == ANY_INTERFACE
    # SGLANG_URL=http://router:<port> sends the review path through it.
    routed = environment(
        services["worker"], {**SHELL, "SGLANG_URL": f"http://router:{option(args, '--port')}"}
    )
    assert _port(routed["R1CDS_MODEL_URL"]) == int(option(args, "--port"))


# --- Dockerfile ------------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    logical = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    out = []
    for line in logical.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in _instructions():
        if keyword == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
    return env


def test_dockerfile_runs_r1cds_as_a_non_root_user() -> None:
    instructions = _instructions()
    values = {keyword: rest for keyword, rest in instructions}  # the last one of each counts
    assert values["ENTRYPOINT"] == '["r1cds"]'
    assert values["CMD"] == '["serve"]'
    assert "serve" in _subcommands()
    assert values["USER"] not in ("root", "0")
    assert values["EXPOSE"] == "8000"
    assert "/healthz" in values["HEALTHCHECK"]
    assert "curl" not in values["HEALTHCHECK"]  # not in slim images
    env = _dockerfile_env()
    assert env["R1CDS_HOST"] == ANY_INTERFACE
    assert {k for k in env if k.startswith("R1CDS_")} <= SETTING_NAMES
    assert [k for k, _ in instructions].count("FROM") == 2
    assert all(
        "python:3.11-slim" in rest for k, rest in instructions if k == "ARG" and "PYTHON_IMAGE" in rest
    )


def test_dockerfile_installs_the_project_without_extras_from_the_runtime_lock() -> None:
    installs = [rest for keyword, rest in _instructions() if keyword == "RUN" and re.search(r"\bpip\b", rest)]
    assert len(installs) == 3  # wheels of the locked dependencies, the project's wheel, install them
    for command in installs:
        # `.[cpu]`, `r1-cds[dev,cpu]`, ...: production talks to SGLang over HTTP and needs neither.
        assert not re.search(r"\[[^\]]*\b(cpu|dev)\b", command), f"an extra is installed: {command}"
        assert "llama" not in command and "gguf" not in command, command
    dependencies, project, install = installs
    assert "--require-hashes" in dependencies and "-r requirements/runtime.txt" in dependencies
    assert project.split()[-1] == "." and "--no-deps" in project
    assert "--require-hashes -r /wheels/runtime.txt" in install
    assert install.split()[-1] == "r1-cds" and "--no-deps" in install
    locked = (ROOT / "requirements" / "runtime.txt").read_text(encoding="utf-8")
    assert "llama-cpp-python" not in locked and "pytest" not in locked


def test_build_context_keeps_what_the_image_needs() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    assert {".venv", ".git", "*.gguf"} <= ignored
    for keyword, rest in _instructions():
        if keyword == "COPY" and "--from" not in rest:
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source not in ignored, f"{source} is copied but excluded by .dockerignore"


# --- the docker CLI, where it is installed ----------------------------------------------------------------


REQUIRE_COMPOSE = "R1CDS_REQUIRE_COMPOSE"


def _compose_command() -> list[str] | None:
    """How to call Compose v2 here: the docker CLI plugin, else a standalone v2 binary; None without one."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run(
            [*command, "version", "--short"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode == 0 and probe.stdout.strip().lstrip("v").startswith("2."):
            return command
    return None


@pytest.mark.parametrize(
    "extra",
    [[], ["-f", str(R1_OVERRIDE)], ["--profile", "router"]],
    ids=["default", "r1-8xh200", "router"],
)
def test_docker_compose_config_accepts_the_files(extra: list[str]) -> None:
    compose_command = _compose_command()
    if compose_command is None:
        if os.environ.get(REQUIRE_COMPOSE) == "1":
            pytest.fail(f"{REQUIRE_COMPOSE}=1 but Compose v2 is not installed (see .ci/run)")
        pytest.skip(
            "Compose v2 is not installed here (see .ci/run for how CI installs it); the YAML checks ran"
        )
    env = {**os.environ, "POSTGRES_PASSWORD": "only-for-config-validation"}
    result = subprocess.run(
        [*compose_command, "-f", str(COMPOSE), *extra, "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
