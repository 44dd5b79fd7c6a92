"""The sizer's trainer: train CVaR-PPO and plain PPO, evaluate four sizers, export, gate.

The flow runs :class:`SizerTrainer` once (its spec: ``pipelines/models/specs.py``); everything
it needs comes in as arguments, and the same bars, features, config and seed give the same figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv

from configs.sizer import SizerConfig
from pipelines.evaluation import risk
from pipelines.evaluation.gates import Gate
from pipelines.evaluation.importance import ImportanceInputs, column_groups
from pipelines.evaluation.spans import paired_span_cis, put_span_intervals
from pipelines.export.onnx import OnnxExport, make_session, run
from pipelines.interrupt import checkpoint
from pipelines.models.base import Evaluation, NoExtras, TrainInputs
from pipelines.models.champion import (
    Candidate,
    Champion,
    ChampionDecision,
    challenge,
    eligibility,
)
from pipelines.models.common import time_split
from pipelines.models.sizer.baselines import baseline_multipliers, vol_target_multipliers
from pipelines.models.sizer.candidates import (
    FALLBACK_MULTIPLIER,
    onnx_multipliers,
    portfolio_returns,
    sharpe_difference,
    vol_target_export,
    vol_target_scale,
)
from pipelines.models.sizer.cppo import CVaRPPO
from pipelines.models.sizer.data import (
    NEXT_RETURN_COLUMN,
    SIGNAL_COLUMN,
    ObservationScaler,
    build_table,
    select_arm,
)
from pipelines.models.sizer.env import SizingEnv, window_starts
from pipelines.models.sizer.evaluate import (
    METRIC_NAMES,
    SizerRun,
    rule_multipliers,
    run_sizer,
    sizer_metrics,
)
from pipelines.models.sizer.export import export_onnx, sb3_multipliers
from pipelines.models.sizer.plots import plot_equity_curves, plot_lambda_trajectory
from pipelines.seeding import Streams

logger = logging.getLogger(__name__)

MODEL_NAME = "sizer"
KEY_COLUMNS = ("ts", "symbol")
#: Sizer names in reports; ``cvar_ppo`` is the one published.
SIZERS = ("cvar_ppo", "ppo", "fixed_1x", "rule", "constant", "vol_target")
#: Baselines held at the CVaR-PPO sizer's own mean leverage (``baselines.py``).
SAME_LEVERAGE = ("constant", "vol_target")


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads and restore the caller's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class SizerData:
    """The joined table split in time, with the chosen signal and scaled observations."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    obs_columns: list[str]
    arm: str
    arm_scores: dict[str, float]
    scaler: ObservationScaler
    ann_factor: float
    interval: pd.Timedelta
    bandit_choice: bool = False

    def raw_obs(self, frame: pd.DataFrame) -> npt.NDArray[np.float32]:
        return frame[self.obs_columns].to_numpy(dtype=np.float32)


def _apply_bandit_choice(table: pd.DataFrame, arm_choice: pd.DataFrame) -> pd.Series:
    """Per-row signal of the arm the bandit chose (rows it has no choice for keep the default)."""
    choice = table[list(KEY_COLUMNS)].merge(
        arm_choice[[*KEY_COLUMNS, "arm"]], on=list(KEY_COLUMNS), how="left", validate="1:1"
    )["arm"]
    sig = table[SIGNAL_COLUMN].copy()
    for arm in choice.dropna().unique():
        rows = (choice == arm).to_numpy()
        sig[rows] = table.loc[rows, str(arm)]
    return sig


