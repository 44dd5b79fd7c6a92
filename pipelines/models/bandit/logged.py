"""The bandit on the bot's own logs: train from logged feedback, judge on the later logs.

Once the event store holds enough joined decisions (``BanditConfig.logged.min_joined``), the
bandit learns from what the live bot actually traded rather than from rewards simulated on
bars: each joined decision gives the context the bot saw, the arm it traded, that trade's net
return and the propensity the bot's policy gave the arm. The decisions are split in time
order; the network is fitted on the earlier ones with importance weights
``min(1 / propensity, max_weight)`` (``NeuralBandit.fit(..., propensity=...)``), and the
candidate it yields is evaluated off-policy on the later ones with the bot's real
propensities (``pipelines.events.evaluate_on_logs``): IPS, SNIPS and DR with block-bootstrap
CIs for the logging policy and the candidate, the paired lift of the candidate over the
logging policy, the candidate's effective sample share and largest weight. The gates read
``logs/lift/candidate_vs_logging/dr_ci_low`` and ``logs/reliable``.

Each candidate policy of the slot (the learned one as ``bandit`` and the rule candidates)
also gets its effective sample on the held-out logs, ``logs/ess/<name>`` (and
``confirm/logs/ess/<name>``): (sum w)^2 / sum w^2 with w = 1{its arm = logged arm} /
propensity. Below ``LoggedFeedbackConfig.min_ess`` the logged gate does not score the learned
candidate (``logs/ess_sufficient`` = 0): under uniform epsilon-greedy over 12 arms a policy
that leaves the default arm is matched on under 1% of decisions, and an estimate on a
dozen effective decisions is noise, whatever its interval says.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from configs.bandit import BanditConfig, LoggedFeedbackConfig
from pipelines.evaluation.bootstrap import Interval
from pipelines.evaluation.ope import ESTIMATORS, effective_sample
from pipelines.evaluation.spans import Span, confirm_key, put_interval, span_key, span_masks
from pipelines.events import LoggedFeedback, LogOPE, evaluate_on_logs, logged_feedback
from pipelines.models.bandit.neural import NeuralBandit
from pipelines.plots import BPS
from pipelines.strategies import N_ARMS

logger = logging.getLogger(__name__)

#: Fewest decisions on either side of the time split for a fit and an evaluation to mean much.
MIN_SPAN = 20


@dataclass(frozen=True)
class LoggedSplit:
    """The bot's joined decisions split in time: ``train`` (purged) and ``hold``.

    ``purged`` counts training decisions left out because their trade closed after the first
    held-out decision (their reward was realised inside the held-out span);
    ``dropped_no_features`` the joined decisions without features in the events or the bars.
    """

    train: LoggedFeedback
    hold: LoggedFeedback
    n_joined: int
    purged: int
    dropped_no_features: int


def logged_split(
    events: pd.DataFrame | None, features: pd.DataFrame, cfg: LoggedFeedbackConfig
) -> LoggedSplit | None:
    """The time split of the bot's logged feedback, or None when there is too little of it
    (then the bandit keeps learning from full-information rewards computed from bars)."""
    if not cfg.enabled or events is None or len(events) < cfg.min_joined:
        have = 0 if events is None else len(events)
        logger.info(
            "bandit: %d joined decision(s) < %d: full-information feedback", have, cfg.min_joined
        )
        return None
    fb = logged_feedback(events, features)
    if len(fb) < cfg.min_joined:
        logger.info(
            "bandit: %d joined decision(s) with features < %d: full-information feedback",
            len(fb),
            cfg.min_joined,
        )
        return None
    cut = len(fb) - round(len(fb) * cfg.holdout_fraction)
    closed = _closed_at(events, fb.event_id)
    keep = np.flatnonzero(closed[:cut] <= fb.ts[cut])
    train, hold = fb.subset(keep), fb.subset(np.arange(cut, len(fb)))
    if len(train) < MIN_SPAN or len(hold) < MIN_SPAN:
        logger.info(
            "bandit: %d / %d logged decisions to train / evaluate: full-information feedback",
            len(train),
            len(hold),
        )
        return None
    return LoggedSplit(train, hold, len(events), cut - len(keep), fb.dropped_no_features)


def _closed_at(events: pd.DataFrame, event_id: np.ndarray) -> np.ndarray:
    """Each decision's close time (UTC, datetime64[ns]) in the order of ``event_id``."""
    closed = pd.to_datetime(events["closed_at"], utc=True).dt.tz_localize(None)
    lookup = pd.Series(closed.to_numpy("datetime64[ns]"), index=events["event_id"].to_numpy())
    return lookup.reindex(event_id).to_numpy("datetime64[ns]")


