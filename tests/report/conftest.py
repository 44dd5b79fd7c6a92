"""The synthetic report every test in this folder reads (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_support import build_report


@pytest.fixture(scope="session")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic report for the session (the tests only read it)."""
    return build_report(tmp_path_factory.mktemp("run"))
