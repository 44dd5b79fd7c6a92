"""Stop-loss and take-profit settings chosen for net P&L, kept only when they beat the live
ones forward (docs/recommendations.md, "Exits chosen on evidence").

Why a champion and challengers here too: the bot's exit settings decide most of a rule
strategy's P&L, and a setting tuned on the bars it is scored on always looks better than the
one it replaces. So per strategy family (and per regime cell when the regime slot's champion
gives the bot a regime), four candidates are simulated on the family's trades
(``pipelines.strategies.exits``):

* ``live``: the settings the bot runs now (the published recommendation's, else the neutral
  defaults 2.0 / 3.0 ATR, which are the bot's fallback);
* ``heuristic``: the 80th percentile of the maximum adverse and the 60th percentile of the
  maximum favourable excursion of the fit-span trades, in ATR units (the old rule);
* ``grid``: the stop / target pair of a grid that earns the most net P&L per trade on the fit
  span;
* ``qlearn``: a tabular Q-learning agent over parameter moves, as the seed engine adapts its
  settings: from the live pair on a 0.25-ATR lattice inside the bounds, each step moves the
  stop or the target one notch (or stays), epsilon-greedy, rewarded by the mean simulated net
  P&L of a batch of fit-span trades under the new pair less theirs under the live pair; the
  greedy walk from the live pair after training is its pair (:func:`qlearn_pair`).

The challenger is whichever of ``heuristic``, ``grid`` and ``qlearn`` earns most on the fit
span (a choice made on the fit span only). It replaces ``live`` only when the one-sided 95 %
lower bound of its paired per-trade P&L lift over ``live`` is above zero on the test span AND
on the confirmation span (moving-block bootstrap over the trades in time order,
``pipelines.evaluation.spans``); otherwise ``live`` stays, with the reason in one line. Every
trade set has the same entries under every candidate (the family's signal decides entries,
the settings only exits), so the lift is paired trade by trade.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from pipelines.evaluation.bootstrap import Interval, mean_difference
from pipelines.evaluation.spans import Span, paired_span_cis
from pipelines.strategies.exits import Windows, simulate_exits

#: The grid searched on the fit span, inside the recommendation's bounds (ATR units).
STOP_GRID: Final = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
TARGET_GRID: Final = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)
MIN_TRADES: Final = 30
#: The Q-learning agent's notch: one move changes the stop or the target by this (ATR units).
Q_STEP: Final = 0.25
#: Q-learning moves: stay, stop -/+ one notch, target -/+ one notch.
Q_MOVES: Final = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))


@dataclass(frozen=True)
class QLearn:
    """The Q-learning candidate's settings (the ``recommendation`` section's ``q_*`` fields)."""

    episodes: int = 200
    steps: int = 24
    epsilon: float = 0.2
    alpha: float = 0.2
    gamma: float = 0.8
    batch: int = 64

    @classmethod
    def from_config(cls, cfg: Any) -> QLearn:
        return cls(
            cfg.q_episodes, cfg.q_steps, cfg.q_epsilon, cfg.q_alpha, cfg.q_gamma, cfg.q_batch
        )


@dataclass(frozen=True)
class ExitChoice:
    """The settings a cell ships, which candidate they came from and the evidence."""

    stop: float
    take: float
    candidate: str  # live | heuristic | grid | qlearn
    reason: str
    challenger: str | None = None
    challenger_stop: float | None = None
    challenger_take: float | None = None
    test: Interval | None = None  # lift over live, fraction of entry price per trade
    confirm: Interval | None = None
    trades: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready evidence for the recommendation document (lifts in bps per trade)."""

        def bps(iv: Interval | None) -> list[float] | None:
            if iv is None or not np.isfinite(iv.value):
                return None
            return [round(iv.value * 1e4, 3), round(iv.low * 1e4, 3), round(iv.high * 1e4, 3)]

        return {
            "candidate": self.candidate,
            "reason": self.reason,
            "challenger": self.challenger,
            "challenger_stop_loss": self.challenger_stop,
            "challenger_take_profit": self.challenger_take,
            "lift_bps_per_trade_test": bps(self.test),
            "lift_bps_per_trade_confirmation": bps(self.confirm),
            "trades": dict(self.trades),
        }


