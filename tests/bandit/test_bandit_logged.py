"""The bandit on the bot's own logs: logged-feedback training, OPE on the logs, fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from events_simulation import BotSpec, simulate_bot, write_files

from configs.data import SyntheticConfig
from configs.settings import load_config
from pipelines.data.synthetic import generate_bars
from pipelines.events import FolderSource, LocalStorage, ingest_events, read_dataset
from pipelines.features import featurize
from pipelines.models.bandit.logged import logged_split
from pipelines.models.base import TrainInputs, run_trainer
from pipelines.models.specs import SPECS
from pipelines.seeding import Streams
from pipelines.strategies import compute_signals

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def logged_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Bars, their features and a simulated bot's joined events, ingested from a folder."""
    bars = generate_bars(SyntheticConfig(n_bars=900), 5)
    log = simulate_bot(bars.drop(columns="regime"), BotSpec(epsilon=0.3, seed=4))
    root = tmp_path_factory.mktemp("logs")
    write_files(log.files, root / "src")
    ingest_events(FolderSource(root / "src"), LocalStorage(root / "state"))
    joined = read_dataset(LocalStorage(root / "state"), "joined")
    return {
        "bars": bars,
        "features": featurize(bars).frame,
        "signals": compute_signals(bars),
        "joined": joined,
        "truth": log.truth,
    }


def _cfg(min_joined: int, min_ess: float = 100.0):
    base = load_config().bandit
    return base.model_copy(
        update={
            "epochs": 3,
            "n_bootstrap": 60,
            "logged": base.logged.model_copy(update={"min_joined": min_joined, "min_ess": min_ess}),
        }
    )


def _train(world: dict[str, object], min_joined: int, out: Path, min_ess: float = 100.0):
    inputs = TrainInputs(world["bars"], world["features"], world["signals"], events=world["joined"])  # type: ignore[arg-type]
    spec = SPECS["bandit"]
    cfg = _cfg(min_joined, min_ess)
    return run_trainer(spec, inputs, cfg, Streams(7).child("bandit"), out, 1e-5)


def test_split_is_time_ordered_and_purged(logged_world) -> None:
    joined: pd.DataFrame = logged_world["joined"]  # type: ignore[assignment]
    split = logged_split(joined, logged_world["features"], _cfg(100).logged)  # type: ignore[arg-type]
    assert split is not None
    assert split.n_joined == len(joined)
    assert split.train.ts.max() <= split.hold.ts.min()
    closed = joined.set_index("event_id")["closed_at"]
    closed_tr = pd.to_datetime(closed.loc[list(split.train.event_id)], utc=True)
    first_hold = pd.Timestamp(split.hold.ts.min(), tz="UTC")
    assert (closed_tr <= first_hold).all()
    assert split.purged > 0  # trades open across the split point exist at horizon 6
    n_valid = len(joined) - split.dropped_no_features
    assert len(split.hold) == round(n_valid * 0.3)
    assert len(split.train) + split.purged + len(split.hold) == n_valid
    # too few joined decisions, or none at all: no logged split
    assert logged_split(joined, logged_world["features"], _cfg(len(joined) + 1).logged) is None  # type: ignore[arg-type]
    assert logged_split(None, logged_world["features"], _cfg(100).logged) is None  # type: ignore[arg-type]


