"""Confirmation: one later span vs k forward folds with a combined bound (power and false
publishes of the publish rule, by Monte Carlo on simulated paired lift series).

A gate publishes when the one-sided 95% moving-block-bootstrap lower bound of a paired lift
(challenger − champion reward per decision) is > 0 on the test span and again on the later
confirmation span (docs/models.md, "Spans"). This measures whether cutting the same held-out
bars into k forward folds and judging them with one combined bound would be more powerful at
the same false-publish rate, and what each rule does when the lift is real early and gone
later (the case the confirmation span is for).

Noise: per-decision lift series with the structure of the real ones. The bars of the profile's
generator give every rule arm's exact net reward; the lift of each arm over the bot's fallback
arm is measured (sd, autocorrelation, kurtosis) and the simulation reproduces it: innovations
``sigma_t * t_5`` with a log-AR(1) volatility (persistence ``SV_PERSISTENCE``, log-sd fitted
to the measured kurtosis), summed over ``reward_horizon`` consecutive bars as the overlapping
reward windows are, scaled to unit sd. One series per symbol, symbols independent, held-out
rows in (symbol, ts) order and each span a time window across symbols, as
``pipelines.evaluation.spans`` cuts them. Lengths, block, resamples and level come from the
profile's bandit section (the slot with the exact per-decision lift).

The bootstrap is the project's: ``block_bootstrap_starts`` and ``resample_means`` of
``pipelines.evaluation.ope`` (what ``paired_ci`` computes for ``mean_difference``, checked by
tests/evaluation/test_confirmation_power_bench.py), one bootstrap seed per chunk of worlds.
Because every resample holds every row once per draw, a lift ``delta`` on a set of rows adds
``delta * mean(indicator*)`` to each resample mean: one bootstrap per world serves every
effect size exactly. Writes ``benchmarks/results/confirmation_power.md``.

    .venv/bin/python benchmarks/bench_confirmation_power.py [--reps 4000] [--config demo]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from scipy.signal import lfilter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "confirmation_power.md"
sys.path.insert(0, str(ROOT))

from configs import load_config  # noqa: E402
from pipelines.evaluation.ope import block_bootstrap_starts, resample_means  # noqa: E402

#: persistence of the log volatility per bar (the generator's squared lifts decorrelate over
#: ~1-4 days of hourly bars; the calibration lines print both acf profiles side by side)
SV_PERSISTENCE = 0.95
#: degrees of freedom of the innovations (fat tails before the volatility mixing)
T_DF = 5.0
#: today's rule at one-sided 95% on each of two spans: the nominal false-publish rate every
#: size-matched rule is set to
ALPHA_SPAN = 0.05
ALPHA_MATCHED = ALPHA_SPAN**2
FOLDS = (3, 4, 5)
EFFECTS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.16)
DRIFT_EFFECTS = (0.08, 0.16, 0.32)


def bootstrap_means(values: np.ndarray, block: int, n_boot: int, seed: int) -> np.ndarray:
    """Moving-block resample means of each column of ``values`` ([n] or [n, m]), with the
    resamples ``paired_ci``/``paired_bootstrap`` draw for ``n`` rows and ``seed``: the same
    starts for every column, so many worlds share one vectorised pass."""
    v = np.asarray(values, dtype=np.float64)
    starts = block_bootstrap_starts(len(v), block, n_boot, np.random.default_rng(seed))
    return resample_means(v, starts, block)


def percentile_lower(boot: np.ndarray, alpha: float) -> np.ndarray:
    """The one-sided ``1 - alpha`` lower bound (the ``alpha`` percentile, linear
    interpolation as ``paired_lower_bound`` and ``paired_ci`` take it) of each column."""
    return np.asarray(np.percentile(boot, 100.0 * alpha, axis=0))


def simulate_lifts(
    rng: np.random.Generator, reps: int, n_symbols: int, n: int, horizon: int, log_sd: float
) -> np.ndarray:
    """[reps, n_symbols, n] unit-sd lift series: ``horizon``-bar sums of SV-t innovations."""
    burn = 400
    m = n + burn + horizon - 1
    eta = rng.standard_normal((reps, n_symbols, m))
    innov_sd = log_sd * np.sqrt(1.0 - SV_PERSISTENCE**2)
    logvol = lfilter([innov_sd], [1.0, -SV_PERSISTENCE], eta, axis=-1)
    t = rng.standard_t(T_DF, size=(reps, n_symbols, m)) / np.sqrt(T_DF / (T_DF - 2.0))
    x = np.exp(logvol - log_sd**2) * t  # E[sigma^2] = 1
    d = lfilter(np.ones(horizon), [1.0], x, axis=-1)[..., burn + horizon - 1 :]
    return np.asarray(d / np.sqrt(horizon), dtype=np.float64)


def series_stats(d: np.ndarray, lags: Sequence[int]) -> tuple[float, list[float], list[float]]:
    """Kurtosis, autocorrelation and autocorrelation of squares at ``lags`` of a 1-D series."""
    z = (d - d.mean()) / d.std()
    acf = [float(np.mean(z[:-k] * z[k:])) for k in lags]
    sq = z**2 - np.mean(z**2)
    acf2 = [float(np.mean(sq[:-k] * sq[k:]) / np.mean(sq**2)) for k in lags]
    return float(np.mean(z**4)), acf, acf2


@dataclass(frozen=True)
class Calibration:
    """What the generator's real lift series look like, and the simulation fitted to them."""

    sd_bps: float
    kurtosis: float
    acf: list[float]
    acf_sq: list[float]
    log_sd: float
    sim_kurtosis: float
    sim_acf: list[float]
    sim_acf_sq: list[float]
    pairs: int


