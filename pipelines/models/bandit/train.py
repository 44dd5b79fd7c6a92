"""The bandit's trainer: rewards -> NeuralBandit + Beta-Thompson -> OPE on held-out -> ONNX.

The flow runs :class:`BanditTrainer` (its spec: ``pipelines/models/specs.py``). Arms'
rewards are computed from bars for every arm, and the *logged* view (one arm per decision,
chosen by the configured logging policy with its propensity) is replayed on history. What the
network learns from is
``training_feedback``: every arm's reward on the training span (``full_information``, the
default: the arms are rule strategies whose P&L is computable from bars) or the logged arm's
only (``logged``). The held-out span is evaluated from its logged view only (IPS, SNIPS, DR,
which the publish gate uses); its full-information rewards serve only as ground truth (true
policy values, the oracles and regret). The best single arm baseline is chosen on the
training span with full information, which makes it as strong as it can be.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import torch

from configs.bandit import BanditConfig
from pipelines.data.schema import REGIMES, TRUE_REGIME_COLUMN
from pipelines.evaluation.bootstrap import mean_difference, minimum_detectable_effect
from pipelines.evaluation.gates import Gate
from pipelines.evaluation.importance import ImportanceInputs, column_groups
from pipelines.evaluation.ope import ESTIMATORS, Estimate, evaluate_policies, fit_reward_model
from pipelines.evaluation.spans import (
    SPANS,
    paired_span_cis,
    put_span_intervals,
    span_key,
    span_masks,
)
from pipelines.export.onnx import OnnxExport, make_session, run
from pipelines.models.bandit.candidates import (
    RegimeArmRule,
    arm_choices,
    chosen_rewards,
    constant_arm_export,
    regime_arm_export,
)
from pipelines.models.bandit.export import export_onnx
from pipelines.models.bandit.logged import LoggedSplit, evaluate_logged, fit_logged, logged_split
from pipelines.models.bandit.neural import NeuralBandit, score_rows
from pipelines.models.bandit.plots import plot_arm_choices, plot_ope
from pipelines.models.bandit.thompson import BetaThompson, proxy_regimes
from pipelines.models.base import Evaluation, NotTrainable, TrainInputs
from pipelines.models.champion import (
    Candidate,
    Champion,
    ChampionDecision,
    challenge,
    eligibility,
)
from pipelines.models.common import time_split
from pipelines.seeding import Streams
from pipelines.strategies import (
    ARM_FAMILIES,
    ARM_NAMES,
    FALLBACK_ARM,
    N_ARMS,
    LoggingPolicy,
    arm_rewards,
    compute_signals,
    log_decisions,
)

logger = logging.getLogger(__name__)

MODEL_NAME = "bandit"
REFERENCE = "best_arm"
#: The contextual baseline: the best arm per proxy regime, chosen on the training span.
REGIME_ARM = "regime_arm"
#: The rule candidate of the champion stage: the best arm per rule regime read from the row's
#: own features (``candidates.RegimeArmRule``), which the bot can compute from its input.
RULE_REGIME_ARM = "rule_regime_arm"
_MC_SAMPLES = 64
#: The estimator suffix of exact (full-information) values and lifts, beside ips/snips/dr.
EXACT = "exact"


def policy_rewards(policy: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """Each decision's exact expected net reward under ``policy``: sum_a pi(a | x) r_a.

    The arms are rule strategies whose net reward is computed from bars for every arm, so a
    policy over them needs no off-policy estimate: a one-hot policy gets its arm's reward, a
    stochastic one (the Thompson policies, as the bot would sample them) the expectation over
    its action distribution. ``policy`` and ``rewards`` are [N, K]."""
    if policy.shape != rewards.shape:
        raise ValueError(f"policy {policy.shape} and rewards {rewards.shape} must match")
    if not np.allclose(policy.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("each row of policy must sum to 1")
    return np.asarray(np.sum(policy * rewards, axis=1), dtype=np.float64)


def exact_lift_metrics(
    ts: pd.Series,
    rewards: np.ndarray,
    policies: dict[str, np.ndarray],
    comparisons: list[tuple[str, str]],
    cfg: BanditConfig,
    seed: int,
) -> dict[str, float]:
    """Exact values and paired lifts of policies over the rule arms on the held-out bars.

    For each ``(policy, reference)`` in ``comparisons``: the per-decision exact reward of the
    policy minus the reference's, on the same bars, with the paired moving-block bootstrap
    (``bootstrap_block`` decisions) on the test span (``lift/<p>_vs_<ref>/exact``) and on the
    confirmation span (``confirm/lift/...``). Every comparison shares one seed, so all lifts
    are read on the same resamples. ``ts``/``rewards`` are the held-out rows in (symbol, ts)
    order; values per span go to ``value/<policy>/exact``."""
    values = {name: policy_rewards(p, rewards) for name, p in policies.items()}
    masks = span_masks(ts, cfg.confirm_fraction)
    metrics: dict[str, float] = {}
    for name, v in values.items():
        for span in SPANS:
            metrics[span_key(f"value/{name}/{EXACT}", span)] = float(np.mean(v[masks[span]]))
    for name, ref in comparisons:
        cis = paired_span_cis(
            ts,
            values[name],
            values[ref],
            mean_difference,
            block=cfg.bootstrap_block,
            n=cfg.n_bootstrap,
            level=cfg.ci_level,
            seed=seed,
            confirm_fraction=cfg.confirm_fraction,
        )
        put_span_intervals(metrics, f"lift/{name}_vs_{ref}/{EXACT}", cis)
    return metrics


@dataclass(frozen=True)
class BanditData:
    """Decisions joined with features: ``frame`` has ts, symbol, features, ``r/<arm>``
    rewards of every arm, ``proxy_regime`` and (synthetic data) ``true_regime``."""

    frame: pd.DataFrame
    feature_names: tuple[str, ...]

    @property
    def reward_columns(self) -> list[str]:
        return [f"r/{a}" for a in ARM_NAMES]


def build_dataset(
    bars: pd.DataFrame,
    features: pd.DataFrame,
    cfg: BanditConfig,
    signals: pd.DataFrame | None = None,
) -> BanditData:
    """Signals, rewards and proxy regimes from bars, inner-joined to features on (symbol, ts).

    Rows without a complete reward row (the last ``reward_horizon`` bars of each symbol)
    are dropped. The result is sorted by (symbol, ts).
    """
    feature_names = tuple(c for c in features.columns if c not in ("ts", "symbol"))
    if not feature_names:
        raise ValueError("features frame has no feature columns")
    if signals is None:
        signals = compute_signals(bars)
    rewards = arm_rewards(bars, signals, cfg.reward_horizon, cfg.cost_bps, cfg.slippage_bps)
    left = pd.DataFrame({"ts": bars["ts"], "symbol": bars["symbol"]})
    left[[f"r/{a}" for a in ARM_NAMES]] = rewards.to_numpy()
    left["proxy_regime"] = proxy_regimes(bars).to_numpy()
    if TRUE_REGIME_COLUMN in bars.columns:
        left["true_regime"] = bars[TRUE_REGIME_COLUMN].to_numpy()
    frame = features.merge(left, on=["symbol", "ts"], how="inner", validate="one_to_one")
    frame = frame.dropna(subset=[f"r/{a}" for a in ARM_NAMES])
    x = frame[list(feature_names)].to_numpy()
    if not np.isfinite(x).all():
        raise ValueError("features hold NaN/inf after the join; featurize drops warm-up rows")
    frame = frame.sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
    return BanditData(frame=frame, feature_names=feature_names)


def _purged_split(data: BanditData, cfg: BanditConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time split; the last ``reward_horizon`` training rows per symbol are dropped because
    their rewards are realised inside the held-out span."""
    train, hold = time_split(data.frame, cfg.holdout_fraction)
    from_end = train.groupby("symbol").cumcount(ascending=False)
    train = train[from_end >= cfg.reward_horizon]
    if len(train) < 100 or len(hold) < 100:
        raise NotTrainable(f"too few decisions to train/evaluate: {len(train)} / {len(hold)}")
    return train.reset_index(drop=True), hold.reset_index(drop=True)


