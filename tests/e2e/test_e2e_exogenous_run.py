"""A user's own files end to end: ``edgeflow run --data FOLDER --exogenous VIX.csv`` with
cross-asset features on, on arch's S&P 500 and NASDAQ daily bars and arch's VIX (shipped
offline), written out as a user's CSV exports.

What it shows: every model trains on the 43 features plus the 8 cross-asset and the 2 VIX
columns (the ONNX input widths follow); VIX starts in 2014, years after the bars, so the early
bars see it masked and the input keeps its width; each signed manifest names every column and
its source with the feature-set version; the bot's engine refuses such a model with a clear
reason instead of feeding it the 43.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from configs import load_config
from flows.training import store_uri
from pipelines.bot import DecisionEngine, EngineConfig
from pipelines.features import FEATURE_NAMES
from pipelines.features.cross_asset import CROSS_ASSET_NAMES
from pipelines.features.extended import FEATURE_SET_VERSION
from pipelines.models.specs import SPECS
from pipelines.registry.keys import keyring_from_env
from pipelines.registry.store import open_store
from pipelines.registry.verify import verify_model
from pipelines.strategies import compute_signals

TINY = Path(__file__).with_name("tiny.yaml")
KEY = "exo:" + hashlib.sha256(b"edgeflow exogenous run test key").hexdigest()
ENV = {"EDGEFLOW_HMAC_KEYS": KEY, "EDGEFLOW_SIGNING_KEY_ID": "exo"}
#: The regime classifier is made to pass (as in the other end-to-end tests), so something
#: is published for the engine to judge.
SETS = (
    "regime.min_log_loss_lift=-10.0",
    "regime.coverage_tolerance=0.99",
    "data.cross_asset.enabled=true",
)
EXTRA = (*CROSS_ASSET_NAMES, "exo_vix_close", "exo_vix_missing")
START = "2008-01-01"


def _export_bars(name: str, folder: Path) -> pd.DataFrame:
    """One of arch's indexes as a user's daily CSV (Date, Open, High, Low, Close, Volume)."""
    import importlib

    frame = importlib.import_module(f"arch.data.{name}").load()
    frame = frame.loc[START:, ["Open", "High", "Low", "Close", "Volume"]]
    frame.index.name = "Date"
    frame.to_csv(folder / f"{name.upper()}.csv")
    return frame


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, pd.DataFrame]:
    pytest.importorskip("arch")
    from arch.data import vix

    root = tmp_path_factory.mktemp("exo")
    bars_dir = root / "exports"
    bars_dir.mkdir()
    spx = _export_bars("sp500", bars_dir)
    _export_bars("nasdaq", bars_dir)
    raw = vix.load()
    raw.index.name = "Date"
    raw.rename(columns={"vix": "Close"}).to_csv(root / "VIX.csv")  # holiday gaps included
    workdir = root / "work"
    cli = Path(sys.executable).with_name("edgeflow")
    sets = [arg for s in SETS for arg in ("--set", s)]
    args = [str(cli), "run", "--config", str(TINY), "--workdir", str(workdir)]
    args += ["--data", str(bars_dir), "--exogenous", str(root / "VIX.csv"), *sets]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFLOW_")} | ENV
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    text = "\n" + done.stdout  # the summary is the last object that starts a line
    summary = json.loads(text[text.rindex("\n{") :])
    return workdir, summary, spx


def test_every_model_takes_the_configured_features(
    user_run: tuple[Path, dict, pd.DataFrame],
) -> None:
    workdir, summary, _ = user_run
    run_dir = workdir / "runs" / summary["run_id"]
    for name, spec in SPECS.items():
        (graph,) = [p for p in (run_dir / name).glob("*.onnx")]
        width = ort.InferenceSession(str(graph)).get_inputs()[0].shape[1]
        assert width == spec.input_width + len(EXTRA), (name, width)
    meta = json.loads((run_dir / "regime" / "regime_export.json").read_text())
    assert meta["feature_names"] == [*FEATURE_NAMES, *EXTRA]
    cols = json.loads((run_dir / "metalabel" / "metalabel_export.json").read_text())
    assert cols["input_columns"][: len(FEATURE_NAMES) + len(EXTRA)] == [*FEATURE_NAMES, *EXTRA]
    assert summary["features"]["version"] == FEATURE_SET_VERSION


def test_the_manifest_names_every_feature_and_its_source(
    user_run: tuple[Path, dict, pd.DataFrame],
) -> None:
    workdir, summary, _ = user_run
    assert summary["models"]["regime"]["status"] == "published", summary["models"]
    settings = load_config(TINY, overrides={"workdir": str(workdir)}, environ={})
    keyring = keyring_from_env(ENV, settings, workdir, create_dev_key=False)
    live = verify_model(open_store(store_uri(settings)), "regime", keyring)
    record = live.manifest["lineage"]["features"]
    assert record["version"] == FEATURE_SET_VERSION and len(record["id"]) == 16
    names = [c["name"] for c in record["columns"]]
    assert names == [*FEATURE_NAMES, *EXTRA]
    sources = [c["source"] for c in record["columns"]]
    assert sources == ["bars"] * 43 + ["cross_asset"] * 8 + ["exogenous:vix"] * 2
    assert record["columns"][-1]["lag"] == str(pd.Timedelta("1D"))


def test_the_engine_refuses_a_model_it_cannot_feed(
    user_run: tuple[Path, dict, pd.DataFrame], tmp_path: Path
) -> None:
    workdir, _, spx = user_run
    settings = load_config(TINY, overrides={"workdir": str(workdir)}, environ={})
    keyring = keyring_from_env(ENV, settings, workdir, create_dev_key=False)
    engine = DecisionEngine.from_store(
        open_store(store_uri(settings)), keyring, tmp_path / "cache", EngineConfig(bot_id="b")
    )
    bars = pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(spx.index[:230]).tz_localize("UTC"),
            "symbol": "SP500",
            **{c.lower(): spx[c].to_numpy(np.float64)[:230] for c in spx.columns},
        }
    )
    signals = compute_signals(bars)
    decisions = [
        engine.on_bar("SP500", b.ts, b.high, b.low, b.close, b.volume, signals.iloc[i].to_numpy())
        for i, b in enumerate(bars.itertuples(index=False))
    ]
    made = [d for d in decisions if d is not None]
    assert made
    for d in made:
        assert "regime" not in d.models
        (why,) = [f.reason for f in d.fallbacks if f.model == "regime"]
        assert "10 of them cross-asset or exogenous" in why and "only the 43" in why, why