def _clamp(value: float, lo: float, hi: float) -> float:
    return float(min(max(value, lo), hi))


def heuristic_pair(
    w: Windows, rows: npt.NDArray[np.bool_], bounds: dict[str, tuple[float, float]]
) -> tuple[float, float]:
    """80th percentile of max adverse, 60th of max favourable excursion, in ATR units."""
    mae = -np.minimum(w.adverse[rows].min(axis=1), 0.0) / w.atr[rows]
    mfe = np.maximum(w.favourable[rows].max(axis=1), 0.0) / w.atr[rows]
    stop = _clamp(float(np.quantile(mae, 0.8)), *bounds["stop_loss_multiplier"])
    take = _clamp(float(np.quantile(mfe, 0.6)), *bounds["take_profit_multiplier"])
    return round(stop, 4), round(take, 4)


def subset(w: Windows, rows: npt.NDArray[np.bool_]) -> Windows:
    """The trades of ``w`` picked by the boolean ``rows``."""
    return Windows(
        row=w.row[rows],
        side=w.side[rows],
        atr=w.atr[rows],
        open_r=w.open_r[rows],
        adverse=w.adverse[rows],
        favourable=w.favourable[rows],
        close_r=w.close_r[rows],
    )


def _lattice(lo: float, hi: float) -> npt.NDArray[np.float64]:
    return np.round(np.arange(lo, hi + 1e-9, Q_STEP), 4)


def qlearn_pair(
    w: Windows,
    rows: npt.NDArray[np.bool_],
    start: tuple[float, float],
    bounds: dict[str, tuple[float, float]],
    q: QLearn,
    rng: np.random.Generator,
    *,
    cost_bps: float,
    slippage_bps: float,
    exit_slippage: Mapping[str, float] | None = None,
) -> tuple[float, float]:
    """Tabular Q-learning over stop / target moves on the ``rows`` (fit) trades.

    States are the pairs of a ``Q_STEP`` lattice inside ``bounds``; every episode starts at
    the lattice pair nearest ``start`` (the live settings: the agent adapts them, as the seed
    engine does). A move (``Q_MOVES``, clipped at the bounds) is drawn epsilon-greedy (ties at
    random) and rewarded by the mean simulated net P&L (bps) of ``q.batch`` fit trades drawn
    with replacement under the new pair, the trade results a bot would see next, less the
    same trades' P&L under the start pair (a paired reward: the draw's noise cancels). The pair
    returned is the end of the greedy walk from the start after training (it stops when the
    best move is to stay or a pair repeats)."""
    stops = _lattice(*bounds["stop_loss_multiplier"])
    takes = _lattice(*bounds["take_profit_multiplier"])
    pnl = simulate_exits(
        subset(w, rows),
        stops,
        takes,
        cost_bps=cost_bps,
        slippage_bps=slippage_bps,
        exit_slippage=exit_slippage,
    ).pnl
    n = pnl.shape[0]
    if n == 0:
        raise ValueError("Q-learning needs at least one fit trade")
    n_s, n_t = len(stops), len(takes)
    s0 = (int(np.abs(stops - start[0]).argmin()), int(np.abs(takes - start[1]).argmin()))
    # reward: a batch's net P&L under the new pair minus the same trades' under the start
    # pair (bps), paired so that the noise of which trades were drawn cancels; an untried
    # move's value 0 reads "as good as the live settings"
    by_pair = np.ascontiguousarray(
        np.moveaxis((pnl - pnl[:, s0[0], s0[1], None, None]) * 1e4, 0, -1)
    )
    n_a = len(Q_MOVES)
    table = np.zeros((n_s, n_t, n_a))

    def step(state: tuple[int, int], a: int) -> tuple[int, int]:
        ds, dt = Q_MOVES[a]
        return min(max(state[0] + ds, 0), n_s - 1), min(max(state[1] + dt, 0), n_t - 1)

    for _ in range(q.episodes):
        # one episode's draws at once: explore?, the random move, tie-breaks, the batches
        explore = rng.random(q.steps) < q.epsilon
        random_move = rng.integers(n_a, size=q.steps)
        ties = rng.random((q.steps, n_a)) * 1e-9
        batches = rng.integers(n, size=(q.steps, q.batch))
        state = s0
        for k in range(q.steps):
            values = table[state]
            a = int(random_move[k]) if explore[k] else int(np.argmax(values + ties[k]))
            nxt = step(state, a)
            reward = float(by_pair[nxt][batches[k]].mean())
            values[a] += q.alpha * (reward + q.gamma * table[nxt].max() - values[a])
            state = nxt
    state, seen = s0, {s0}
    for _ in range(n_s + n_t):
        a = int(table[state].argmax())
        nxt = step(state, a)
        if a == 0 or nxt in seen:
            break
        seen.add(nxt)
        state = nxt
    return float(stops[state[0]]), float(takes[state[1]])