def _logged(
    frame: pd.DataFrame, policy: LoggingPolicy, cfg: BanditConfig, seed: int
) -> pd.DataFrame:
    rewards = frame[[f"r/{a}" for a in ARM_NAMES]].set_axis(list(ARM_NAMES), axis=1)
    log = log_decisions(frame, rewards, policy, cfg.reward_horizon, seed)
    return log.loc[frame.index]  # frame is (symbol, ts) sorted: keep its order


def forward_mean(frame: pd.DataFrame, columns: list[str], window: int) -> np.ndarray:
    """Each row's ``columns`` averaged over it and the next ``window - 1`` rows of its symbol.

    Training targets for full-information feedback. A single 6-bar reward is mostly market
    noise (std ~185 bps against regime effects of ~10-30 bps), and a regime persists for
    dozens of bars, so the mean over the next ``window`` decisions estimates the same
    regime-conditional advantage with several times less variance. Labels look ahead, never
    features; rows near the end of a symbol's span average what is left, and ``frame`` must
    hold only rows whose rewards are realised inside it (the purged training span), so no
    held-out reward enters a label.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if (
        not frame.groupby("symbol", sort=False)["ts"]
        .apply(lambda t: t.is_monotonic_increasing)
        .all()
    ):
        raise ValueError("frame must be sorted by ts within each symbol")
    values = frame[columns]
    if window == 1:
        return values.to_numpy(dtype=np.float64)
    ahead = values.iloc[::-1].groupby(frame["symbol"].iloc[::-1].to_numpy(), sort=False)
    smoothed = ahead.rolling(window, min_periods=1).mean().reset_index(level=0, drop=True)
    return smoothed.loc[frame.index, columns].to_numpy(dtype=np.float64)


def safety_z(level: float, horizon: int) -> float:
    """Multiplier of the posterior std in the safe decision rule.

    The one-sided normal quantile of ``level``, inflated by sqrt(horizon): rewards of
    consecutive decisions share ``horizon - 1`` of their bars, so the posterior (which
    treats rows as independent) understates the std by about that factor.
    """
    if not 0.5 <= level < 1:
        raise ValueError(f"level must be in [0.5, 1), got {level}")
    return float(NormalDist().inv_cdf(level) * np.sqrt(horizon))


def _logged_best_arm(log: pd.DataFrame) -> int:
    """The arm with the best self-normalised (SNIPS) mean logged reward."""
    w = 1.0 / log["propensity"].to_numpy()
    arms = log["arm"].to_numpy()
    reward = log["reward"].to_numpy()
    means = [
        float(np.sum(w[arms == a] * reward[arms == a]) / np.sum(w[arms == a]))
        if np.any(arms == a)
        else -np.inf
        for a in range(N_ARMS)
    ]
    return int(np.argmax(means))


def _one_hot(arms: np.ndarray) -> np.ndarray:
    out = np.zeros((len(arms), N_ARMS))
    out[np.arange(len(arms)), arms] = 1.0
    return out


def _estimate_metrics(table: dict[str, dict[str, Estimate]]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for name, per in table.items():
        key = name if name.startswith("lift/") else f"ope/{name}"
        if name.startswith("lift/"):
            key = f"lift/{name[5:]}_vs_{REFERENCE}"
        for est in ESTIMATORS:
            metrics[f"{key}/{est}"] = per[est].value
            metrics[f"{key}/{est}_ci_low"] = per[est].low
            metrics[f"{key}/{est}_ci_high"] = per[est].high
    return metrics


def _write_table(
    table: dict[str, dict[str, Estimate]], truth: dict[str, float], path: Path
) -> Path:
    rows = []
    for name, per in table.items():
        row: dict[str, object] = {"policy": name, "true_value": truth.get(name, np.nan)}
        for est in ESTIMATORS:
            row[est] = per[est].value
            row[f"{est}_ci_low"] = per[est].low
            row[f"{est}_ci_high"] = per[est].high
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False, float_format="%.8g")
    return path


@dataclass(frozen=True)
class BanditSplit:
    """The purged time split with each span's logged view (one arm and its propensity)."""

    data: BanditData
    train: pd.DataFrame
    hold: pd.DataFrame
    log_tr: pd.DataFrame
    log_ho: pd.DataFrame
    logs: LoggedSplit | None = None  # the bot's own logged feedback, when enough has joined

    def x(self, part: pd.DataFrame) -> np.ndarray:
        return part[list(self.data.feature_names)].to_numpy(dtype=np.float32)


