"""The early input check: same refusals as the flow's checks, history counted like featurize."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs import load_config
from pipelines.data.checks import check_bars
from pipelines.data.errors import DataError
from pipelines.data.precheck import (
    WARMUP_BARS,
    history_skip_reason,
    precheck_input,
    stored_rows_after_append,
)
from pipelines.data.sources import load_source
from pipelines.data.store import append_bars

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad"
GOOD = ROOT / "tests" / "data" / "good"


def _settings(tmp_path: Path, data: Path) -> object:
    return load_config(
        ROOT / "configs" / "demo.yaml",
        overrides={"workdir": str(tmp_path / "wd"), "data.source": "files", "data.path": str(data)},
    )


def _pre(s: object, tmp_path: Path, **kw: object) -> object:
    bars = Path(s.workdir) / "data" / "bars"  # type: ignore[attr-defined]
    return precheck_input(s.data, s.seed, s.profile, bars, Path(s.workdir), **kw)  # type: ignore[attr-defined]


def test_minimums_come_from_the_specs_without_importing_a_trainer() -> None:
    """The pre-check reads each model's minimum from its spec; the spec list must stay free of
    the trainers' imports (torch, SB3, LightGBM), or the early check loses its point."""
    from pipelines.features import WARMUP_BARS as FEATURES_WARMUP

    code = (
        "import sys; import pipelines.data.precheck as p; "
        "heavy = ('torch', 'stable_baselines3', 'lightgbm', 'prefect', 'mlflow', 'numba'); "
        "print(sorted(m for m in heavy if m in sys.modules)); print(dict(p.MIN_FEATURE_ROWS))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "{'regime': 1000, 'bandit': 500, 'sizer': 500, 'metalabel': 1000}"]
    assert WARMUP_BARS == FEATURES_WARMUP


@pytest.mark.parametrize("name", ["missing_column.csv", "nan_value.csv", "invalid_ts.csv"])
def test_refuses_with_the_flow_checks_message(tmp_path: Path, name: str) -> None:
    s = _settings(tmp_path, BAD / name)
    with pytest.raises(DataError) as flow_err:
        check_bars(load_source(s.data, s.seed), s.data.checks, interval=s.data.interval)  # type: ignore[attr-defined]
    with pytest.raises(DataError) as early:
        _pre(s, tmp_path)
    assert str(early.value) == str(flow_err.value)
    assert not (tmp_path / "wd").exists()  # nothing written to the workdir


def test_refused_quarantine_is_kept_for_the_user(tmp_path: Path) -> None:
    s = _settings(tmp_path, BAD / "nan_value.csv")
    before = (BAD / "nan_value.csv").read_bytes()
    with pytest.raises(DataError):
        _pre(s, tmp_path, quarantine_dir=tmp_path / "q")
    assert [p.name for p in (tmp_path / "q").iterdir()] == ["quarantine.csv"]
    assert (BAD / "nan_value.csv").read_bytes() == before


def test_short_history_skips_every_model_and_long_enough_does_not(tmp_path: Path) -> None:
    short = _pre(_settings(tmp_path, GOOD / "YAHOO_daily.csv"), tmp_path)
    assert short is not None and short.feature_rows == {"YAHOO_daily": 0}
    assert short.skip_reason is not None
    assert short.skip_reason.startswith("too little history for every model: regime: needs")
    demo = _pre(_settings(tmp_path, GOOD / "DEMO.csv"), tmp_path)
    assert demo is not None and demo.feature_rows == {"DEMO": 2000 - WARMUP_BARS}
    assert demo.skip_reason is None  # bandit and sizer need 500


def test_feature_rows_equal_featurize_on_the_stored_bars(tmp_path: Path) -> None:
    """Rows after the append (store + only bars newer than the watermark) minus the warm-up
    are exactly what featurize returns per symbol."""
    from pipelines.features import featurize

    s = _settings(tmp_path, GOOD / "DEMO.csv")
    checked = check_bars(load_source(s.data, s.seed), s.data.checks, interval=s.data.interval)  # type: ignore[attr-defined]
    root = tmp_path / "bars"
    head = checked.bars.iloc[:700]
    append_bars(root, head)
    overlap = checked.bars.iloc[500:]  # 200 bars already stored, 1,300 new
    rows = stored_rows_after_append(root, overlap)
    assert rows == {"DEMO": 2000}
    append_bars(root, overlap)
    from pipelines.data.store import read_bars

    counts = featurize(read_bars(root)).frame.groupby("symbol").size().to_dict()
    assert counts == {sym: n - WARMUP_BARS for sym, n in rows.items()}


def test_history_reason_matches_the_model_spec_rule() -> None:
    from pipelines.models.specs import SPECS

    for rows in ({"A": 300, "B": 900}, {"A": 999}, {"A": 1000}, {"A": 10, "B": 600}, {}):
        frame = pd.DataFrame({"symbol": np.repeat(list(rows), list(rows.values()))})
        per_model = [spec.skip_reason(frame) for spec in SPECS.values()]
        got = history_skip_reason(rows)
        if all(per_model):
            assert got == "too little history for every model: " + "; ".join(per_model)  # type: ignore[arg-type]
        else:
            assert got is None


@pytest.mark.parametrize(
    ("bad_line", "named"),
    [
        (17, "column 'open', row 17: price must be > 0 (got -5)"),
        (None, "column 'ts', row 400: duplicate ts"),
    ],
)
def test_too_short_file_still_names_its_bad_value(
    tmp_path: Path, bad_line: int | None, named: str
) -> None:
    """400 bars: too little history for any model, and one bad row; the skip must say which
    row was quarantined, not only that the history is short."""
    ts = pd.date_range("2024-01-01", periods=400, freq="h", tz="UTC")
    frame = pd.DataFrame(
        {"ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": 10.0, "high": 11.0, "low": 9.0}
    )
    frame["close"], frame["volume"] = 10.0, 100.0
    if bad_line is not None:
        frame.loc[bad_line - 1, ["open", "low", "close"]] = [-5.0, -6.0, -5.0]
    else:
        frame.loc[399, "ts"] = frame.loc[398, "ts"]
    data = tmp_path / "ES.csv"
    frame.to_csv(data, index=False)
    quarantine = tmp_path / "q"
    found = _pre(_settings(tmp_path, data), tmp_path, quarantine_dir=quarantine)
    reason = found.skip_reason  # type: ignore[attr-defined]
    assert reason.startswith(f"quarantined 1 row(s); first: {data}: ")
    assert named in reason and "too little history for every model" in reason
    assert (quarantine / "quarantine.csv").is_file()