def best_logged_arm(feedback: LoggedFeedback) -> int:
    """The arm with the best self-normalised (SNIPS) mean logged reward: the default arm the
    safe decision rule leaves only with confidence."""
    w = 1.0 / feedback.propensity
    means = np.full(N_ARMS, -np.inf)
    for a in range(N_ARMS):
        rows = feedback.arm == a
        if rows.any():
            means[a] = float(np.sum(w[rows] * feedback.reward[rows]) / np.sum(w[rows]))
    return int(np.argmax(means))


def fit_logged(bandit: NeuralBandit, split: LoggedSplit, cfg: LoggedFeedbackConfig) -> int:
    """Fit ``bandit`` on the training span, importance-weighted; returns the default arm."""
    tr = split.train
    bandit.fit(tr.X, tr.arm, tr.reward, N_ARMS, propensity=tr.propensity, max_weight=cfg.max_weight)
    return best_logged_arm(tr)


def candidate_ess(
    hold: LoggedFeedback, candidates: Mapping[str, np.ndarray], mask: np.ndarray | None = None
) -> dict[str, float]:
    """``{name: effective sample}`` of each candidate (its arm per held-out decision) on the
    held-out logs, or on the rows of ``mask``."""
    rows = np.arange(len(hold)) if mask is None else np.flatnonzero(mask)
    return {
        name: effective_sample(np.asarray(arms)[rows], hold.arm[rows], hold.propensity[rows])
        for name, arms in candidates.items()
    }