def _pnl(
    w: Windows,
    stop: float,
    take: float,
    cost_bps: float,
    slippage_bps: float,
    exit_slippage: Mapping[str, float] | None = None,
) -> Any:
    grid = simulate_exits(
        w, [stop], [take], cost_bps=cost_bps, slippage_bps=slippage_bps, exit_slippage=exit_slippage
    )
    return grid.pnl[:, 0, 0]


def candidate_pairs(
    w: Windows,
    fit: npt.NDArray[np.bool_],
    live: tuple[float, float],
    bounds: dict[str, tuple[float, float]],
    *,
    cost_bps: float,
    slippage_bps: float,
    exit_slippage: Mapping[str, float] | None = None,
    q: QLearn | None,
    q_rng: np.random.Generator | None,
) -> dict[str, tuple[float, float]]:
    """Each challenger's pair, fitted on the ``fit`` trades only (module doc); ``qlearn``
    only with ``q`` and ``q_rng``."""
    lo_s, hi_s = bounds["stop_loss_multiplier"]
    lo_t, hi_t = bounds["take_profit_multiplier"]
    stops = np.array([s for s in STOP_GRID if lo_s <= s <= hi_s])
    takes = np.array([t for t in TARGET_GRID if lo_t <= t <= hi_t])
    grid = simulate_exits(
        subset(w, fit),
        stops,
        takes,
        cost_bps=cost_bps,
        slippage_bps=slippage_bps,
        exit_slippage=exit_slippage,
    )
    fit_mean = grid.pnl.mean(axis=0)
    s, t = np.unravel_index(int(np.argmax(fit_mean)), fit_mean.shape)
    out = {
        "grid": (float(stops[s]), float(takes[t])),
        "heuristic": heuristic_pair(w, fit, bounds),
    }
    if q is not None and q_rng is not None:
        out["qlearn"] = qlearn_pair(
            w,
            fit,
            live,
            bounds,
            q,
            q_rng,
            cost_bps=cost_bps,
            slippage_bps=slippage_bps,
            exit_slippage=exit_slippage,
        )
    return out


def lift_cis(
    w: Windows,
    entry_ts: Any,
    held: npt.NDArray[np.bool_],
    pair: tuple[float, float],
    base: tuple[float, float],
    *,
    cost_bps: float,
    slippage_bps: float,
    exit_slippage: Mapping[str, float] | None = None,
    confirm_fraction: float,
    block: int,
    n_boot: int,
    level: float,
    seed: int,
) -> dict[Span, Interval]:
    """Paired per-trade P&L lift of ``pair`` over ``base`` on the held-out trades' test and
    confirmation spans (fractions of entry price per trade)."""
    a = _pnl(w, *pair, cost_bps, slippage_bps, exit_slippage)[held]
    b = _pnl(w, *base, cost_bps, slippage_bps, exit_slippage)[held]
    return paired_span_cis(
        np.asarray(entry_ts)[held],
        a,
        b,
        mean_difference,
        block=block,
        n=n_boot,
        level=level,
        seed=seed,
        confirm_fraction=confirm_fraction,
    )