def prepare_data(
    bars: pd.DataFrame,
    features: pd.DataFrame,
    signals: pd.DataFrame,
    cfg: SizerConfig,
    arm_choice: pd.DataFrame | None = None,
) -> SizerData:
    """Join, split in time, choose the arm on train only, fit the observation scaler on train."""
    feature_names = [c for c in features.columns if c not in KEY_COLUMNS]
    arm_names = [c for c in signals.columns if c not in KEY_COLUMNS]
    table = build_table(bars, features, signals, feature_names, arm_names)
    interval = risk.infer_interval(bars["ts"])
    # bars a year as the data itself has them (252-ish for daily equities, ~6200 for FX)
    ann = risk.bars_per_year(bars["ts"], bars["symbol"])
    cost = cfg.cost_bps * 1e-4
    train, holdout = time_split(table, cfg.holdout_fraction)
    if cfg.arm is not None:
        if cfg.arm not in arm_names:
            raise ValueError(f"sizer.arm {cfg.arm!r} is not one of {arm_names}")
        arm, scores = cfg.arm, dict[str, float]()
    else:
        arm, scores = select_arm(train, arm_names, cost, ann)
    table[SIGNAL_COLUMN] = table[arm].astype(np.float32)
    if arm_choice is not None:
        table[SIGNAL_COLUMN] = _apply_bandit_choice(table, arm_choice).astype(np.float32)
    train, holdout = table.loc[train.index], table.loc[holdout.index]
    obs_columns = [*feature_names, SIGNAL_COLUMN]
    scaler = ObservationScaler(clip=cfg.obs_clip).fit(train[obs_columns].to_numpy(np.float32))
    logger.info("sizer: arm %s, %d train rows, %d holdout rows", arm, len(train), len(holdout))
    return SizerData(
        train, holdout, obs_columns, arm, scores, scaler, ann, interval, arm_choice is not None
    )


def window_pnl(frame: pd.DataFrame, window: int, cost: float) -> npt.NDArray[np.float64]:
    """P&L of every ``window``-bar episode under fixed 1.0x sizing (entering from flat)."""
    sym = frame["symbol"].to_numpy()
    block = np.r_[0, np.cumsum(sym[1:] != sym[:-1])]
    s = frame[SIGNAL_COLUMN].to_numpy(np.float64)
    r = frame[NEXT_RETURN_COLUMN].to_numpy(np.float64)
    gross = np.concatenate([[0.0], np.cumsum(s * r)])
    chg = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(s)))])
    out = []
    for t in window_starts(block, window):
        e = t + window
        # costs: entry |s_t| then the changes inside the window
        out.append(gross[e] - gross[t] - cost * (abs(s[t]) + chg[e - 1] - chg[t]))
    return np.asarray(out)


def cvar_cuts(
    ts: pd.Series,
    mine: np.ndarray,
    baselines: dict[str, np.ndarray],
    cfg: SizerConfig,
    seed: int,
) -> dict[str, float]:
    """Per-bar CVaR(alpha) of each baseline minus the model's, with paired moving-block
    bootstrap CIs (the same resampled bars for both) on the test span and on the confirmation
    span of the held-out bars (``ts``: the portfolio stream's bar times, row-aligned with the
    returns; the stream is one equal-weight series, so its time order is the bootstrap's)."""

    def cut(base: np.ndarray, model: np.ndarray) -> float:
        return risk.cvar(base, cfg.cvar_alpha) - risk.cvar(model, cfg.cvar_alpha)

    out: dict[str, float] = {}
    for name, returns in baselines.items():
        cis = paired_span_cis(
            ts,
            returns,
            mine,
            cut,
            block=cfg.bootstrap_block,
            n=cfg.n_bootstrap,
            level=cfg.ci_level,
            seed=seed,
            confirm_fraction=cfg.confirm_fraction,
        )
        put_span_intervals(out, f"lift/cvar_cut_vs_{name}", cis)
    return out


def make_env(data: SizerData, cfg: SizerConfig) -> DummyVecEnv:
    """``n_envs`` copies of the training-span environment (seeded by SB3 from the model seed).

    The copies share one float32 observation array: converted per env it was 32 copies of
    the training span (150 MB on the demo) for the two PPO runs."""
    frame = data.train
    sym = frame["symbol"].to_numpy()
    block = np.r_[0, np.cumsum(sym[1:] != sym[:-1])]
    obs = np.ascontiguousarray(data.scaler.transform(data.raw_obs(frame)), dtype=np.float32)
    sig = frame[SIGNAL_COLUMN].to_numpy(np.float64)
    ret = frame[NEXT_RETURN_COLUMN].to_numpy(np.float64)

    def factory() -> SizingEnv:
        return SizingEnv(obs, sig, ret, block, cfg.window, cfg.cost_bps * 1e-4, cfg.reward_scale)

    return DummyVecEnv([factory] * cfg.n_envs)


