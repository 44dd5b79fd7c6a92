"""Closed-loop replay: the decision engine trades bars in cycles while training catches up.

The seed system's loop (the bot trades, logs, the trainer retrains every few hours, the bot
hot-reloads) compressed onto a bar history: the bars are cut into cycles of ``cycle_bars``
timestamps; the live engine trades each cycle bar by bar, then ``train`` runs on everything
seen so far (bars and the engine's event log) and publishes what passes its gates, and the
live engine reloads. A *frozen* engine with the first cycle's models trades the same bars
beside it, so each cycle reports:

- ``live``: the realized reward per decision of the loop's policy (each decision's arm, its
  net reward over the bandit's horizon from the bars, as the bandit is trained on), with a
  moving-block bootstrap CI;
- ``frozen``: the same for the first cycle's models, never reloaded;
- ``best_arm``: the single arm with the best mean reward on every bar before the cycle (what
  a non-contextual bot would pick), on the cycle's decisions;
- ``oracle`` (data with a true regime): each true regime's best arm on the cycle, chosen in
  hindsight: a ceiling no causal policy reaches;
- which model versions were live;
- ``exits`` (with an ``exits`` reader): each live decision's trade (its arm's side at the
  decision bar) exited by the stop-loss / take-profit the published recommendation held
  when the cycle began, for the arm's family (``family_exits``; the neutral 2.0 / 3.0 ATR
  when none is published), against the same trades under the neutral defaults: so the
  verdict covers the parameters the loop publishes, not only its models.

The training step is injected (``train(bars_so_far, events_dir, cycle)``), so this module holds
no orchestration: the CLI passes the training flow, the test a small real trainer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.bot.engine import Decision, DecisionEngine
from pipelines.data.schema import TRUE_REGIME_COLUMN
from pipelines.evaluation.ope import Estimate, block_bootstrap_starts, resample_means
from pipelines.features.names import WARMUP_BARS
from pipelines.strategies import ARM_NAMES, arm_rewards, compute_signals

log = logging.getLogger(__name__)

#: ``train(bars_so_far, events_dir, cycle)``: train on the bars (and logged events), publish
#: what passes the gates. Called before cycle 0 (on the bars before it) and after each cycle.
TrainFn = Callable[[pd.DataFrame, Path, int], None]
#: ``exits()``: the stop-loss / take-profit (ATR units) per strategy family of the
#: recommendation live now, or None when none is (the bot then runs the neutral defaults).
ExitsFn = Callable[[], Mapping[str, tuple[float, float]] | None]


@dataclass(frozen=True)
class ReplaySettings:
    """Cycle layout, reward definition (the bandit's) and the CI's bootstrap."""

    cycles: int = 3
    cycle_bars: int = 500
    initial_bars: int = 1000
    reward_horizon: int = 6
    cost_bps: float = 1.0
    slippage_bps: float = 0.5
    ci_level: float = 0.9
    n_bootstrap: int = 400
    bootstrap_block: int = 24
    seed: int = 0
    exit_max_hold: int = 24  # bars after entry at which a trade exits on time (exits only)

    def __post_init__(self) -> None:
        if self.cycles < 1 or self.cycle_bars < 1:
            raise ValueError("cycles and cycle_bars must be >= 1")
        if self.initial_bars <= WARMUP_BARS:
            raise ValueError(f"initial_bars must exceed the {WARMUP_BARS}-bar feature warm-up")
        if not 0.0 < self.ci_level < 1.0:
            raise ValueError("ci_level must be in (0, 1)")


@dataclass(frozen=True)
class CycleResult:
    """One cycle's figures (reward per decision, in reward units)."""

    cycle: int
    start: pd.Timestamp
    end: pd.Timestamp
    n_decisions: int
    live: Estimate
    frozen: Estimate
    best_arm: str
    best_arm_value: Estimate
    oracle: Estimate | None
    live_versions: dict[str, str | None]
    frozen_versions: dict[str, str | None]
    #: net return per live trade under the published exits / the defaults (None: no reader)
    exits_published: Estimate | None = None
    exits_default: Estimate | None = None
    exits: dict[str, tuple[float, float]] | None = None


@dataclass(frozen=True)
class ReplayResult:
    cycles: tuple[CycleResult, ...]
    decisions: pd.DataFrame = field(repr=False)

    def table(self) -> pd.DataFrame:
        """One row per cycle: estimates with CIs and the versions live during it."""
        rows = []
        for c in self.cycles:
            row: dict[str, object] = {
                "cycle": c.cycle,
                "start": c.start,
                "end": c.end,
                "decisions": c.n_decisions,
            }
            for name, est in (
                ("live", c.live),
                ("frozen", c.frozen),
                ("best_arm", c.best_arm_value),
                ("oracle", c.oracle),
                ("exits_published", c.exits_published),
                ("exits_default", c.exits_default),
            ):
                row[name] = est.value if est else np.nan
                row[f"{name}_low"] = est.low if est else np.nan
                row[f"{name}_high"] = est.high if est else np.nan
            row["best_arm_name"] = c.best_arm
            row["live_versions"] = ", ".join(f"{k}={v}" for k, v in c.live_versions.items())
            rows.append(row)
        return pd.DataFrame(rows)


def mean_ci(
    values: np.ndarray, level: float, n_boot: int, block: int, rng: np.random.Generator
) -> Estimate:
    """Mean with a moving-block bootstrap percentile CI (decisions in time order)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return Estimate(np.nan, np.nan, np.nan)
    means = resample_means(v, block_bootstrap_starts(len(v), block, n_boot, rng), block)
    tail = (1.0 - level) / 2.0
    return Estimate(
        float(v.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
    )


def cycle_edges(timestamps: np.ndarray, settings: ReplaySettings) -> list[tuple[int, int]]:
    """``[start, end)`` positions in the sorted unique timestamps for each cycle.

    Cycle 0 starts after ``initial_bars`` timestamps; cycles that would run past the data are
    cut short, and a cycle with no timestamps left is refused.
    """
    n = len(timestamps)
    edges: list[tuple[int, int]] = []
    for c in range(settings.cycles):
        start = settings.initial_bars + c * settings.cycle_bars
        end = min(start + settings.cycle_bars, n)
        if start >= n:
            raise ValueError(
                f"{n} timestamps hold only {len(edges)} of {settings.cycles} cycles "
                f"({settings.initial_bars} initial + {settings.cycle_bars} per cycle)"
            )
        edges.append((start, end))
    return edges


def _decision_row(d: Decision, row: int) -> dict[str, object]:
    return {
        "row": row,
        "event_id": d.event_id,
        "ts": pd.Timestamp(d.ts),
        "symbol": d.symbol,
        "arm": d.arm,
        "arm_index": d.arm_index,
        "propensity": d.propensity,
        "size_multiplier": d.size_multiplier,
        "bandit_version": d.models.get("bandit"),
    }


def close_rows(bars: pd.DataFrame, horizon: int) -> np.ndarray:
    """Per row, the row of the same symbol ``horizon`` bars later (-1 past its last bar).

    ``bars`` sorted by (ts, symbol); a decision at row i closes at ``close_rows[i]``, the bar
    whose close ends its reward window: its outcome is known only once that bar is seen.
    """
    out = np.full(len(bars), -1, dtype=np.int64)
    for _, idx in bars.groupby("symbol", sort=False).indices.items():
        idx = np.sort(idx)
        if len(idx) > horizon:
            out[idx[:-horizon]] = idx[horizon:]
    return out


def turnover_fees(
    signals: np.ndarray, rows: np.ndarray, arms: np.ndarray, nxt: np.ndarray, horizon: int
) -> np.ndarray:
    """Turnover of following each arm for ``horizon`` bars (entry, changes, exit), as
    :func:`pipelines.strategies.arm_rewards` counts it; times the unit cost gives the fees."""
    out = np.zeros(len(rows))
    for j, (r, a) in enumerate(zip(rows, arms, strict=True)):
        pos, i = [], int(r)
        for _ in range(horizon):
            pos.append(float(signals[i, a]))
            i = int(nxt[i])
            if i < 0:
                break
        path = np.asarray(pos)
        out[j] = abs(path[0]) + np.abs(np.diff(path)).sum() + abs(path[-1])
    return out


def _oracle(rewards: np.ndarray, regimes: np.ndarray) -> np.ndarray:
    """Per row, the reward of its true regime's best arm on these rows (hindsight)."""
    out = np.full(len(rewards), np.nan)
    for g in np.unique(regimes):
        rows = regimes == g
        means = np.nanmean(rewards[rows], axis=0)
        if np.isfinite(means).any():
            out[rows] = rewards[rows, int(np.nanargmax(means))]
    return out


class _Outcomes:
    """The live engine's outcome events, written once a decision's reward window closes.

    A decision at row i closes at the bar ``reward_horizon`` bars later of its symbol; its
    outcome (net return = the arm's net reward, fees from its turnover) is written when the
    replay has fed that bar, as a bot learns it, so training never sees an outcome early.
    """

    def __init__(
        self, bars: pd.DataFrame, sig: np.ndarray, rewards: np.ndarray, settings: ReplaySettings
    ) -> None:
        self.ts = bars["ts"]
        self.sig, self.rewards, self.settings = sig, rewards, settings
        self.closes = close_rows(bars, settings.reward_horizon)
        self.nxt = close_rows(bars, 1)
        self.unit_cost = (settings.cost_bps + settings.slippage_bps) / 1e4
        #: decisions whose outcome is not known yet: (event id, row, arm, size multiplier)
        self.pending: list[tuple[str, int, int, float]] = []

    def add(self, decisions: list[dict[str, object]]) -> None:
        for r in decisions:
            row, arm = int(r["row"]), int(r["arm_index"])  # type: ignore[call-overload]
            if self.closes[row] >= 0 and np.isfinite(self.rewards[row, arm]):
                self.pending.append((str(r["event_id"]), row, arm, float(r["size_multiplier"])))  # type: ignore[arg-type]

    def report(self, engine: DecisionEngine, seen: int) -> int:
        """Write the outcomes of decisions closed before row ``seen``; returns how many."""
        still, done = [], 0
        for event_id, row, arm, size in self.pending:
            close = int(self.closes[row])
            if close >= seen:
                still.append((event_id, row, arm, size))
                continue
            turnover = turnover_fees(
                self.sig, np.array([row]), np.array([arm]), self.nxt, self.settings.reward_horizon
            )[0]
            net = float(self.rewards[row, arm])
            engine.record_outcome(
                event_id,
                pd.Timestamp(self.ts.iat[close]),
                net_return=net,
                net_pnl=net * size,
                fees=float(turnover * self.unit_cost * size),
                holding_bars=self.settings.reward_horizon,
                exit_reason="time_exit",
            )
            done += 1
        self.pending = still
        return done


class _ExitReturns:
    """Net return of a decision's trade when it exits by a stop / target pair (ATR units) or
    on time (``pipelines.strategies.exits``, the recommendation's own simulation): the trade
    enters at the decision bar's close on the side of its arm's signal there; a flat arm is
    no trade (0); a trade whose window runs past its symbol's data is NaN."""

    def __init__(self, bars: pd.DataFrame, sig: np.ndarray, settings: ReplaySettings) -> None:
        from pipelines.recommendations import atr_fraction

        order = np.lexsort((bars["ts"].to_numpy(), bars["symbol"].to_numpy()))
        self.by_symbol = bars.iloc[order].reset_index(drop=True)  # symbol, then ts
        self.pos = np.empty(len(bars), dtype=np.int64)
        self.pos[order] = np.arange(len(bars))
        self.atr = atr_fraction(self.by_symbol)
        self.sig, self.settings = sig, settings

    def __call__(
        self, rows: np.ndarray, arms: np.ndarray, exits: Mapping[str, tuple[float, float]]
    ) -> np.ndarray:
        from pipelines.recommendations import NEUTRAL
        from pipelines.strategies import ARM_FAMILIES
        from pipelines.strategies.exits import simulate_exits, trade_windows

        default = (NEUTRAL["stop_loss_multiplier"], NEUTRAL["take_profit_multiplier"])
        out = np.full(len(rows), np.nan)
        side = np.sign(self.sig[rows, arms]).astype(np.float64)
        out[side == 0] = 0.0
        pairs = [exits.get(ARM_FAMILIES[ARM_NAMES[a]], default) for a in arms]
        for pair in set(pairs):
            idx = np.flatnonzero(np.array([p == pair for p in pairs], dtype=bool) & (side != 0))
            if len(idx) == 0:
                continue
            at = self.pos[rows[idx]]
            w = trade_windows(
                self.by_symbol, at, side[idx], self.atr[at], self.settings.exit_max_hold
            )
            if w.n == 0:
                continue
            pnl = simulate_exits(
                w,
                [pair[0]],
                [pair[1]],
                cost_bps=self.settings.cost_bps,
                slippage_bps=self.settings.slippage_bps,
            ).pnl[:, 0, 0]
            # ``w.row`` keeps the order of ``at`` (unique rows), minus the dropped trades
            out[idx[np.isin(at, w.row)]] = pnl
        return out


def published_exits(store: Any, keyring: Any) -> ExitsFn:
    """A reader of the verified live recommendation's per-family exits (``family_exits``),
    or None when none verifies (the bot's neutral defaults then)."""

    def read() -> dict[str, tuple[float, float]] | None:
        import json

        from pipelines.registry.verify import verify_model

        try:
            vv = verify_model(store, "recommendation", keyring, check_freshness=False)
            doc = json.loads(vv.files["latest_recommendation.json"])
        except Exception as exc:  # nothing published yet is the common case
            log.info("no verified live recommendation (%s): the replay's exits are defaults", exc)
            return None
        return {
            family: (float(cell["stop_loss_multiplier"]), float(cell["take_profit_multiplier"]))
            for family, cell in doc.get("family_exits", {}).items()
        }

    return read


def run_replay(
    bars: pd.DataFrame,
    live: DecisionEngine,
    frozen: DecisionEngine,
    train: TrainFn,
    events_dir: Path,
    settings: ReplaySettings,
    exits: ExitsFn | None = None,
) -> ReplayResult:
    """Trade ``bars`` cycle by cycle with ``live`` (reloaded after each training) and
    ``frozen`` (loaded once, before cycle 0); see the module docstring.

    Both engines see every bar from the first (their features need the history); decisions
    are scored only inside the cycles. ``live`` should write its events under ``events_dir``
    so ``train`` can learn from them. With ``exits`` (e.g. :func:`published_exits`), read
    when each cycle begins, the live decisions' trades are also scored under the published
    stop / target against the defaults.
    """
    bars = bars.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
    signals = compute_signals(bars)
    rewards = arm_rewards(
        bars, signals, settings.reward_horizon, settings.cost_bps, settings.slippage_bps
    ).to_numpy()
    sig = signals.to_numpy()
    stamps = np.sort(bars["ts"].unique())
    edges = cycle_edges(stamps, settings)
    row_stamp = np.searchsorted(stamps, bars["ts"].to_numpy())
    rng = np.random.default_rng(settings.seed)
    outcomes = _Outcomes(bars, sig, rewards, settings)
    exit_returns = _ExitReturns(bars, sig, settings) if exits is not None else None

    first = int(np.searchsorted(row_stamp, edges[0][0]))
    train(bars.iloc[:first], events_dir, 0)
    live.refresh()
    frozen.refresh()
    frozen_versions = frozen.versions

    # The bar columns read once: a ``bars.iloc[i]`` row per bar builds a pandas Series each
    # time (a sixth of the replay loop). Same values, same types (str, Timestamp, float64).
    columns = [bars["symbol"].tolist(), list(bars["ts"])]
    columns += [list(bars[c].to_numpy()) for c in ("high", "low", "close", "volume")]
    rows_in_order = list(zip(*columns, strict=True))

    def feed(lo: int, hi: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        out_live, out_frozen = [], []
        for i in range(lo, hi):
            args = (*rows_in_order[i], sig[i])
            d_live, d_frozen = live.on_bar(*args), frozen.on_bar(*args)
            if d_live is not None and d_frozen is not None:
                out_live.append(_decision_row(d_live, i))
                out_frozen.append(_decision_row(d_frozen, i))
        return out_live, out_frozen

    feed(0, first)  # warm-up and the initial span: state only
    results, logged = [], []
    for c, (start, end) in enumerate(edges):
        lo = int(np.searchsorted(row_stamp, start))
        hi = int(np.searchsorted(row_stamp, end))
        versions = live.versions
        got_live, got_frozen = feed(lo, hi)
        rows = np.array([r["row"] for r in got_live], dtype=np.int64)
        arms_live = np.array([r["arm_index"] for r in got_live], dtype=np.int64)
        arms_frozen = np.array([r["arm_index"] for r in got_frozen], dtype=np.int64)
        r_live = rewards[rows, arms_live] if len(rows) else np.empty(0)
        r_frozen = rewards[rows, arms_frozen] if len(rows) else np.empty(0)
        best = int(np.nanargmax(np.nanmean(rewards[:lo], axis=0)))
        r_best = rewards[rows, best] if len(rows) else np.empty(0)
        oracle = None
        if TRUE_REGIME_COLUMN in bars.columns and len(rows):
            regimes = bars[TRUE_REGIME_COLUMN].to_numpy()[rows]
            oracle = mean_ci(
                _oracle(rewards[rows], regimes),
                settings.ci_level,
                settings.n_bootstrap,
                settings.bootstrap_block,
                rng,
            )

        def ci(v: np.ndarray) -> Estimate:
            return mean_ci(
                v, settings.ci_level, settings.n_bootstrap, settings.bootstrap_block, rng
            )

        published = e_pub = e_def = None
        x_pub = x_def = np.full(len(rows), np.nan)
        if exit_returns is not None and exits is not None:
            published = dict(exits() or {})
            x_pub = exit_returns(rows, arms_live, published)
            x_def = exit_returns(rows, arms_live, {})
            traded = np.sign(sig[rows, arms_live]) != 0 if len(rows) else np.zeros(0, bool)
            e_pub, e_def = ci(x_pub[traded]), ci(x_def[traded])

        results.append(
            CycleResult(
                cycle=c,
                start=pd.Timestamp(stamps[start]),
                end=pd.Timestamp(stamps[end - 1]),
                n_decisions=len(rows),
                live=ci(r_live),
                frozen=ci(r_frozen),
                best_arm=ARM_NAMES[best],
                best_arm_value=ci(r_best),
                oracle=oracle,
                live_versions=versions,
                frozen_versions=frozen_versions,
                exits_published=e_pub,
                exits_default=e_def,
                exits=published,
            )
        )
        for r, value, fro, xp, xd in zip(got_live, r_live, r_frozen, x_pub, x_def, strict=True):
            logged.append(
                {
                    **r,
                    "cycle": c,
                    "reward": float(value),
                    "frozen_reward": float(fro),
                    "exit_reward": float(xp),
                    "exit_default_reward": float(xd),
                }
            )
        outcomes.add(got_live)
        outcomes.report(live, hi)
        log.info("replay cycle %d: live %s frozen %s", c, results[-1].live, results[-1].frozen)
        if c < len(edges) - 1:
            train(bars.iloc[:hi], events_dir, c + 1)
            live.refresh()
    return ReplayResult(tuple(results), pd.DataFrame(logged))


def plot_replay(result: ReplayResult, path: Path) -> Path:
    """Reward per decision per cycle with CIs: live, frozen, best arm, oracle."""
    import matplotlib.pyplot as plt

    table = result.table()
    fig, ax = plt.subplots(figsize=(8, 4))
    styles = {"live": "#1565c0", "frozen": "#757575", "best_arm": "#ef6c00", "oracle": "#2e7d32"}
    for i, (name, color) in enumerate(styles.items()):
        if table[name].isna().all():
            continue
        x = table["cycle"].to_numpy() + (i - 1.5) * 0.08
        y = table[name].to_numpy() * 1e4
        err = np.vstack([y - table[f"{name}_low"] * 1e4, table[f"{name}_high"] * 1e4 - y])
        ax.errorbar(x, y, yerr=err, fmt="o-", color=color, label=name, capsize=3)
    ax.axhline(0.0, color="#cccccc", lw=0.8)
    ax.set_xlabel("cycle")
    ax.set_ylabel("net reward per decision (bps)")
    ax.set_xticks(table["cycle"].to_numpy())
    ax.legend(fontsize=8)
    ax.set_title("closed-loop replay: realized reward per decision", loc="left", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class Verdict:
    """Did the loop learn? Live minus frozen reward per decision over the cycles after the
    first (cycle 0 trades the same models on both sides), with a block-bootstrap CI on the
    paired differences."""

    difference: Estimate
    n_decisions: int
    beats_frozen: bool
    line: str


def exits_verdict(result: ReplayResult, settings: ReplaySettings) -> Verdict:
    """One line: whether the published exits earned more than the defaults on the live
    engine's trades over every cycle (paired per trade, block-bootstrap CI above 0)."""
    d = result.decisions
    if len(d) == 0 or "exit_reward" not in d or d["exit_reward"].isna().all():
        nan = Estimate(np.nan, np.nan, np.nan)
        return Verdict(nan, 0, False, "no published exits were read: nothing to compare")
    both = d[np.isfinite(d["exit_reward"]) & np.isfinite(d["exit_default_reward"])]
    both = both[both["exit_reward"].ne(0) | both["exit_default_reward"].ne(0)]
    diff = (both["exit_reward"] - both["exit_default_reward"]).to_numpy(np.float64)
    if len(diff) == 0:
        nan = Estimate(np.nan, np.nan, np.nan)
        return Verdict(nan, 0, False, "no live trade closed inside the data: nothing to compare")
    rng = np.random.default_rng(settings.seed + 2)
    est = mean_ci(diff, settings.ci_level, settings.n_bootstrap, settings.bootstrap_block, rng)
    beats = bool(est.low > 0)
    figures = (
        f"published - default exits = {est.value * 1e4:+.2f} bps per trade "
        f"({settings.ci_level:.0%} CI {est.low * 1e4:+.2f} to {est.high * 1e4:+.2f}, "
        f"{len(diff)} trades)"
    )
    if beats:
        line = f"the published exits beat the defaults on the live trades: {figures}"
    elif np.allclose(diff, 0.0):
        line = f"the published exits are the defaults on every live trade: {figures}"
    else:
        line = f"the published exits do NOT beat the defaults on the live trades: {figures}"
    return Verdict(est, len(diff), beats, line)


def loop_verdict(result: ReplayResult, settings: ReplaySettings) -> Verdict:
    """One line: whether the later cycles beat the frozen first-cycle policy.

    "Beats" means the CI of the paired difference lies above 0; an interval that holds 0 (or
    one below it) is reported as not beating it, which is a correct result, not a failure.
    """
    d = result.decisions
    later = d[d["cycle"] >= 1] if len(d) else d
    if len(result.cycles) < 2 or len(later) == 0:
        nan = Estimate(np.nan, np.nan, np.nan)
        return Verdict(nan, 0, False, "one cycle only: nothing retrained to compare")
    diff = (later["reward"] - later["frozen_reward"]).to_numpy(np.float64)
    rng = np.random.default_rng(settings.seed + 1)
    est = mean_ci(diff, settings.ci_level, settings.n_bootstrap, settings.bootstrap_block, rng)
    beats = bool(est.low > 0)
    span = f"cycles 1-{len(result.cycles) - 1}"
    figures = (
        f"live - frozen = {est.value * 1e4:+.2f} bps per decision "
        f"({settings.ci_level:.0%} CI {est.low * 1e4:+.2f} to {est.high * 1e4:+.2f}, "
        f"{len(diff)} decisions)"
    )
    if beats:
        line = f"the loop beats the frozen first-cycle policy over {span}: {figures}"
    else:
        line = f"the later cycles do NOT beat the frozen first-cycle policy ({span}): {figures}"
    return Verdict(est, len(diff), beats, line)
