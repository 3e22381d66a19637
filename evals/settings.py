"""Settings of the evaluation harness (R1CDS_EVAL_*), built by a factory, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["EvalSettings", "default_data_dir", "load_eval_settings"]

_REPO = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    """../shared/eval-data beside the checkout, read in place (never copied into the repository)."""
    return _REPO.parent / "shared" / "eval-data"


class EvalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="R1CDS_", extra="ignore", frozen=True)

    eval_data: Path | None = None  # R1CDS_EVAL_DATA; unset: default_data_dir()
    eval_output: Path = Path("eval-runs")  # R1CDS_EVAL_OUTPUT: one folder per run, plus the comparison report

    @property
    def data_dir(self) -> Path:
        return self.eval_data if self.eval_data is not None else default_data_dir()


def load_eval_settings(**overrides: Any) -> EvalSettings:
    return EvalSettings(**{k: v for k, v in overrides.items() if v is not None})