def test_bandit_trains_and_is_judged_on_the_bots_logs(logged_world, tmp_path: Path) -> None:
    joined: pd.DataFrame = logged_world["joined"]  # type: ignore[assignment]
    # min_ess 1: this test is about how the logs score a candidate (the ESS refusal has its
    # own test below and in tests/events/test_events_budgeted_exploration.py)
    result = _train(logged_world, 200, tmp_path, min_ess=1.0)
    m = result.metrics
    assert m["train/feedback"] == 1.0
    assert m["logs/ess_sufficient"] == 1.0 and m["logs/min_ess"] == 1.0
    assert m["logs/ess/bandit"] == pytest.approx(m["logs/ess"], rel=1e-9)
    n_hold = round(len(joined) * 0.3)
    # the held-out logs are cut into the test span (gates, table) and the later confirmation
    n_test = int(m["logs/n_decisions"])
    assert 0 < n_test < n_hold and n_test + m["confirm/logs/n_decisions"] == n_hold
    assert m["logs/n_joined"] == len(joined)
    for key in ("logs/ope/logging", "logs/ope/candidate", "logs/lift/candidate_vs_logging"):
        for est in ("ips", "snips", "dr"):
            lo, v, hi = m[f"{key}/{est}_ci_low"], m[f"{key}/{est}"], m[f"{key}/{est}_ci_high"]
            assert np.isfinite([lo, v, hi]).all()
            assert lo <= hi, key
    assert m["logs/reliable"] in (0.0, 1.0) and m["confirm/logs/reliable"] in (0.0, 1.0)
    key = "logs/lift/candidate_vs_logging/dr"
    assert m[f"confirm/{key}_ci_low"] <= m[f"confirm/{key}_ci_high"]
    gates = {g.name: g for g in result.gates}
    assert gates["logged_dr_lift_lower_bound"].value == pytest.approx(m[f"{key}_ci_low"] * 1e4)
    twin = gates["logged_dr_lift_lower_bound_confirmation"]
    assert twin.span == "confirm" and twin.value == pytest.approx(m[f"confirm/{key}_ci_low"] * 1e4)
    assert "logged_estimate_reliable_confirmation" in gates
    assert 0.0 < m["logs/ess_fraction"] <= 1.0
    # the candidate is deterministic: its weights are 0 or 1/p, so the largest is 1/min(p)
    assert m["logs/max_weight"] <= 1.0 / m["logs/min_propensity"] + 1e-9
    # the live policy's realised reward is the mean net return of the test-span decisions
    ordered = joined.sort_values(["ts", "symbol", "event_id"])["reward"].to_numpy()
    hold_rewards = ordered[-n_hold:][:n_test]
    assert m["logs/realized_reward"] == pytest.approx(hold_rewards.mean(), rel=1e-9)
    # the logging policy evaluated on its own logs: IPS is exactly the realised mean
    assert m["logs/ope/logging/ips"] == pytest.approx(m["logs/realized_reward"], rel=1e-9)
    table = pd.read_csv(result.artifacts["logs_ope"])
    assert table["policy"].tolist() == ["logging", "candidate", "lift/candidate_vs_logging"]
    assert table.loc[2, "dr"] == pytest.approx(m["logs/lift/candidate_vs_logging/dr"], rel=1e-6)
    png = result.artifacts["logs_ope_plot"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert Path(result.onnx_path).is_file() and result.onnx_max_abs_diff < 1e-5


def test_bandit_falls_back_to_full_information_below_min_joined(
    logged_world, tmp_path: Path
) -> None:
    joined: pd.DataFrame = logged_world["joined"]  # type: ignore[assignment]
    result = _train(logged_world, len(joined) + 1, tmp_path)
    assert result.metrics["train/feedback"] == 0.0
    assert not [k for k in result.metrics if k.startswith("logs/")]
    assert "logs_ope" not in result.artifacts
    assert "lift/bandit_vs_best_arm/exact_ci_low" in result.metrics  # the exact lift on bars


def test_logged_gate_says_so_when_the_effective_sample_is_too_small(
    logged_world, tmp_path: Path
) -> None:
    result = _train(logged_world, 200, tmp_path, min_ess=1e6)
    m = result.metrics
    ess = min(m["logs/ess/bandit"], m["confirm/logs/ess/bandit"])
    assert m["logs/ess_sufficient"] == 0.0 and ess < 1e6
    gates = [g for g in result.gates if g.name.startswith("logged")]
    assert [g.name for g in gates] == ["logged_effective_sample"]
    assert not gates[0].passed and gates[0].value == pytest.approx(ess)
    assert not result.passed
