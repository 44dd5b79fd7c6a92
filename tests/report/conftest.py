"""The synthetic report every test in this folder reads (built once per module)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_support import build_report


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic report per test module."""
    return build_report(tmp_path_factory.mktemp("run"))