@dataclass
class BanditFit:
    """The network, its exported safe-scoring module, the companion and the reference arm."""

    bandit: NeuralBandit
    module: torch.nn.Module
    companion: BetaThompson
    best_arm: int
    default_arm: int
    z: float
    fit_seconds: float
    regime_arm: dict[int, int]
    regime_rule: RegimeArmRule


class BanditTrainer:
    """The strategy bandit's stages for the spec list (``pipelines/models/specs.py``)."""

    def prepare(self, inputs: TrainInputs, cfg: BanditConfig, streams: Streams) -> BanditSplit:
        data = build_dataset(inputs.bars, inputs.features, cfg, inputs.signals)
        train, hold = _purged_split(data, cfg)
        policy = LoggingPolicy(cfg.logging_policy, cfg.logging_epsilon, cfg.logging_window)
        log_tr = _logged(train, policy, cfg, streams.seed("logging/train"))
        log_ho = _logged(hold, policy, cfg, streams.seed("logging/holdout"))
        logs = logged_split(inputs.events, inputs.features, cfg.logged)
        return BanditSplit(data, train, hold, log_tr, log_ho, logs)

    def fit(self, split: BanditSplit, cfg: BanditConfig, streams: Streams) -> BanditFit:
        train, log_tr = split.train, split.log_tr
        full_tr = train[split.data.reward_columns].to_numpy()
        best_arm = int(np.argmax(full_tr.mean(axis=0)))
        started = time.perf_counter()
        bandit = NeuralBandit(
            hidden=tuple(cfg.hidden),
            dropout=cfg.dropout,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            patience=cfg.patience,
            val_fraction=cfg.val_fraction,
            prior_precision=cfg.prior_precision,
            seed=streams.seed("network"),
        )
        # NeuralBandit stops early on its last val_fraction rows: order them in time across
        # symbols, so that set is the latest span, not the last symbol's bars.
        order = np.argsort(train["ts"].to_numpy(), kind="stable")
        x_tr = split.x(train)[order]
        if split.logs is not None:
            default_arm = fit_logged(bandit, split.logs, cfg.logged)
        elif cfg.training_feedback == "full_information":
            default_arm = best_arm
            targets = forward_mean(train, split.data.reward_columns, cfg.label_window)[order]
            bandit.fit_full_information(x_tr, targets, default_arm)
        else:
            default_arm = _logged_best_arm(log_tr)
            bandit.fit(
                x_tr,
                log_tr["arm"].to_numpy()[order],
                log_tr["reward"].to_numpy()[order],
                N_ARMS,
            )
        companion = BetaThompson(N_ARMS, len(REGIMES), cfg.ts_prior_a, cfg.ts_prior_b).fit(
            log_tr["arm"].to_numpy(), train["proxy_regime"].to_numpy(), log_tr["reward"].to_numpy()
        )
        z = safety_z(cfg.safety_level, cfg.reward_horizon)
        module = bandit.safe_scoring_module(default_arm, z)
        seconds = time.perf_counter() - started
        regimes = train["proxy_regime"].to_numpy()
        regime_arm = {
            int(r): int(np.argmax(full_tr[regimes == r].mean(axis=0))) for r in np.unique(regimes)
        }
        # the champion stage's rule candidate, on the same rows and rewards as the best arm
        regime_rule = RegimeArmRule().fit(split.x(train), full_tr, split.data.feature_names)
        return BanditFit(
            bandit, module, companion, best_arm, default_arm, z, seconds, regime_arm, regime_rule
        )

    def evaluate(
        self,
        split: BanditSplit,
        fitted: BanditFit,
        cfg: BanditConfig,
        streams: Streams,
        out_dir: Path,
    ) -> Evaluation:
        hold, log_ho, data = split.hold, split.log_ho, split.data
        x_ho = split.x(hold)
        best_arm, companion = fitted.best_arm, fitted.companion
        mc = streams.numpy("monte_carlo")
        greedy = _greedy(fitted.module, x_ho)
        regimes_ho = hold["proxy_regime"].to_numpy()
        beta_draws = np.zeros((len(hold), N_ARMS))
        for _ in range(_MC_SAMPLES):
            beta_draws[np.arange(len(hold)), companion.select_action(regimes_ho, mc)] += 1
        policies = {
            "bandit": _one_hot(greedy),
            "bandit_ts": fitted.bandit.action_distribution(x_ho, mc, _MC_SAMPLES),
            "beta_ts": beta_draws / _MC_SAMPLES,
            REFERENCE: _one_hot(np.full(len(hold), best_arm)),
            REGIME_ARM: _one_hot(
                np.array([fitted.regime_arm.get(int(r), best_arm) for r in regimes_ho])
            ),
            "uniform": np.full((len(hold), N_ARMS), 1.0 / N_ARMS),
        }
        action = log_ho["arm"].to_numpy().astype(np.int64)
        reward = log_ho["reward"].to_numpy()
        q_hat = fit_reward_model(x_ho, action, reward, N_ARMS, cfg.ridge_alpha)
        table = evaluate_policies(
            reward,
            action,
            log_ho["propensity"].to_numpy(),
            q_hat,
            policies,
            REFERENCE,
            cfg.n_bootstrap,
            cfg.bootstrap_block,
            cfg.ci_level,
            streams.seed("bootstrap"),
        )
        contextual = evaluate_policies(
            reward,
            action,
            log_ho["propensity"].to_numpy(),
            q_hat,
            {"bandit": policies["bandit"], REGIME_ARM: policies[REGIME_ARM]},
            REGIME_ARM,
            cfg.n_bootstrap,
            cfg.bootstrap_block,
            cfg.ci_level,
            streams.seed("bootstrap"),
        )
        truth = _ground_truth(hold, data.reward_columns, policies)
        comparisons = [(name, REFERENCE) for name in policies if name != REFERENCE]
        exact = exact_lift_metrics(
            hold["ts"],
            hold[data.reward_columns].to_numpy(),
            policies,
            [*comparisons, ("bandit", REGIME_ARM)],
            cfg,
            streams.seed("bootstrap/exact"),
        )

        decisions = hold[["ts", "symbol"]].assign(chosen=greedy)
        if "true_regime" in hold:
            decisions["true_regime"] = hold["true_regime"].to_numpy()
        artifacts = {
            "arm_choices": plot_arm_choices(decisions, ARM_NAMES, out_dir / "arm_choices.png"),
            "ope_estimates": plot_ope(table, truth, out_dir / "ope_estimates.png"),
            "ope_table": _write_table(table, truth, out_dir / "ope_table.csv"),
            "thompson": companion.to_json(out_dir / "thompson.json", list(ARM_NAMES)),
        }
        arms_path = out_dir / "arms.json"
        arms_path.write_text(
            json.dumps(
                {"arms": list(ARM_NAMES), "families": [ARM_FAMILIES[a] for a in ARM_NAMES]},
                indent=1,
            ),
            encoding="utf-8",
        )
        artifacts["arms"] = arms_path

        metrics = _estimate_metrics(table)
        vs_regime = contextual["lift/bandit"]
        for est in ESTIMATORS:
            metrics[f"lift/bandit_vs_{REGIME_ARM}/{est}"] = vs_regime[est].value
            metrics[f"lift/bandit_vs_{REGIME_ARM}/{est}_ci_low"] = vs_regime[est].low
            metrics[f"lift/bandit_vs_{REGIME_ARM}/{est}_ci_high"] = vs_regime[est].high
        metrics.update(exact)
        # power: the smallest lift the test span can detect (one-sided 5%, power 80%), from
        # the bootstrap spread of the exact lift the gate reads (CI width / 2 z_{(1+level)/2});
        # the DR figure beside it is what the simulated-log estimate could detect
        z_ci = NormalDist().inv_cdf((1 + cfg.ci_level) / 2)
        key = f"lift/bandit_vs_{REFERENCE}/{EXACT}"
        sd = (exact[f"{key}_ci_high"] - exact[f"{key}_ci_low"]) / (2 * z_ci)
        metrics["power/lift_sd_bps"] = sd * 1e4
        metrics["power/mde_bps"] = minimum_detectable_effect(sd) * 1e4
        dr_lift = table["lift/bandit"]["dr"]
        dr_sd = (dr_lift.high - dr_lift.low) / (2 * z_ci)
        metrics["power/dr_lift_sd_bps"] = dr_sd * 1e4
        metrics["power/dr_mde_bps"] = minimum_detectable_effect(dr_sd) * 1e4
        metrics.update({f"truth/{k}": v for k, v in truth.items()})
        for oracle in ("oracle_hindsight", "oracle_regime"):
            if oracle in truth:
                for name in ("bandit", "bandit_ts", "beta_ts", REFERENCE, "uniform"):
                    metrics[f"regret/{name}_vs_{oracle}"] = truth[oracle] - truth[name]
        full_tr = split.train[data.reward_columns].to_numpy()
        logged = split.logs is not None or cfg.training_feedback == "logged"
        metrics["train/feedback"] = 1.0 if logged else 0.0
        if split.logs is not None:
            chosen = _greedy(fitted.module, split.logs.hold.X)
            seed = streams.seed("logs/bootstrap")
            logs_metrics, logs_artifacts = evaluate_logged(split.logs, chosen, cfg, seed, out_dir)
            metrics.update(logs_metrics)
            artifacts.update(logs_artifacts)
        chosen_share = np.bincount(greedy, minlength=N_ARMS) / len(greedy)
        metrics.update(
            {
                "holdout/n_decisions": float(len(hold)),
                "holdout/distinct_arms_chosen": float(np.count_nonzero(chosen_share)),
                "holdout/top_arm_share": float(chosen_share.max()),
                "holdout/deviation_share": float(np.mean(greedy != fitted.default_arm)),
                "train/default_arm_index": float(fitted.default_arm),
                "train/safety_z": fitted.z,
                "train/n_decisions": float(len(split.train)),
                "train/epochs_run": float(fitted.bandit.epochs_run_),
                "train/best_val_mse_scaled": fitted.bandit.best_val_loss_,
                "train/fit_seconds": fitted.fit_seconds,
                "train/best_arm_index": float(best_arm),
                "train/best_arm_mean_reward": float(full_tr[:, best_arm].mean()),
            }
        )
        logger.info(
            "bandit: exact lift over the best arm %s %.2f bps [%.2f, %.2f] on the test span, "
            "%.2f bps [%.2f, %.2f] on the confirmation span (simulated-log DR lift %.2f)",
            ARM_NAMES[best_arm],
            *(
                metrics[f"{span_key(key, span)}{part}"] * 1e4
                for span in SPANS
                for part in ("", "_ci_low", "_ci_high")
            ),
            dr_lift.value * 1e4,
        )
        params = {
            **cfg.model_dump(mode="json"),
            "arm_names": list(ARM_NAMES),
            "feature_names": list(data.feature_names),
            "best_arm": ARM_NAMES[best_arm],
            "default_arm": ARM_NAMES[fitted.default_arm],
            "exploration": "NeuralLinear (Bayesian last layer, Thompson sampling)",
            "decision_rule": "argmax of the lower confidence bound of each arm's advantage "
            "over the default arm (0 for the default arm)",
        }
        return Evaluation(metrics, artifacts, params)

    def importance_inputs(
        self, split: BanditSplit, fitted: BanditFit, cfg: BanditConfig
    ) -> ImportanceInputs:
        """Held-out decisions; the loss is minus the net reward of the arm the graph's
        greedy choice trades (every arm's reward is known there)."""
        rewards = split.hold[split.data.reward_columns].to_numpy(dtype=np.float64)

        def loss(out: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
            r = rewards[rows]
            return -r[np.arange(len(r)), np.argmax(out[0], axis=1)]

        return ImportanceInputs(
            x=split.x(split.hold),
            groups=column_groups(split.data.feature_names),
            loss=loss,
            what="minus the greedy arm's net reward per held-out decision",
            block=cfg.bootstrap_block,
            n_boot=cfg.n_bootstrap,
            level=cfg.ci_level,
        )

    def export(
        self, split: BanditSplit, fitted: BanditFit, cfg: BanditConfig, out_dir: Path
    ) -> OnnxExport:
        x_ho = split.x(split.hold)
        path = export_onnx(fitted.module, x_ho.shape[1], out_dir / "model.onnx", cfg.onnx_opset)
        want = score_rows(fitted.module, x_ho)
        (got,) = run(make_session(path), x_ho)
        return OnnxExport.checked(path, got, want)

    def challenge(
        self,
        split: BanditSplit,
        fitted: BanditFit,
        cfg: BanditConfig,
        streams: Streams,
        out_dir: Path,
        learned: OnnxExport,
        learned_gates: list[Gate],
        champion: Champion,
        parity_tolerance: float,
    ) -> ChampionDecision:
        """The slot's candidates (the network; the best single arm and the best arm per rule
        regime on the training span, as rules) against the live champion, all scored by their
        exact reward on the held-out bars (``pipelines/models/champion.py``)."""
        hold = split.hold
        x_ho = split.x(hold)
        rewards = hold[split.data.reward_columns].to_numpy()
        rule = constant_arm_export(
            fitted.best_arm, x_ho, out_dir / "candidates" / "best_arm.onnx", cfg.onnx_opset
        )
        regime_rule = fitted.regime_rule
        cells = regime_arm_export(
            regime_rule,
            x_ho,
            out_dir / "candidates" / f"{RULE_REGIME_ARM}.onnx",
            cfg.onnx_opset,
        )
        candidates = [
            Candidate("neural_linear", "learned", learned, "the NeuralLinear bandit's safe argmax"),
            Candidate(
                "best_arm",
                "rule",
                rule,
                f"the best single arm on the training span ({ARM_NAMES[fitted.best_arm]})",
            ),
            Candidate(RULE_REGIME_ARM, "rule", cells, regime_rule.describe()),
        ]
        eligible = eligibility(candidates, learned_gates, parity_tolerance)
        values = {
            c.name: chosen_rewards(arm_choices(c.export.path, x_ho), rewards) for c in candidates
        }
        champion, champion_arms = _champion_arms(champion, x_ho)
        decision = challenge(
            hold["ts"],
            values,
            champion,
            chosen_rewards(champion_arms, rewards),
            candidates,
            eligible,
            cfg,
            streams.seed("champion"),
            scale=1e4,
            unit="bps",
            parity_tolerance=parity_tolerance,
            min_lift=cfg.min_lift,
            measure="exact net reward per decision",
        )
        if decision.challenger is not None and decision.challenger.kind == "rule":
            frame = split.data.frame
            x_all = frame[list(split.data.feature_names)].to_numpy(np.float32)
            arms = arm_choices(decision.challenger.export.path, x_all)
            choice = frame[["ts", "symbol"]].assign(arm=np.asarray(ARM_NAMES)[arms])
            decision.extras = {"arm_choice": choice}
        return decision

    def extras(self, split: BanditSplit, fitted: BanditFit) -> dict[str, Any]:
        """The bandit's greedy arm on every decision row: the stream the bot would trade."""
        frame = split.data.frame
        greedy = _greedy(fitted.module, frame[list(split.data.feature_names)].to_numpy(np.float32))
        choice = frame[["ts", "symbol"]].assign(arm=np.asarray(ARM_NAMES)[greedy])
        return {"arm_choice": choice}


def _champion_arms(champion: Champion, x: np.ndarray) -> tuple[Champion, np.ndarray]:
    """The live champion's arm on each held-out row; the bot's fallback arm when nothing is
    live or the live graph cannot take today's inputs (then the bot could not run it either
    and would fall back: the champion it must beat is the fallback)."""
    fallback = np.full(len(x), ARM_NAMES.index(FALLBACK_ARM), dtype=np.int64)
    if champion.onnx_path is None:
        return champion, fallback
    try:
        return champion, arm_choices(champion.onnx_path, x)
    except Exception as exc:  # an old contract: the bot's fallback is what would trade
        logger.warning("bandit: the live %s cannot be scored (%s): fallback", champion.label, exc)
        note = f"live {champion.label} does not take today's inputs ({exc})"
        return Champion("fallback", "fallback", note=note), fallback


def _greedy(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    return np.argmax(score_rows(module, x), axis=1)


def _ground_truth(
    hold: pd.DataFrame, reward_columns: list[str], policies: dict[str, np.ndarray]
) -> dict[str, float]:
    """True policy values on the held-out span from every arm's reward (evaluation only)."""
    full_ho = hold[reward_columns].to_numpy()
    truth = {name: float(np.mean(np.sum(p * full_ho, axis=1))) for name, p in policies.items()}
    truth["oracle_hindsight"] = float(np.mean(full_ho.max(axis=1)))
    if "true_regime" in hold:
        true_reg = hold["true_regime"].to_numpy()
        per_regime_best = {
            int(r): int(np.argmax(full_ho[true_reg == r].mean(axis=0))) for r in np.unique(true_reg)
        }
        oracle_arm = np.array([per_regime_best[int(r)] for r in true_reg])
        truth["oracle_regime"] = float(np.mean(full_ho[np.arange(len(hold)), oracle_arm]))
    return truth
