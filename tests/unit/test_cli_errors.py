"""The command line's error lines: which failures become one `r1cds: error:` line, with which status."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
import pytest
from pydantic_settings import SettingsError

from cds_hooks import cli
from cds_hooks.fire import FireError, ServiceError, load_bundle, load_draft_orders, service_url
from cds_hooks.settings import load_settings
from evals import cli as eval_cli
from plugin.model_port import ModelUnavailable
from workers.settings import load_review_settings

pytestmark = pytest.mark.unit


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("r1cds: error: "), err
    return lines[0].removeprefix("r1cds: error: ")


def test_a_settings_error_names_each_variable_and_no_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R1CDS_JWT_LEEWAY_S", "999")
    monkeypatch.setenv("R1CDS_TENANTS", json.dumps([{"name": "ehr", "issuer": 7, "jku_allowlist": ["x"]}]))
    with pytest.raises(Exception) as raised:  # noqa: PT011 - pydantic's ValidationError, checked below
        load_settings()
    problem = cli.user_error(raised.value)
    assert problem is not None
    message, status = problem
    assert status == 2
    assert message.startswith("invalid R1CDS_* settings: ")
    assert "R1CDS_JWT_LEEWAY_S: Input should be less than or equal to 300" in message
    assert "R1CDS_TENANTS (0.issuer): Input should be a valid string" in message
    assert "999" not in message and "\n" not in message


def test_a_check_across_variables_keeps_its_own_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R1CDS_MODEL_BACKEND", "sglang")
    monkeypatch.delenv("R1CDS_MODEL_URL", raising=False)
    with pytest.raises(Exception) as raised:  # noqa: PT011 - pydantic's ValidationError
        load_review_settings()
    assert cli.user_error(raised.value) == (
        "invalid R1CDS_* settings: R1CDS_MODEL_BACKEND=sglang needs R1CDS_MODEL_URL",
        2,
    )


def test_unparseable_json_in_a_variable_is_named() -> None:
    error = SettingsError('error parsing value for field "tenants" from source "EnvSettingsSource"')
    assert cli.user_error(error) == ("invalid R1CDS_* settings: R1CDS_TENANTS is not valid JSON", 2)


def test_service_failures_are_status_1_and_input_failures_status_2() -> None:
    assert cli.user_error(ServiceError("could not reach it")) == ("could not reach it", 1)
    assert cli.user_error(FireError("no Patient/x in the bundle")) == ("no Patient/x in the bundle", 2)
    refused = httpx.ConnectError(
        "[Errno 111] Connection refused", request=httpx.Request("GET", "http://u:p@h:9/x?t=1")
    )
    assert cli.user_error(refused) == ("could not reach http://h:9: Connection refused", 1)


def test_a_bug_is_not_dressed_up_as_a_user_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise KeyError("a bug")

    assert cli.user_error(KeyError("a bug")) is None
    monkeypatch.setattr(cli, "_rules_report", broken)
    with pytest.raises(KeyError):
        cli.main(["rules-report", str(tmp_path)])


def test_main_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules-report", str(tmp_path / "absent.json")]) == 2
    assert (
        error_line(capsys)
        == f"cannot read the Bundle file {tmp_path / 'absent.json'}: No such file or directory"
    )


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], 'is not a FHIR Bundle (no "resourceType": "Bundle")'),
        ({"resourceType": "Bundle", "entry": {}}, 'is not a valid FHIR Bundle: "entry" must be a list'),
        ({"resourceType": "Bundle", "entry": [3]}, "is not a valid FHIR Bundle: entry 1 is not an object"),
        (
            {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": 4}}]},
            "is not a valid FHIR Bundle: entry 1's resource id is not a string",
        ),
    ],
)
def test_a_malformed_bundle_is_refused_before_it_is_loaded(
    document: object, problem: str, tmp_path: Path
) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(document))
    with pytest.raises(FireError) as raised:
        load_bundle(path)
    assert str(raised.value) == f"{path} {problem}"


def test_draft_orders_must_be_a_resource(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text(json.dumps({"status": "draft"}))
    with pytest.raises(FireError, match="not a FHIR resource or Bundle"):
        load_draft_orders(path)


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://host/x", "http:///no-host", "not a url"])
def test_service_url_refuses_what_is_not_http_without_echoing_it(url: str) -> None:
    with pytest.raises(FireError) as raised:
        service_url(url, "--url")
    assert url not in str(raised.value)
    assert service_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"


def test_eval_model_server_failure_is_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    def down(args: argparse.Namespace) -> int:
        raise ModelUnavailable("model server at http://127.0.0.1:9 failed after 3 attempts: ConnectError")

    assert eval_cli.run(argparse.Namespace(eval_run=down)) == 1
    assert error_line(capsys).startswith("model server at http://127.0.0.1:9 failed")


def test_eval_url_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["eval", "qa", "--backend", "sglang", "--model-url", "sglang:30000", "--output", str(tmp_path)]
    )
    assert code == 2
    assert error_line(capsys) == "--model-url must be an http:// or https:// URL with a host name"