LAGS = (1, 3, 5, 6, 24, 100)


def calibrate(config: str, seed: int) -> tuple[Calibration, int]:
    """Median statistics of every arm's exact net-reward lift over the fallback arm on the
    profile's generator bars (per symbol), and the volatility log-sd that matches the
    kurtosis. Returns the calibration and the reward horizon."""
    from pipelines.data.synthetic import generate_bars
    from pipelines.strategies.signals import (
        ARM_NAMES,
        FALLBACK_ARM,
        arm_rewards,
        compute_signals,
    )

    settings = load_config(config, environ={})
    b = settings.bandit
    bars = generate_bars(settings.data.synthetic, settings.seed)
    rewards = arm_rewards(bars, compute_signals(bars), b.reward_horizon, b.cost_bps, b.slippage_bps)
    symbols = bars["symbol"].to_numpy()
    sds, kurts, acfs, acf2s = [], [], [], []
    for arm in ARM_NAMES:
        if arm == FALLBACK_ARM:
            continue
        diff = (rewards[arm] - rewards[FALLBACK_ARM]).to_numpy()
        for sym in np.unique(symbols):
            d = diff[(symbols == sym) & np.isfinite(diff)]
            k, a, a2 = series_stats(d, LAGS)
            sds.append(float(d.std()) * 1e4)
            kurts.append(k)
            acfs.append(a)
            acf2s.append(a2)
    target = float(np.median(kurts))
    rng = np.random.default_rng(seed)
    best: tuple[float, float, list[float], list[float]] | None = None
    for log_sd in np.arange(0.0, 1.01, 0.05):
        sim = simulate_lifts(rng, 4, 1, 50_000, b.reward_horizon, float(log_sd)).reshape(4, -1)
        stats = [series_stats(s, LAGS) for s in sim]
        k = float(np.mean([s[0] for s in stats]))
        if best is None or abs(np.log(k / target)) < abs(np.log(best[1] / target)):
            best = (
                float(log_sd),
                k,
                list(np.mean([s[1] for s in stats], axis=0)),
                list(np.mean([s[2] for s in stats], axis=0)),
            )
    assert best is not None
    cal = Calibration(
        sd_bps=float(np.median(sds)),
        kurtosis=target,
        acf=list(np.median(acfs, axis=0)),
        acf_sq=list(np.median(acf2s, axis=0)),
        log_sd=best[0],
        sim_kurtosis=best[1],
        sim_acf=best[2],
        sim_acf_sq=best[3],
        pairs=len(sds),
    )
    return cal, b.reward_horizon