def _ppo_kwargs(cfg: SizerConfig, seed: int) -> dict[str, Any]:
    return {
        "n_steps": cfg.n_steps,
        "batch_size": cfg.batch_size,
        "n_epochs": cfg.n_epochs,
        "learning_rate": cfg.learning_rate,
        "gamma": cfg.gamma,
        "gae_lambda": cfg.gae_lambda,
        "ent_coef": cfg.ent_coef,
        "policy_kwargs": {"net_arch": list(cfg.net_arch), "log_std_init": cfg.log_std_init},
        "seed": seed,
        "device": "cpu",
        "verbose": 0,
    }


def cvar_bound(data: SizerData, cfg: SizerConfig) -> float:
    """The constraint's bound on window loss CVaR, as a fraction of capital: by default the
    train-span window CVaR of the volatility-targeting rule at mean leverage 1 (the tail a
    one-line rule already reaches), not a fraction of fixed 1.0x's (which de-levering meets)."""
    if cfg.cvar_bound is not None:
        return cfg.cvar_bound
    train = data.train
    vt = vol_target_multipliers(train, 1.0, cfg.baseline_window)
    sized = train.assign(**{SIGNAL_COLUMN: train[SIGNAL_COLUMN].to_numpy() * vt})
    base = risk.cvar(window_pnl(sized, cfg.window, cfg.cost_bps * 1e-4), cfg.cvar_alpha)
    return cfg.cvar_bound_ratio * max(base, 1e-6)


PPOType = TypeVar("PPOType", bound=PPO)


def _quiet(model: PPOType) -> PPOType:
    """``model`` with a logger that writes nowhere. SB3 otherwise makes a log folder under the
    temporary directory at every ``learn`` (``SB3-<timestamp>``, empty at ``verbose=0``) and
    never removes it: two per training. The records (``cvar/...``) still reach the logger."""
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


class _StopOnInterrupt(BaseCallback):
    """Ends ``learn`` at the next environment step once the run is interrupted (it raises;
    returning False would end training quietly and go on to evaluate a half-trained model).
    It draws no random numbers, so a full run's results are unchanged."""

    def _on_step(self) -> bool:
        checkpoint()
        return True


def fit_models(data: SizerData, cfg: SizerConfig, seed: int) -> tuple[CVaRPPO, PPO, float, float]:
    """Train CVaR-PPO and plain PPO with the same budget, seed and environment."""
    bound = cvar_bound(data, cfg)
    with torch_threads(cfg.torch_threads):
        t0 = time.perf_counter()
        cppo = _quiet(
            CVaRPPO(
                "MlpPolicy",
                make_env(data, cfg),
                cvar_alpha=cfg.cvar_alpha,
                cvar_bound=bound * cfg.reward_scale,
                lambda_lr=cfg.lambda_lr,
                lambda_init=cfg.lambda_init,
                lambda_max=cfg.lambda_max,
                **_ppo_kwargs(cfg, seed),
            )
        ).learn(cfg.total_timesteps, callback=_StopOnInterrupt())
        t1 = time.perf_counter()
        ppo = _quiet(PPO("MlpPolicy", make_env(data, cfg), **_ppo_kwargs(cfg, seed))).learn(
            cfg.total_timesteps, callback=_StopOnInterrupt()
        )
        t2 = time.perf_counter()
    steps = float(cppo.num_timesteps + ppo.num_timesteps)
    logger.info("sizer: CVaR-PPO %.1fs, PPO %.1fs", t1 - t0, t2 - t1)
    return cppo, ppo, bound, steps / max(t2 - t0, 1e-9)


def evaluate_all(
    data: SizerData, cppo: PPO, ppo: PPO, cfg: SizerConfig
) -> dict[str, tuple[SizerRun, dict[str, float]]]:
    """All four sizers on the holdout span: CVaR-PPO, PPO, fixed 1.0x, the rule."""
    hold = data.holdout
    raw = data.raw_obs(hold)
    cost = cfg.cost_bps * 1e-4
    mine = sb3_multipliers(cppo, data.scaler, raw)
    mults = {
        "cvar_ppo": mine,
        "ppo": sb3_multipliers(ppo, data.scaler, raw),
        "fixed_1x": np.ones(len(hold)),
        "rule": rule_multipliers(hold, cfg.rule_window, cfg.rule_scale, cost),
        **baseline_multipliers(hold, mine, cfg.baseline_window),
    }
    out = {}
    for name in SIZERS:
        run = run_sizer(hold, mults[name], cost)
        out[name] = (run, sizer_metrics(run, data.ann_factor, cfg.cvar_alpha))
    return out


