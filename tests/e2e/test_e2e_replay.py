"""``edgeflow replay`` end to end on tiny budgets: three cycles, four real training runs."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("edgeflow")


def _events(folder: Path) -> list[dict]:
    out = []
    for f in sorted(folder.rglob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            out.extend(json.loads(line) for line in fh if line.strip())
    return out


def test_replay_three_cycles(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    wd = tmp_path / "wd"
    args = [str(CLI), "replay", "--config", str(ROOT / "tests/e2e/tiny.yaml"), "--cycles", "3"]
    args += ["--cycle-bars", "100", "--workdir", str(wd), "--set", "data.synthetic.n_bars=1300"]
    out = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["initial_bars"] == 1000 and summary["bars_per_symbol"] == 1300
    cycles = summary["cycles"]
    assert [c["cycle"] for c in cycles] == [0, 1, 2]
    assert all(c["decisions"] == 2 * 100 for c in cycles)  # two symbols
    first = cycles[0]
    assert first["live"]["value"] == first["frozen"]["value"]  # same models before any reload
    for c in cycles:
        for name in ("live", "frozen", "best_arm_value", "oracle"):
            est = c[name]
            assert est["low"] <= est["value"] <= est["high"], (c["cycle"], name, est)
        assert c["oracle"]["value"] >= c["best_arm_value"]["value"] - 1e-12
        assert set(c["live_versions"]) == {"regime", "bandit", "metalabel", "sizer"}
    # one training before the first cycle and after each but the last, on the bars so far
    assert [t["cycle"] for t in summary["trainings"]] == [0, 1, 2]
    assert [t["bars"] for t in summary["trainings"]] == [2 * 1000, 2 * 1100, 2 * 1200]
    assert all(
        t["status"] in ("published", "blocked", "failed", "skipped") for t in summary["trainings"]
    )
    # the verdict: one line, on stdout's JSON and on stderr
    assert "frozen first-cycle policy" in summary["verdict"]
    assert summary["verdict"] in out.stderr
    assert isinstance(summary["beats_frozen"], bool)
    # the live trades are scored under the exits the training published before each cycle
    families = {"ema_cross", "mean_reversion", "breakout", "momentum"}
    assert all(set(c["exits"]) == families for c in cycles), [c["exits"] for c in cycles]
    assert "exits" in summary["exits_verdict"] and summary["exits_verdict"] in out.stderr
    assert all(c["exits_published"]["low"] <= c["exits_published"]["high"] for c in cycles)
    # the live engine logged every decision; outcomes only for windows closed in the replay
    events = _events(Path(summary["events"]))
    decisions = [e for e in events if e["schema"].startswith("edgeflow.decision")]
    outcomes = [e for e in events if e["schema"].startswith("edgeflow.outcome")]
    assert len(decisions) == 2 * 1300 - 2 * 200  # every bar after each symbol's warm-up
    ids = {e["event_id"] for e in decisions}
    assert outcomes and {o["decision_id"] for o in outcomes} <= ids
    last = pd.Timestamp(cycles[-1]["end"])
    assert max(pd.Timestamp(o["closed_at"]) for o in outcomes) <= last
    # the training flow ingested them (its bar store holds the bars up to the last training)
    runs = sorted((Path(summary["training_workdir"]) / "runs").iterdir())
    assert len(runs) == 3
    # once the engine's outcomes are joined, they calibrate the exit simulation and the
    # recommendation says simulated vs realized per family and cell
    rec = json.loads((runs[-1] / "recommendation" / "latest_recommendation.json").read_text())
    assert set(rec["outcomes"]["exit_slippage_bps"]) == {"stop", "target", "time"}
    assert rec["outcomes"]["simulated_vs_realized"], rec["outcomes"]
    assert "outcomes" in rec["sources"]
    assert (runs[-1] / "recommendation" / "simulated_vs_realized.csv").stat().st_size > 0
    for key in ("plot", "report", "table"):
        assert Path(summary[key]).stat().st_size > 0
    page = Path(summary["report"]).read_text(encoding="utf-8")
    assert "replay.png" in page and summary["verdict"].split(":")[0] in page
    table = pd.read_csv(summary["table"])
    assert list(table["cycle"]) == [0, 1, 2]
    # a second replay into the same workdir is refused in one line (no leak of later bars)
    again = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    assert again.returncode == 2 and "holds a previous replay" in again.stderr
    assert "Traceback" not in again.stderr