def _rows(d: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows of time window [lo, hi) of every symbol, (symbol, ts) order: [rows, reps]."""
    return d[:, :, lo:hi].reshape(d.shape[0], -1).T


@dataclass
class Tally:
    """Publish counts per rule and effect size, for the constant and the drifting lift."""

    reps: int
    const: dict[str, np.ndarray]
    drift: dict[str, np.ndarray]


def rule_names() -> list[str]:
    names = ["A: test LB95 > 0 and confirmation LB95 > 0 (today)"]
    for k in FOLDS:
        names.append(f"B1 k={k}: pooled LB95 > 0 and every fold mean > 0")
    for k in FOLDS:
        names.append(f"B2 k={k}: every fold LB > 0 at {1 - ALPHA_MATCHED ** (1 / k):.1%}")
    names.append("C: pooled test+confirmation LB95 > 0 (no confirmation)")
    names.append(f"C*: pooled LB > 0 at {1 - ALPHA_MATCHED:.2%} (size-matched to A)")
    return names


def decide(
    d: np.ndarray, block: int, n_boot: int, seed: int, effects: Sequence[float], drift: bool
) -> dict[str, np.ndarray]:
    """Publish decisions [len(effects), reps] of every rule for the worlds ``d`` [reps, S, T]
    (T held-out bars per symbol), the lift ``effects`` on every bar or, with ``drift``, on the
    first half of each symbol's held-out bars only."""
    reps, n_sym, n = d.shape
    half = n // 2
    eff = np.asarray(effects, dtype=np.float64)[:, None]  # [E, 1]

    def span(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For window [lo, hi): resample means [B, reps], the share of lifted rows in each
        resample [B], and [2, reps] of the point estimate and the lifted share of the rows."""
        rows = _rows(d, lo, hi)
        mask = np.ones((n_sym, n))
        if drift:
            mask[:, half:] = 0.0
        m = mask[:, lo:hi].reshape(-1)
        boot = bootstrap_means(np.column_stack([rows, m]), block, n_boot, seed)
        return boot[:, :-1], boot[:, -1], np.array([rows.mean(axis=0), np.full(reps, m.mean())])

    def lower(lo: int, hi: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        boot, share, point = span(lo, hi)
        # [E, B, reps] would be large: percentile per effect
        lbs = np.stack([percentile_lower(boot + e * share[:, None], alpha) for e in eff[:, 0]])
        est = point[0][None, :] + eff * point[1][None, :]
        return lbs, est

    out: dict[str, np.ndarray] = {}
    names = rule_names()
    lb_t, _ = lower(0, half, ALPHA_SPAN)
    lb_c, _ = lower(half, n, ALPHA_SPAN)
    out[names[0]] = (lb_t > 0) & (lb_c > 0)
    boot, share, _ = span(0, n)
    lb_p = np.stack([percentile_lower(boot + e * share[:, None], ALPHA_SPAN) for e in eff[:, 0]])
    lb_pm = np.stack(
        [percentile_lower(boot + e * share[:, None], ALPHA_MATCHED) for e in eff[:, 0]]
    )
    for i, k in enumerate(FOLDS):
        cuts = [round(j * n / k) for j in range(k + 1)]
        alpha_k = ALPHA_MATCHED ** (1 / k)
        signs = np.ones_like(lb_p, dtype=bool)
        all_lb = np.ones_like(lb_p, dtype=bool)
        for lo, hi in itertools.pairwise(cuts):
            lbs, est = lower(lo, hi, alpha_k)
            signs &= est > 0
            all_lb &= lbs > 0
        out[names[1 + i]] = (lb_p > 0) & signs
        out[names[1 + len(FOLDS) + i]] = all_lb
    out[names[-2]] = lb_p > 0
    out[names[-1]] = lb_pm > 0
    return out


def run(
    reps: int,
    chunk: int,
    n_sym: int,
    n: int,
    horizon: int,
    log_sd: float,
    block: int,
    n_boot: int,
    seed: int,
) -> Tally:
    """Publish counts over ``reps`` simulated worlds, in chunks sharing one bootstrap seed."""
    names = rule_names()
    const = {r: np.zeros(len(EFFECTS), dtype=np.int64) for r in names}
    drift = {r: np.zeros(len(DRIFT_EFFECTS), dtype=np.int64) for r in names}
    rng = np.random.default_rng(seed)
    done = 0
    while done < reps:
        m = min(chunk, reps - done)
        d = simulate_lifts(rng, m, n_sym, n, horizon, log_sd)
        boot_seed = seed + done
        for r, v in decide(d, block, n_boot, boot_seed, EFFECTS, drift=False).items():
            const[r] += v.sum(axis=1)
        for r, v in decide(d, block, n_boot, boot_seed, DRIFT_EFFECTS, drift=True).items():
            drift[r] += v.sum(axis=1)
        done += m
    return Tally(reps, const, drift)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="demo")
    parser.add_argument("--reps", type=int, default=4000)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="default: the profile's seed")
    args = parser.parse_args()

    settings = load_config(args.config, environ={})
    seed = settings.seed if args.seed is None else args.seed
    b = settings.bandit
    syn = settings.data.synthetic
    held = round(syn.n_bars * b.holdout_fraction)  # per symbol, before warm-up rows drop
    n_sym = len(syn.symbols)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    cal, horizon = calibrate(args.config, seed)
    tally = run(
        args.reps,
        args.chunk,
        n_sym,
        held,
        horizon,
        cal.log_sd,
        b.bootstrap_block,
        b.n_bootstrap,
        seed,
    )
    minutes = (time.perf_counter() - t0) / 60
    half = held // 2
    se_mean = _mean_sd(cal.log_sd, horizon, n_sym * half, seed)

    def pct(c: int) -> str:
        return f"{c / tally.reps:.1%}" if c else "0"

    head = " | ".join(f"{e:g}" for e in EFFECTS[1:])
    lines = [
        "## Confirmation: one later span vs k forward folds",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_confirmation_power.py --config "
        f"{args.config} --reps {args.reps}`  ",
        f"Machine: {os.cpu_count()}-core {platform.machine()} CPU, no GPU (load average "
        f"{load:.1f} at start); {minutes:.1f} min; {dt.date.today().isoformat()}  ",
        f"Worlds: {args.reps} simulated held-out spans of {n_sym} symbols x {held} decisions "
        f"(the `{args.config}` profile's bandit held-out share {b.holdout_fraction} of "
        f"{syn.n_bars} bars, before the features' warm-up rows drop; test and confirmation "
        f"{n_sym} x {half} each), moving-block bootstrap of the project "
        f"(block {b.bootstrap_block} decisions, {b.n_bootstrap} resamples; one bootstrap seed "
        f"per chunk of {args.chunk} worlds, as a run uses one seed).",
        "",
        f"Noise, calibrated on the generator's bars (seed {settings.seed}): the exact net-reward "
        f"lift of each of the other arms over the fallback arm, per symbol ({cal.pairs} series), "
        f"median sd {cal.sd_bps:.0f} bps per decision, kurtosis {cal.kurtosis:.1f} "
        f"(simulation {cal.sim_kurtosis:.1f}, volatility log-sd {cal.log_sd:.2f}); "
        f"autocorrelation at lags {', '.join(map(str, LAGS))}: real "
        f"{', '.join(f'{a:.2f}' for a in cal.acf)}, simulated "
        f"{', '.join(f'{a:.2f}' for a in cal.sim_acf)}; of the squares: real "
        f"{', '.join(f'{a:.2f}' for a in cal.acf_sq)}, simulated "
        f"{', '.join(f'{a:.2f}' for a in cal.sim_acf_sq)}.",
        "",
        "Effects are the true lift per decision in units of the per-decision noise sd (x "
        f"{cal.sd_bps:.0f} bps for the generator's scale); the sd of one span's mean is "
        f"{se_mean:.3f} in these units. Folds are k equal time windows of the same held-out "
        "bars (both spans), each across symbols. Rules: **A** is today's gate; **B1** the "
        "pooled bound (one-sided 95% over all fold bars) and every fold's point estimate > 0; "
        "**B2** every fold's lower bound > 0 at the one-sided level whose k-th power is A's "
        f"nominal false-publish rate ({ALPHA_MATCHED:.4f}: A is B2 with k = 2); **C** one "
        "pooled bound with no confirmation, at 95% and at the size-matched level.",
        "",
        "Share of worlds published (null column = false-publish rate; the others = power):",
        "",
        f"| rule | null (0) | {head} |",
        "|---|" + "---:|" * len(EFFECTS),
    ]
    for r in rule_names():
        lines.append(f"| {r} | " + " | ".join(pct(int(c)) for c in tally.const[r]) + " |")
    lines += [
        "",
        "Drift (the winner's curse the confirmation span is for): the lift is on the first half "
        "of the held-out bars (the test span) and zero on the second. Share published, by the "
        "early lift:",
        "",
        "| rule | " + " | ".join(f"{e:g}" for e in DRIFT_EFFECTS) + " |",
        "|---|" + "---:|" * len(DRIFT_EFFECTS),
    ]
    for r in rule_names():
        lines.append(f"| {r} | " + " | ".join(pct(int(c)) for c in tally.drift[r]) + " |")
    lines.append("")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


def _mean_sd(log_sd: float, horizon: int, rows: int, seed: int) -> float:
    """Sd of one span's mean lift (unit per-decision sd), from 400 simulated spans."""
    rng = np.random.default_rng(seed + 1)
    d = simulate_lifts(rng, 400, 1, rows, horizon, log_sd)[:, 0, :]
    return float(d.mean(axis=1).std(ddof=1))


if __name__ == "__main__":
    main()