@dataclass
class SizerFit:
    """CVaR-PPO, the plain PPO it is compared with, the constraint's bound, training speed."""

    cppo: CVaRPPO
    ppo: PPO
    bound: float
    steps_per_s: float


class SizerTrainer(NoExtras):
    """The sizer's stages for the spec list (``pipelines/models/specs.py``)."""

    def prepare(self, inputs: TrainInputs, cfg: SizerConfig, streams: Streams) -> SizerData:
        # size the stream the bot will trade: the bandit's choices when it passed its gates
        bandit = inputs.upstream.get("bandit")
        arm_choice = bandit.extras.get("arm_choice") if bandit and bandit.passed else None
        return prepare_data(inputs.bars, inputs.features, inputs.signals, cfg, arm_choice)

    def fit(self, data: SizerData, cfg: SizerConfig, streams: Streams) -> SizerFit:
        cppo, ppo, bound, sps = fit_models(data, cfg, streams.seed("ppo"))
        return SizerFit(cppo, ppo, bound, sps)

    def evaluate(
        self, data: SizerData, fitted: SizerFit, cfg: SizerConfig, streams: Streams, out_dir: Path
    ) -> Evaluation:
        cppo = fitted.cppo
        evals = evaluate_all(data, cppo, fitted.ppo, cfg)
        results = {name: m for name, (_, m) in evals.items()}
        history = pd.DataFrame(cppo.cvar_history_)
        history.insert(0, "update", np.arange(1, len(history) + 1))
        for col in ("var", "cvar", "bound", "mean_path_return"):
            history[col] = history[col] / cfg.reward_scale  # back to fractions of capital
        artifacts = {
            "equity_curves": plot_equity_curves(
                {n: r for n, (r, _) in evals.items()}, out_dir / "equity_curves.png"
            ),
            "lambda_trajectory_plot": plot_lambda_trajectory(
                history, out_dir / "lambda_trajectory.png"
            ),
            "lambda_trajectory": out_dir / "lambda_trajectory.csv",
            "holdout_metrics": out_dir / "holdout_metrics.csv",
        }
        history.to_csv(artifacts["lambda_trajectory"], index=False)
        pd.DataFrame(results).T.loc[list(SIZERS), list(METRIC_NAMES)].to_csv(
            artifacts["holdout_metrics"], index_label="sizer"
        )
        metrics: dict[str, float] = {}
        for name in SIZERS:
            prefix = "holdout" if name == "cvar_ppo" else f"baseline/{name}"
            metrics.update({f"{prefix}/{k}": float(v) for k, v in results[name].items()})
        metrics.update(
            cvar_cuts(
                evals["cvar_ppo"][0].ts,
                evals["cvar_ppo"][0].returns,
                {b: evals[b][0].returns for b in SAME_LEVERAGE},
                cfg,
                streams.seed("bootstrap"),
            )
        )
        last = cppo.cvar_history_[-1] if cppo.cvar_history_ else {}
        metrics.update(
            {
                "train/lambda_final": float(cppo.lambda_),
                "train/lambda_max_seen": float(history["lambda_next"].max())
                if len(history)
                else 0.0,
                "train/cvar_last": float(last.get("cvar", np.nan)) / cfg.reward_scale,
                "train/var_last": float(last.get("var", np.nan)) / cfg.reward_scale,
                "train/cvar_bound": float(fitted.bound),
                "train/n_updates": float(len(history)),
                "train/steps_per_s": float(fitted.steps_per_s),
                "train/arm_sharpe": float(data.arm_scores.get(data.arm, np.nan)),
                "eval/ann_factor": float(data.ann_factor),
                "eval/holdout_rows": float(len(data.holdout)),
            }
        )
        params = {
            **cfg.model_dump(),  # first, so the resolved values below win over cfg.arm=None
            "arm": data.arm,
            "obs_columns": list(data.obs_columns),
            "bar_interval": str(data.interval),
            "ann_factor": data.ann_factor,
            "cvar_bound": fitted.bound,
            "bandit_choice": data.bandit_choice,
        }
        return Evaluation(metrics, artifacts, params)

    def challenge(
        self,
        data: SizerData,
        fitted: SizerFit,
        cfg: SizerConfig,
        streams: Streams,
        out_dir: Path,
        learned: OnnxExport,
        learned_gates: list[Gate],
        champion: Champion,
        parity_tolerance: float,
    ) -> ChampionDecision:
        """The slot's candidates (CVaR-PPO; volatility targeting at the fallback's exposure,
        fitted on the training span) against the live champion, every one scored by the
        annualized Sharpe of the sized stream on the held-out bars
        (``pipelines/models/sizer/candidates.py``)."""
        hold, cost = data.holdout, cfg.cost_bps * 1e-4
        x = data.raw_obs(hold)
        scale = vol_target_scale(data.train, FALLBACK_MULTIPLIER)
        rule = vol_target_export(
            data.obs_columns, scale, x, out_dir / "candidates" / "vol_target.onnx", cfg.onnx_opset
        )
        candidates = [
            Candidate("cvar_ppo", "learned", learned, "PPO with a CVaR constraint"),
            Candidate("vol_target", "rule", rule, f"{scale:.3g} / rv_24, clamped"),
        ]
        eligible = eligibility(candidates, learned_gates, parity_tolerance)
        values: dict[str, np.ndarray] = {}
        ts = None
        for cand in candidates:
            ts, values[cand.name] = portfolio_returns(
                hold, onnx_multipliers(cand.export.path, x), cost
            )
        assert ts is not None
        champion, champ_mult = _champion_multipliers(champion, x)
        _, champ_values = portfolio_returns(hold, champ_mult, cost)
        return challenge(
            ts,
            values,
            champion,
            champ_values,
            candidates,
            eligible,
            cfg,
            streams.seed("champion"),
            scale=1.0,
            unit="Sharpe",
            value_scale=1e4,
            value_unit="bps per bar",
            parity_tolerance=parity_tolerance,
            stat=sharpe_difference(data.ann_factor),
            measure="annualized Sharpe of the sized stream, net of turnover cost",
        )

    def importance_inputs(
        self, data: SizerData, fitted: SizerFit, cfg: SizerConfig
    ) -> ImportanceInputs:
        """Held-out bars in the graph's columns (the features and the arm's signal); the
        loss is minus each bar's net P&L of the sized position, as :func:`run_sizer` books it
        (the position change against the previous bar of the same symbol pays the cost)."""
        hold = data.holdout
        signal = hold[SIGNAL_COLUMN].to_numpy(dtype=np.float64)
        ret = hold[NEXT_RETURN_COLUMN].to_numpy(dtype=np.float64)
        sym = hold["symbol"].to_numpy()
        cost = cfg.cost_bps * 1e-4

        def loss(out: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
            pos = out[0].reshape(-1).astype(np.float64) * signal[rows]
            s = sym[rows]
            first = np.r_[True, s[1:] != s[:-1]]
            prev = np.where(first, 0.0, np.r_[0.0, pos[:-1]])
            return -(pos * ret[rows] - cost * np.abs(pos - prev))

        return ImportanceInputs(
            x=data.raw_obs(hold),
            groups=column_groups(data.obs_columns),
            loss=loss,
            what="minus the net P&L per held-out bar",
            block=cfg.bootstrap_block,
            n_boot=cfg.n_bootstrap,
            level=cfg.ci_level,
        )

    def export(
        self, data: SizerData, fitted: SizerFit, cfg: SizerConfig, out_dir: Path
    ) -> OnnxExport:
        path = export_onnx(fitted.cppo, data.scaler, out_dir / "sizer.onnx", cfg.onnx_opset)
        raw = data.raw_obs(data.holdout)
        (got,) = run(make_session(path), raw)
        want = sb3_multipliers(fitted.cppo, data.scaler, raw)
        return OnnxExport.checked(path, got.reshape(-1), want)


def _champion_multipliers(
    champion: Champion, x: npt.NDArray[np.float32]
) -> tuple[Champion, npt.NDArray[np.float64]]:
    """The live champion's multiplier per held-out row; the fallback's when nothing is live
    or the live graph cannot take today's inputs (the bot would fall back as well)."""
    fallback = np.full(len(x), FALLBACK_MULTIPLIER)
    if champion.onnx_path is None:
        return champion, fallback
    try:
        return champion, onnx_multipliers(champion.onnx_path, x)
    except Exception as exc:  # an old contract: the fallback is what the bot would size by
        logger.warning("sizer: the live %s cannot be scored (%s): fallback", champion.label, exc)
        note = f"live {champion.label} does not take today's inputs ({exc})"
        return Champion("fallback", "fallback", note=note), fallback
