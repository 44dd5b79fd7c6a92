import numpy as np
import pandas as pd
import pytest

from pipelines.recommendations import (
    NEUTRAL,
    SAFE_BOUNDS,
    ModelViews,
    check_bounds,
    derive_recommendations,
    excursions,
    family_signals,
)


def _bars(close: list[float], symbol: str = "A") -> pd.DataFrame:
    c = np.asarray(close, dtype=float)
    return pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=len(c), freq="1h", tz="UTC"),
            "symbol": symbol,
            "open": c,
            "high": c * 1.01,
            "low": c * 0.99,
            "close": c,
            "volume": 1.0,
        }
    )


def test_excursions_by_hand() -> None:
    bars = _bars([100, 102, 99, 101, 100])
    side = np.array([1, -1, 0, 1, 1])
    mae, mfe = excursions(bars, side, horizon=2)
    # long at 100 sees +2% then -1%; short at 102 sees (99, 101) -> +2.94% / +0.98%
    assert mfe[0] == pytest.approx(0.02) and mae[0] == pytest.approx(0.01)
    assert mfe[1] == pytest.approx(1 - 99 / 102) and mae[1] == pytest.approx(0.0)
    assert np.isnan(mae[2])  # flat
    assert np.isnan(mae[3]) and np.isnan(mae[4])  # horizon runs past the data


def test_family_signal_is_sign_of_summed_arms() -> None:
    sig = pd.DataFrame({"a1": [1, 1, -1], "a2": [1, -1, -1], "b1": [0, 1, 0]})
    fam = family_signals(sig, {"a1": "A", "a2": "A", "b1": "B"})
    assert fam["A"].tolist() == [1, 0, -1] and fam["B"].tolist() == [0, 1, 0]


def _views(n: int, label: int, sizer: float | None) -> ModelViews:
    return ModelViews(
        regime_label=np.full(n, label),
        regime_confidence=np.linspace(0.4, 1.0, n),
        bandit_family=None,
        sizer_multiplier=None if sizer is None else {"A": np.full(n, sizer)},
    )


def test_values_come_from_models_and_stay_in_bounds() -> None:
    rng = np.random.default_rng(0)
    bars = _bars(list(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))))
    fams = pd.DataFrame({"A": np.where(np.arange(400) % 2 == 0, 1, -1)})
    doc = derive_recommendations(bars, fams, _views(400, 2, sizer=5.0), 6, {"x": "y"})
    cell = doc["recommendations"]["A"]["RANGE"]
    assert cell["basis"] == "models" and cell["samples"] > 300
    assert cell["position_size_multiplier"] == SAFE_BOUNDS["position_size_multiplier"][1]
    assert cell["risk_per_trade"] == pytest.approx(0.02)
    check_bounds(doc)
    assert doc["recommendations"]["A"]["PANIC"] == {
        **NEUTRAL,
        "samples": 0,
        "basis": "neutral (few samples)",
        "provenance": dict.fromkeys(NEUTRAL, "default: 0 samples in this cell (< 30)"),
    }
    prov = cell["provenance"]
    assert prov["confidence_threshold"].startswith("heuristic: 20th percentile")
    assert prov["position_size_multiplier"].startswith("sizer: the CVaR-PPO sizer")
    again = derive_recommendations(bars, fams, _views(400, 2, sizer=5.0), 6, {"x": "y"})
    assert again == doc


def test_out_of_bounds_document_is_refused() -> None:
    doc = {"recommendations": {"A": {"RANGE": {**NEUTRAL, "risk_per_trade": 0.5}}}}
    with pytest.raises(ValueError, match=r"A/RANGE: risk_per_trade=0\.5 outside"):
        check_bounds(doc)
