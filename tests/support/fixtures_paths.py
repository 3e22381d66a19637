"""Where the shared public test fixtures live, and skipping cleanly when a checkout lacks them."""

from __future__ import annotations

from pathlib import Path

import pytest

# tests/support/fixtures_paths.py → parents[2] is the repository root; fixtures sit beside the checkout.
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
SYNTHEA_FIXTURES = SHARED_FIXTURES / "synthea"


def require_shared_fixtures() -> Path:
    """Return the shared fixtures folder, skipping the calling test when it is absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(
            f"../shared/fixtures is absent (looked for {SHARED_FIXTURES}); these tests read public data"
        )
    return SHARED_FIXTURES


def synthea_bundle_paths() -> list[Path]:
    """The Synthea R4 transaction Bundles, sorted by file name; skips when none are present."""
    require_shared_fixtures()
    paths = sorted(SYNTHEA_FIXTURES.glob("*.json"))
    if not paths:
        pytest.skip(f"no Synthea bundles under {SYNTHEA_FIXTURES}")
    return paths