def evaluate_logged(
    split: LoggedSplit,
    chosen: np.ndarray,
    cfg: BanditConfig,
    seed: int,
    out_dir: Path,
    rules: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, float], dict[str, Path]]:
    """OPE of the logging policy and the candidate (``chosen``: its arm on every held-out
    decision) on the held-out logs; the ``logs/...`` metrics, a CSV and a plot.

    ``rules``: the slot's rule candidates' arms on the held-out decisions, by name; their
    effective samples are reported beside the learned candidate's (``logs/ess/<name>``)."""
    if chosen.shape != (len(split.hold),):
        raise ValueError(f"chosen must be [{len(split.hold)}] arm indices, got {chosen.shape}")
    policies = {"bandit": chosen, **(rules or {})}
    for name, arms in policies.items():
        if np.shape(arms) != (len(split.hold),):
            raise ValueError(f"candidate {name!r} must give one arm per held-out decision")
    masks = span_masks(pd.Series(split.hold.ts), cfg.confirm_fraction)

    def ope_on(span: Span) -> tuple[LoggedFeedback, np.ndarray, LogOPE]:
        rows = np.flatnonzero(masks[span])
        part, arms = split.hold.subset(rows), chosen[rows]
        candidate = np.zeros((len(part), N_ARMS))
        candidate[np.arange(len(part)), arms] = 1.0
        ope = evaluate_on_logs(
            part,
            candidate,
            n_boot=cfg.n_bootstrap,
            block=cfg.bootstrap_block,
            level=cfg.ci_level,
            seed=seed,
            ridge_alpha=cfg.ridge_alpha,
            min_ess_fraction=cfg.logged.min_ess_fraction,
            max_weight_limit=cfg.logged.max_weight_flag,
        )
        return part, arms, ope

    # the test span (the earlier held-out logs) gives the gate and the table; the later
    # confirmation span, which nothing saw before the decision, gives the gate again
    _, _, later = ope_on("confirm")
    hold, chosen, ope = ope_on("test")
    metrics = logs_metrics(ope, split)
    for span in ("test", "confirm"):
        for name, ess in candidate_ess(split.hold, policies, masks[span]).items():
            metrics[span_key(f"logs/ess/{name}", span)] = ess
    metrics["logs/min_ess"] = cfg.logged.min_ess
    metrics["logs/ess_sufficient"] = float(
        min(metrics["logs/ess/bandit"], metrics[confirm_key("logs/ess/bandit")])
        >= cfg.logged.min_ess
    )
    for est in ESTIMATORS:
        e = later.estimates["lift/candidate"][est]
        put_interval(
            metrics,
            f"logs/lift/candidate_vs_logging/{est}",
            Interval(e.value, e.low, e.high),
            "confirm",
        )
    metrics[confirm_key("logs/reliable")] = 1.0 if later.diagnostics["candidate"].reliable else 0.0
    metrics[confirm_key("logs/n_decisions")] = float(later.n)
    metrics["logs/candidate_deviation_share"] = float(
        np.mean(chosen != hold.logged_dist.argmax(axis=1))
    )
    artifacts = {
        "logs_ope": write_logs_table(ope, out_dir / "logs_ope.csv"),
        "logs_ope_plot": plot_logs_ope(ope, hold, chosen, out_dir / "logs_ope.png"),
    }
    lift = ope.estimates["lift/candidate"]["dr"]
    logger.info(
        "bandit on the bot's logs: effective sample per candidate %s (minimum %.0f)",
        ", ".join(f"{k} {metrics[f'logs/ess/{k}']:.1f}" for k in policies),
        cfg.logged.min_ess,
    )
    logger.info(
        "bandit on the bot's logs (%d held-out decisions): realized %.2f bps, DR lift of the "
        "candidate over the logging policy %.2f bps [%.2f, %.2f], ESS share %.3f, max weight "
        "%.1f, %s",
        len(hold),
        ope.realized.value * 1e4,
        lift.value * 1e4,
        lift.low * 1e4,
        lift.high * 1e4,
        ope.diagnostics["candidate"].ess_fraction,
        ope.diagnostics["candidate"].max_weight,
        "reliable" if ope.diagnostics["candidate"].reliable else "UNRELIABLE",
    )
    return metrics, artifacts


def logs_metrics(ope: LogOPE, split: LoggedSplit) -> dict[str, float]:
    """Flat ``logs/...`` metrics: estimates with CIs, the lift, weight diagnostics, counts."""
    metrics: dict[str, float] = {}
    keys = {
        "logging": "logs/ope/logging",
        "candidate": "logs/ope/candidate",
        "lift/candidate": "logs/lift/candidate_vs_logging",
    }
    for name, key in keys.items():
        for est in ESTIMATORS:
            e = ope.estimates[name][est]
            metrics[f"{key}/{est}"] = e.value
            metrics[f"{key}/{est}_ci_low"] = e.low
            metrics[f"{key}/{est}_ci_high"] = e.high
    cand = ope.diagnostics["candidate"]
    metrics.update(
        {
            "logs/ess_fraction": cand.ess_fraction,
            "logs/ess": cand.ess,
            "logs/max_weight": cand.max_weight,
            "logs/reliable": 1.0 if cand.reliable else 0.0,
            "logs/n_decisions": float(ope.n),
            "logs/n_train_decisions": float(len(split.train)),
            "logs/n_joined": float(split.n_joined),
            "logs/purged": float(split.purged),
            "logs/dropped_no_features": float(split.dropped_no_features),
            "logs/realized_reward": ope.realized.value,
            "logs/realized_reward_ci_low": ope.realized.low,
            "logs/realized_reward_ci_high": ope.realized.high,
            "logs/min_propensity": float(split.hold.propensity.min()),
        }
    )
    return metrics