def choose_exits(
    w: Windows,
    entry_ts: Any,
    fit: npt.NDArray[np.bool_],
    held: npt.NDArray[np.bool_],
    live: tuple[float, float],
    bounds: dict[str, tuple[float, float]],
    *,
    cost_bps: float,
    slippage_bps: float,
    exit_slippage: Mapping[str, float] | None = None,
    confirm_fraction: float,
    block: int,
    n_boot: int,
    level: float,
    seed: int,
    q: QLearn | None = None,
    q_seed: int = 0,
) -> ExitChoice:
    """Champion (``live``) against the best of the heuristic, the grid and (with ``q``) the
    Q-learning agent on the fit span (module doc).

    ``entry_ts``, ``fit`` and ``held`` are per trade of ``w`` (the held-out trades in time
    order within each symbol); ``bounds`` are the recommendation's ``SAFE_BOUNDS``; ``seed``
    seeds the bootstrap, ``q_seed`` the Q-learning agent's draws."""
    n_fit, n_held = int(fit.sum()), int(held.sum())
    counts = {"fit": n_fit, "held_out": n_held}
    keep = ExitChoice(live[0], live[1], "live", "", trades=counts)
    if n_fit < MIN_TRADES or n_held < 2 * MIN_TRADES:
        return _replace(keep, reason=f"too few trades ({n_fit} fit, {n_held} held out)")
    candidates = candidate_pairs(
        w,
        fit,
        live,
        bounds,
        cost_bps=cost_bps,
        slippage_bps=slippage_bps,
        exit_slippage=exit_slippage,
        q=q,
        q_rng=np.random.default_rng(q_seed),
    )
    fit_value = {
        name: float(_pnl(w, *pair, cost_bps, slippage_bps, exit_slippage)[fit].mean())
        for name, pair in candidates.items()
    }
    name = max(fit_value, key=lambda k: fit_value[k])
    pair = candidates[name]
    if np.allclose(pair, live):
        return _replace(keep, reason=f"the best candidate ({name}) is the live setting")
    cis = lift_cis(
        w,
        entry_ts,
        held,
        pair,
        live,
        cost_bps=cost_bps,
        slippage_bps=slippage_bps,
        exit_slippage=exit_slippage,
        confirm_fraction=confirm_fraction,
        block=block,
        n_boot=n_boot,
        level=level,
        seed=seed,
    )
    test, confirm = cis["test"], cis["confirm"]
    if test.low > 0 and confirm.low > 0:
        chosen, why = pair, f"{name} beat the live settings on the test and confirmation spans"
        shipped = name
    else:
        span = "test" if not test.low > 0 else "confirmation"
        bound = test.low if span == "test" else confirm.low
        chosen, shipped = live, "live"
        why = (
            f"{name} ({pair[0]:g} / {pair[1]:g} ATR) did not beat the live settings on the "
            f"{span} span (lower bound {bound * 1e4:+.2f} bps per trade)"
        )
    return ExitChoice(
        chosen[0],
        chosen[1],
        shipped,
        why,
        challenger=name,
        challenger_stop=pair[0],
        challenger_take=pair[1],
        test=test,
        confirm=confirm,
        trades=counts,
    )


def _replace(choice: ExitChoice, **changes: Any) -> ExitChoice:
    from dataclasses import replace

    return replace(choice, **changes)


def split_trades(
    entry_ts: Any, holdout_fraction: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Fit (earlier) and held-out (later ``holdout_fraction``) trades by one cut time."""
    import pandas as pd

    ts = pd.Series(entry_ts).reset_index(drop=True)
    if len(ts) < 2:
        return np.zeros(len(ts), dtype=bool), np.zeros(len(ts), dtype=bool)
    cut = ts.quantile(1.0 - holdout_fraction)
    held = (ts >= cut).to_numpy()
    return ~held, held
