"""`r1cds up`'s model server: none for a scripted or remote backend; a clear error when llama.cpp is not built."""

from __future__ import annotations

import importlib.util

import pytest

from cds_hooks.stack import StackError, local_model
from workers.settings import ReviewSettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "values",
    [
        {"model_backend": "scripted"},
        {"model_backend": "sglang", "model_url": "http://sglang.invalid:30000"},
        {"model_backend": "llamacpp", "model_url": "http://llama.invalid:8080"},
    ],
)
def test_no_model_server_is_started_for_a_scripted_or_configured_backend(values: dict[str, str]) -> None:
    settings = ReviewSettings(**values)
    with local_model(settings) as used:
        assert used == settings


def test_llamacpp_without_the_cpu_extra_says_how_to_build_it_or_run_scripted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a)
    )
    with (
        pytest.raises(StackError, match=r"make install-cpu.*R1CDS_MODEL_BACKEND=scripted"),
        local_model(ReviewSettings(model_backend="llamacpp")),
    ):
        pass