def write_logs_table(ope: LogOPE, path: Path) -> Path:
    """One row per policy (and the lift): each estimator with its CI, the ESS and largest
    weight; the realised mean reward of the live policy on the logging row."""
    rows = []
    for name, label in (
        ("logging", "logging"),
        ("candidate", "candidate"),
        ("lift/candidate", "lift/candidate_vs_logging"),
    ):
        row: dict[str, object] = {"policy": label}
        for est in ESTIMATORS:
            e = ope.estimates[name][est]
            row[est], row[f"{est}_ci_low"], row[f"{est}_ci_high"] = e.value, e.low, e.high
        diag = ope.diagnostics.get(name)
        row["realized"] = ope.realized.value if name == "logging" else np.nan
        row["ess_fraction"] = diag.ess_fraction if diag else np.nan
        row["max_weight"] = diag.max_weight if diag else np.nan
        row["reliable"] = int(diag.reliable) if diag else np.nan
        row["n_decisions"] = ope.n
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False, float_format="%.8g")
    return path


def plot_logs_ope(ope: LogOPE, hold: LoggedFeedback, chosen: np.ndarray, path: Path) -> Path:
    """Left: the live policy's realised reward per held-out decision (running mean) against
    the OPE estimates of the logging policy and the candidate with their DR CIs (shaded).
    Middle: the logged propensities. Right: the candidate's importance weights, its ESS share
    and largest weight (what ``logs/reliable`` is judged on)."""
    fig = Figure(figsize=(14, 4))
    ax, bx, cx = fig.subplots(1, 3, gridspec_kw={"width_ratios": [3, 1.5, 1.5]})
    n = len(hold)
    idx = np.arange(1, n + 1)
    running = np.cumsum(hold.reward) / idx
    ax.plot(
        idx,
        running * BPS.scale,
        color="black",
        lw=1.2,
        label="live policy: realized (running mean)",
    )
    colors = {"logging": "tab:blue", "candidate": "tab:orange"}
    for name, color in colors.items():
        for est, style in (("dr", "-"), ("snips", ":")):
            e = ope.estimates[name][est]
            ax.axhline(
                e.value * BPS.scale, color=color, ls=style, lw=1.2, label=f"{name} {est.upper()}"
            )
        dr = ope.estimates[name]["dr"]
        ax.axhspan(dr.low * BPS.scale, dr.high * BPS.scale, color=color, alpha=0.15)
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xlabel("held-out decision (time order)")
    ax.set_ylabel(f"reward per decision ({BPS.label})")
    lift = ope.estimates["lift/candidate"]["dr"]
    lo, mid, hi = (v * BPS.scale for v in (lift.low, lift.value, lift.high))
    ax.set_title(
        f"bot's logs, {n:,} held-out decisions: DR lift candidate − logging "
        f"{mid:.1f} [{lo:.1f}, {hi:.1f}] {BPS.label}",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="best")
    weights = (chosen == hold.arm) / hold.propensity
    diag = ope.diagnostics["candidate"]
    bins = np.logspace(np.log10(max(float(hold.propensity.min()), 1e-4)), 0, 30)
    bx.hist(hold.propensity, bins=bins, color="tab:blue", alpha=0.8)
    bx.set_xscale("log")
    bx.set_xlabel("logged propensity p(a | x) of the traded arm")
    bx.set_ylabel("held-out decisions")
    bx.set_title(f"propensities (min {hold.propensity.min():.3g})", fontsize=9)
    nz = weights[weights > 0]
    cx.hist(nz, bins=30, color="tab:orange", alpha=0.8)
    cx.set_xlabel("candidate weight π/p (rows with π > 0)")
    cx.set_title(
        f"ESS share {diag.ess_fraction:.3f}, max w {diag.max_weight:.1f}: "
        f"{'reliable' if diag.reliable else 'UNRELIABLE'}",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
