"""The closed-loop replay: the decision engine trades a bar history while the training flow
retrains on what the engine has seen and logged, and the engine hot-reloads what passes.

Composition only: the cycle loop, the scoring and the plot are ``pipelines.bot.replay``; the
training is the real flow (``flows.training.run_training``), run once before the first cycle
and after every cycle on

- the bars seen so far, written to ``<workdir>/replay/feed/bars.parquet`` (``data.source:
  files`` points there, so collect appends only the new bars each time), and
- the live engine's event log ``<workdir>/replay/events`` (``events.source: folder``): its
  decisions, and their outcomes once each reward window has closed.

Everything the replay writes lives under ``<workdir>/replay``; the training runs use
``<workdir>/replay/work`` as their workdir (bar store, MLflow, model store, run reports), so a
replay never mixes its bars with a workdir's own.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from configs import Settings
from configs.settings import ConfigError
from flows.replay_input import ReplayInput, replay_input
from pipelines.bot import DecisionEngine, EngineConfig, EventLog
from pipelines.bot.replay import (
    ReplayResult,
    ReplaySettings,
    Verdict,
    exits_verdict,
    loop_verdict,
    plot_replay,
    published_exits,
    run_replay,
)
from pipelines.models.regime.train import bocd_prior_variance
from pipelines.registry import open_store
from pipelines.registry.keys import keyring_from_env
from tasks.context import store_uri

BOT_ID = "replay"
#: The live engine's event files: one per day of bar time. A replay writes a day of hourly
#: bars in seconds, so hourly files would leave the training flow's ingest one file (two
#: decisions) per bar hour to list, open and validate (15,800 files, about 2 of the 8 min of
#: the 3 x 2,000-bar demo replay). The events, so what the trainings learn, are the same.
EVENT_INTERVAL = "1D"


def loop_settings(settings: Settings, root: Path) -> Settings:
    """The training flow's settings inside the replay: bars from the feed file, events from
    the engine's log folder, every output under ``root/work``; training forced each cycle."""
    data = settings.data.model_copy(
        update={"source": "files", "path": root / "feed" / "bars.parquet"}
    )
    events = settings.events.model_copy(update={"source": "folder", "path": root / "events"})
    training = settings.training.model_copy(update={"min_new_bars": 0, "state_uri": None})
    return settings.model_copy(
        update={"data": data, "events": events, "training": training, "workdir": root / "work"}
    )


def _write_feed(bars: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    bars.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _html(table: pd.DataFrame, verdicts: list[Verdict], trainings: list[dict[str, Any]]) -> str:
    shown = table.copy()
    for col in shown.columns:
        if col.startswith(("live", "frozen", "best_arm", "oracle", "exits")) and col not in (
            "best_arm_name",
            "live_versions",
        ):
            shown[col] = (shown[col] * 1e4).round(2)
    rows = "".join(
        f"<tr><td>{t['cycle']}</td><td>{html.escape(str(t['status']))}</td>"
        f"<td>{html.escape(json.dumps(t['models']))}</td></tr>"
        for t in trainings
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>edgeflow replay</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px}</style></head><body><h1>Closed-loop replay</h1>"
        + "".join(f"<p><b>{html.escape(v.line)}</b></p>" for v in verdicts)
        + "<img src='replay.png' alt='replay plot'>"
        "<h2>Reward per decision by cycle (bps, CI in _low/_high)</h2>"
        f"{shown.to_html(index=False, na_rep='-')}"
        "<h2>Training runs (before cycle N)</h2><table><tr><th>before cycle</th>"
        f"<th>status</th><th>models</th></tr>{rows}</table></body></html>"
    )


def _cycles_json(result: ReplayResult) -> list[dict[str, Any]]:
    out = []
    for c in result.cycles:
        doc: dict[str, Any] = {
            "cycle": c.cycle,
            "start": c.start.isoformat(),
            "end": c.end.isoformat(),
            "decisions": c.n_decisions,
            "best_arm": c.best_arm,
            "live_versions": c.live_versions,
            "frozen_versions": c.frozen_versions,
        }
        for name, est in (
            ("live", c.live),
            ("frozen", c.frozen),
            ("best_arm_value", c.best_arm_value),
            ("oracle", c.oracle),
            ("exits_published", c.exits_published),
            ("exits_default", c.exits_default),
        ):
            doc[name] = None if est is None else {k: float(v) for k, v in asdict(est).items()}
        doc["exits"] = None if c.exits is None else {k: list(v) for k, v in c.exits.items()}
        out.append(doc)
    return out


