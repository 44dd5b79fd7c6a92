"""The meta-labeler's graphs with cross-asset and exogenous columns between the 43 and the
arm's one-hot: the design matrix, the per-arm filter's Gather of the one-hot, the width."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from pipelines.features import FEATURE_NAMES
from pipelines.models.metalabel.candidates import per_arm_filter_export, per_arm_probability
from pipelines.models.metalabel.export import INPUT_COLUMNS, input_columns
from pipelines.models.metalabel.train import design
from pipelines.strategies import ARM_NAMES, N_ARMS

EXTRA = ("xa_corr", "exo_vix_close", "exo_vix_missing")


def _trades(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    cols = {c: rng.normal(size=n).astype(np.float32) for c in (*FEATURE_NAMES, *EXTRA)}
    return pd.DataFrame({**cols, "arm": rng.integers(0, N_ARMS, n)})


def test_columns_and_design_put_the_extras_before_the_one_hot() -> None:
    columns = input_columns((*FEATURE_NAMES, *EXTRA))
    assert input_columns() == INPUT_COLUMNS
    assert columns[43:46] == EXTRA and columns[46:] == tuple(f"arm={a}" for a in ARM_NAMES)
    trades = _trades()
    x = design(trades, columns)
    assert x.shape == (len(trades), 43 + 3 + N_ARMS)
    np.testing.assert_array_equal(x[:, 43:46], trades[list(EXTRA)].to_numpy(np.float32))
    np.testing.assert_array_equal(np.argmax(x[:, 46:], axis=1), trades["arm"].to_numpy())
    np.testing.assert_array_equal(design(trades), design(trades, INPUT_COLUMNS))


def test_the_per_arm_filter_reads_the_one_hot_at_any_width(tmp_path: Path) -> None:
    columns = input_columns((*FEATURE_NAMES, *EXTRA))
    trades = _trades()
    x = design(trades, columns)
    keep = np.arange(N_ARMS) % 3 != 0
    out = per_arm_filter_export(keep, x, tmp_path / "rule.onnx", 15, columns)
    assert out.max_abs_diff == 0.0
    session = ort.InferenceSession(str(tmp_path / "rule.onnx"))
    assert session.get_inputs()[0].shape == ["N", len(columns)]
    np.testing.assert_array_equal(
        per_arm_probability(x, keep), keep[trades["arm"].to_numpy()].astype(float)
    )
    with pytest.raises(ValueError, match="columns"):
        per_arm_filter_export(keep, x[:, 3:], tmp_path / "bad.onnx", 15, columns)