def run_closed_loop(
    settings: Settings,
    cycles: int,
    cycle_bars: int,
    data: Path | None = None,
    initial_bars: int | None = None,
    checked: ReplayInput | None = None,
) -> dict[str, Any]:
    """Run the replay under ``settings.workdir/replay``; returns the JSON summary.

    ``initial_bars`` (default: what is left before the cycles, at least 1000 bars) are the
    first training's history. A folder that holds a previous replay is refused: its bar store
    would hand the first training bars from the later cycles. ``checked`` is
    :func:`flows.replay_input.replay_input` of the same arguments, when the caller has run
    it already (the CLI does, before Prefect starts).
    """
    from flows.training import run_training

    if checked is None:
        checked = replay_input(settings, cycles, cycle_bars, data, initial_bars)
    root, bars, initial = checked.root, checked.bars, checked.initial_bars
    n_stamps = bars["ts"].nunique()
    b = settings.bandit
    try:
        replay = ReplaySettings(
            cycles=cycles,
            cycle_bars=cycle_bars,
            initial_bars=initial,
            reward_horizon=b.reward_horizon,
            cost_bps=b.cost_bps,
            slippage_bps=b.slippage_bps,
            seed=settings.seed,
            exit_max_hold=settings.recommendation.max_hold,
        )
    except ValueError as exc:
        raise ConfigError(f"--initial-bars {initial}: {exc}") from None
    inner = loop_settings(settings, root)
    feed = Path(inner.data.path or root / "feed" / "bars.parquet")
    events_dir = root / "events"
    events_dir.mkdir(parents=True, exist_ok=True)  # empty before the first cycle's decisions
    trainings: list[dict[str, Any]] = []

    def train(seen: pd.DataFrame, _events: Path, cycle: int) -> None:
        _write_feed(seen, feed)
        summary = run_training(inner, force=True)
        models = {
            name: {k: v for k, v in doc.items() if k in ("status", "version")}
            for name, doc in summary.get("models", {}).items()
        }
        trainings.append(
            {"cycle": cycle, "bars": len(seen), "status": summary.get("status"), "models": models}
        )

    keyring = keyring_from_env(os.environ, inner, inner.workdir)
    store = open_store(store_uri(inner), endpoint_url=inner.registry.s3_endpoint_url)
    # The online changepoint detector with the prior the first training used (its bars).
    first = bars[bars["ts"] <= np.sort(bars["ts"].unique())[initial - 1]]
    config = EngineConfig.from_settings(
        settings,
        bot_id=BOT_ID,
        epsilon=settings.events.exploration_epsilon,
        prior_var=bocd_prior_variance(first, settings.regime.holdout_fraction),
    )
    live = DecisionEngine.from_store(
        store, keyring, root / "client-live", config, EventLog(events_dir, BOT_ID, EVENT_INTERVAL)
    )
    frozen = DecisionEngine.from_store(store, keyring, root / "client-frozen", config)
    try:
        result = run_replay(
            bars, live, frozen, train, events_dir, replay, published_exits(store, keyring)
        )
    finally:
        live.close()
        frozen.close()
    verdict = loop_verdict(result, replay)
    exits = exits_verdict(result, replay)
    table = result.table()
    plot = plot_replay(result, root / "replay.png")
    table.to_csv(root / "replay_cycles.csv", index=False)
    result.decisions.to_parquet(root / "replay_decisions.parquet", index=False)
    page = root / "replay.html"
    page.write_text(_html(table, [verdict, exits], trainings), encoding="utf-8")
    return {
        "status": "ok",
        "verdict": verdict.line,
        "beats_frozen": verdict.beats_frozen,
        "live_minus_frozen": {k: float(v) for k, v in asdict(verdict.difference).items()},
        "exits_verdict": exits.line,
        "exits_beat_defaults": exits.beats_frozen,
        "published_minus_default_exits": {k: float(v) for k, v in asdict(exits.difference).items()},
        "source": str(data) if data is not None else settings.data.source,
        "bars_per_symbol": int(n_stamps),
        "initial_bars": initial,
        "cycle_bars": cycle_bars,
        "units": "net reward per decision (fraction; x1e4 = bps)",
        "cycles": _cycles_json(result),
        "trainings": trainings,
        "plot": str(plot),
        "report": str(page),
        "table": str(root / "replay_cycles.csv"),
        "events": str(events_dir),
        "training_workdir": str(inner.workdir),
    }
