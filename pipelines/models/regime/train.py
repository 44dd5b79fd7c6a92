"""The regime trainer: the regime classifier from bars and features to a gated ONNX export.

Steps (one call, deterministic in ``seed``):

1. Targets: the generator's true regime when the bars carry it, else the forward-looking rule.
2. Time split: the later ``holdout_fraction`` is held out; the training span ends a gap of
   ``purge + embargo`` bars before it. Its latest ``calibration_fraction`` (again after a gap)
   is kept for conformal calibration.
3. Walk-forward comparison of the candidates and both baselines on the training span.
4. The best candidate (configured metric) is refit on the fit part; the baselines too.
5. Conformal sets calibrated on the calibration part: split conformal, and the stream methods
   (rolling window, adaptive conformal inference) run in time order over the holdout with
   each label revealed ``label_horizon`` bars later (``conformal.py``); coverage per span.
6. Held-out evaluation, reliability/ECE, BOCD changepoints, plots, ONNX export with parity,
   gates.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from configs.regime import RegimeConfig
from pipelines.data.schema import REGIMES
from pipelines.evaluation.bootstrap import mean_difference
from pipelines.evaluation.calibration import (
    SplitConformalClassifier,
    expected_calibration_error,
    plot_reliability,
    reliability_curve,
)
from pipelines.evaluation.gates import Gate
from pipelines.evaluation.importance import ImportanceInputs, column_groups
from pipelines.evaluation.spans import paired_span_cis, put_span_intervals
from pipelines.evaluation.splits import inner_split_bars, time_split_bars, walk_forward_bars
from pipelines.export.onnx import OnnxExport
from pipelines.features import FEATURE_NAMES
from pipelines.features.names import model_feature_columns
from pipelines.models.base import Evaluation, NoExtras, NotTrainable, TrainInputs
from pipelines.models.champion import Candidate, Champion, ChampionDecision, challenge, eligibility
from pipelines.models.regime.bocd import bocd_frame, detection_stats
from pipelines.models.regime.candidates import (
    BASELINE_INPUTS,
    PERSISTENCE,
    baseline_inputs,
    make_baseline,
    make_candidate,
    persistence_inputs,
    predict_proba_full,
)
from pipelines.models.regime.conformal import METHODS, conformal_stream_metrics
from pipelines.models.regime.export import OUTPUT_NAMES, export_onnx, onnx_probabilities
from pipelines.models.regime.labels import NO_LABEL, regime_labels
from pipelines.models.regime.plots import plot_regime_timeline
from pipelines.models.regime.rule import (
    RULE_NAME,
    PersistenceRule,
    TrailingRule,
    onnx_regime_probabilities,
    persistence_export,
    prior_probabilities,
)
from pipelines.models.regime.selection import (
    Contender,
    Fold,
    classification_metrics,
    select_best,
    summarize,
    walk_forward_compare,
)
from pipelines.seeding import Streams

logger = logging.getLogger(__name__)

MODEL_NAME = "regime"
_KEYS = ["symbol", "ts"]


def _utc(ts: pd.Series) -> pd.Series:
    """Timestamps as tz-aware UTC, so frames from different sources join on equal keys."""
    out = pd.to_datetime(ts)
    return out.dt.tz_localize("UTC") if out.dt.tz is None else out.dt.tz_convert("UTC")


def bocd_prior_variance(bars: pd.DataFrame, holdout_fraction: float) -> float:
    """BOCD's prior variance: that of the 1-bar log returns before the held-out span.

    A bot's online detector (``pipelines.bot.OnlineBocd``) needs the same value to report the
    changepoint probability training saw; it is published as ``train/bocd_prior_var``.
    """
    cut = bars["ts"].quantile(1 - holdout_fraction)
    early = bars[bars["ts"] < cut]
    r = early.groupby("symbol")["close"].transform(lambda c: np.log(c).diff())
    var = float(np.nanvar(r.to_numpy())) if r.notna().sum() > 1 else 1e-4
    return var if var > 0 else 1e-4


def build_dataset(
    bars: pd.DataFrame,
    features: pd.DataFrame,
    cfg: RegimeConfig,
    prior_var: float | None = None,
) -> tuple[pd.DataFrame, str, float]:
    """One row per labelled bar: keys, 43 features, target ``y``, baseline inputs, ``cp_prob``.

    Joined on (symbol, ts); rows without a label (rule: last ``h`` bars) or without a full
    baseline window are dropped. Also returns the label source and BOCD's prior variance.
    ``prior_var`` scales BOCD's prior; ``None`` uses the variance of the 1-bar log returns in
    the first ``1 - holdout_fraction`` of the time range, so the held-out span never informs it.
    """
    missing = [c for c in _KEYS if c not in features.columns]
    if missing:
        raise ValueError(f"features frame lacks columns {missing}")
    names = model_feature_columns(features.columns)
    for col in ("ts", "symbol", "close"):
        if col not in bars.columns:
            raise ValueError(f"bars lack column {col!r}")
    bars = bars.assign(ts=_utc(bars["ts"])).sort_values(_KEYS, ignore_index=True)
    y, source = regime_labels(
        bars,
        cfg.label_horizon,
        use_true_regime=cfg.use_true_regime,
        trend_z=cfg.label_trend_z,
        panic_vol_ratio=cfg.label_panic_vol_ratio,
        vol_window=cfg.label_vol_window,
    )
    # The persistence baseline's input: the newest label a bot can know at t, the rule label
    # of bar t - h (its forward window has closed). Even on synthetic data the true regime is
    # never observed, so the baseline never sees it.
    rule, _ = regime_labels(
        bars,
        cfg.label_horizon,
        use_true_regime=False,
        trend_z=cfg.label_trend_z,
        panic_vol_ratio=cfg.label_panic_vol_ratio,
        vol_window=cfg.label_vol_window,
    )
    known = persistence_inputs(bars, rule.to_numpy(), cfg.label_horizon).reshape(-1)
    base = bars[[*_KEYS, "close"]].assign(y=y.to_numpy(), known_label=known)
    if prior_var is None:
        prior_var = bocd_prior_variance(bars, cfg.holdout_fraction)
    cp = bocd_frame(
        bars,
        cfg.bocd.hazard,
        cfg.bocd.max_run_length,
        window=cfg.bocd.window,
        prior_var=prior_var,
        kappa0=cfg.bocd.kappa0,
        alpha0=cfg.bocd.alpha0,
    )
    inputs = baseline_inputs(bars, cfg.baseline_window)
    feats = features[[*_KEYS, *names]].assign(ts=_utc(features["ts"]))
    frame = (
        feats.merge(base, on=_KEYS, how="inner", validate="one_to_one")
        .merge(inputs.assign(ts=_utc(inputs["ts"])), on=_KEYS, how="inner", validate="one_to_one")
        .merge(cp.assign(ts=_utc(cp["ts"])), on=_KEYS, how="inner", validate="one_to_one")
    )
    keep = (frame["y"] != NO_LABEL) & frame[list(BASELINE_INPUTS)].notna().all(axis=1)
    frame = frame[keep].sort_values(_KEYS, ignore_index=True)
    if frame.empty:
        raise NotTrainable("no labelled rows after joining bars and features on (symbol, ts)")
    frame["y"] = frame["y"].astype(np.int64)
    return frame, source, prior_var


def _fit(factory: Callable[[], Any], X: np.ndarray, y: np.ndarray) -> Any:
    return factory().fit(X, y)


def _bocd_metrics(frame: pd.DataFrame, cfg: RegimeConfig) -> dict[str, float]:
    """Detection delay and false alarms of BOCD against the target's regime changes, per symbol.

    Scored on every labelled row (BOCD is unsupervised; only its prior scale saw training data),
    changes are where the target class switches; an alarm counts within ``2 * window`` bars.
    """
    out: dict[str, float] = {}
    max_delay = 2 * cfg.bocd.window
    for name, thr in (("reduce", cfg.bocd.reduce_threshold), ("exit", cfg.bocd.exit_threshold)):
        n_changes = detected = false_alarms = 0
        delays: list[int] = []
        bars_seen = 0
        for _, g in frame.groupby("symbol", sort=True):
            y = g["y"].to_numpy()
            cps = np.flatnonzero(np.diff(y) != 0) + 1
            st = detection_stats(g["cp_prob"].to_numpy(), cps, thr, max_delay)
            n_changes += st.n_changes
            detected += st.detected
            false_alarms += st.false_alarms
            bars_seen += len(g)
            delays.extend(st.delays)
        out[f"bocd/{name}/n_changes"] = float(n_changes)
        out[f"bocd/{name}/detection_rate"] = detected / n_changes if n_changes else float("nan")
        out[f"bocd/{name}/mean_delay_bars"] = float(np.mean(delays)) if delays else float("nan")
        out[f"bocd/{name}/false_alarms_per_1000_bars"] = 1000.0 * false_alarms / max(bars_seen, 1)
    return out


@dataclass
class RegimeData:
    """The labelled frame, its time splits (fit / calibration / holdout, gaps between) and
    the design matrices of each part."""

    frame: pd.DataFrame
    source: str
    prior_var: float
    fit_rows: np.ndarray
    calib_rows: np.ndarray
    hold_rows: np.ndarray
    #: the model's input columns: the 43, then any cross-asset and exogenous ones
    feature_names: tuple[str, ...] = FEATURE_NAMES

    @property
    def fit_part(self) -> pd.DataFrame:
        return self.frame.iloc[self.fit_rows]

    @property
    def calib(self) -> pd.DataFrame:
        return self.frame.iloc[self.calib_rows]

    @property
    def holdout(self) -> pd.DataFrame:
        return self.frame.iloc[self.hold_rows]

    def mats(self, part: pd.DataFrame) -> dict[str, np.ndarray]:
        return {
            "features": part[list(self.feature_names)].to_numpy(dtype=np.float32),
            "two_inputs": part[list(BASELINE_INPUTS)].to_numpy(dtype=np.float64),
            "known_label": part[["known_label"]].to_numpy(dtype=np.float64),
            "none": np.zeros((len(part), 1)),
        }


@dataclass
class RegimeFit:
    """The selected model refitted on the fit part, its conformal wrapper, the comparison."""

    best: str
    model: Any
    contenders: dict[str, Contender]
    table: pd.DataFrame
    summary: pd.DataFrame
    conformal: SplitConformalClassifier
    n_folds: int
    wf_seconds: float
    refit_seconds: float


class RegimeTrainer(NoExtras):
    """The regime classifier's stages for the spec list (``pipelines/models/specs.py``).

    BLAS threads fighting other processes on a small box made the logistic fit 60x slower;
    each stage runs with one BLAS thread (the models' own parallelism is ``cfg.n_jobs``).
    """

    def prepare(self, inputs: TrainInputs, cfg: RegimeConfig, streams: Streams) -> RegimeData:
        with threadpool_limits(limits=1, user_api="blas"):
            frame, source, prior_var = build_dataset(inputs.bars, inputs.features, cfg)
        # every purge and embargo counted in bars per symbol; one cut time across symbols
        outer = time_split_bars(frame, cfg.holdout_fraction, cfg.purge, cfg.embargo)
        if outer.later.size == 0 or outer.earlier.size == 0:
            raise NotTrainable("time split left an empty training or held-out span")
        inner = inner_split_bars(
            frame, outer.earlier, cfg.calibration_fraction, cfg.purge, cfg.embargo
        )
        fit_part, calib = frame.iloc[inner.earlier], frame.iloc[inner.later]
        holdout = frame.iloc[outer.later]
        if fit_part.empty or calib.empty:
            raise NotTrainable("not enough training history for a fit part and a calibration part")
        missing = sorted(set(range(len(REGIMES))) - set(fit_part["y"].unique()))
        if missing:
            raise NotTrainable(
                f"classes {[REGIMES[m] for m in missing]} never occur in the training span; "
                "use more history (every regime must be seen to export a 4-class model)"
            )
        logger.info(
            "regime data: %d rows (%s labels); fit %d, calibration %d, holdout %d",
            len(frame),
            source,
            len(fit_part),
            len(calib),
            len(holdout),
        )
        return RegimeData(
            frame,
            source,
            prior_var,
            inner.earlier,
            inner.later,
            outer.later,
            model_feature_columns(inputs.features.columns),
        )

    def fit(self, data: RegimeData, cfg: RegimeConfig, streams: Streams) -> RegimeFit:
        seed = streams.seed("candidates")
        contenders = [
            Contender(name, "candidate", partial(make_candidate, name, cfg, seed), "features")
            for name in cfg.candidates
        ] + [
            Contender("majority", "baseline", partial(make_baseline, "majority", cfg), "none"),
            Contender(
                "two_input_logistic",
                "baseline",
                partial(make_baseline, "two_input_logistic", cfg),
                "two_inputs",
            ),
            Contender(
                PERSISTENCE, "baseline", partial(make_baseline, PERSISTENCE, cfg), "known_label"
            ),
        ]
        with threadpool_limits(limits=1, user_api="blas"):
            t_wf = time.perf_counter()
            # selection folds on the fit part only: calibration rows never take part
            splits = walk_forward_bars(
                data.frame, cfg.n_folds, cfg.purge, cfg.embargo, rows=data.fit_rows
            )
            folds = [Fold(k + 1, s.earlier, s.later) for k, s in enumerate(splits)]
            if not folds:
                raise NotTrainable("no walk-forward fold fits in the fit part; use more history")
            table = walk_forward_compare(
                contenders,
                data.mats(data.frame),
                data.frame["y"].to_numpy(),
                folds,
                len(REGIMES),
                predict_proba_full,
            )
            summary = summarize(table)
            best = select_best(summary, cfg.selection_metric)
            wf_seconds = time.perf_counter() - t_wf
            logger.info(
                "walk-forward picked %s by %s (%.1fs)", best, cfg.selection_metric, wf_seconds
            )
            t_fit = time.perf_counter()
            by_name = {c.name: c for c in contenders}
            model = _fit(
                by_name[best].factory,
                data.mats(data.fit_part)["features"],
                data.fit_part["y"].to_numpy(),
            )
            refit_seconds = time.perf_counter() - t_fit
            conformal = SplitConformalClassifier(cfg.conformal_coverage, mondrian=True).fit(
                predict_proba_full(model, data.mats(data.calib)["features"], len(REGIMES)),
                data.calib["y"].to_numpy(),
            )
        return RegimeFit(
            best, model, by_name, table, summary, conformal, len(folds), wf_seconds, refit_seconds
        )

    def evaluate(
        self,
        data: RegimeData,
        fitted: RegimeFit,
        cfg: RegimeConfig,
        streams: Streams,
        out_dir: Path,
    ) -> Evaluation:
        with threadpool_limits(limits=1, user_api="blas"):
            return _evaluate(data, fitted, cfg, out_dir, streams.seed("bootstrap"))

    def importance_inputs(
        self, data: RegimeData, fitted: RegimeFit, cfg: RegimeConfig
    ) -> ImportanceInputs:
        """Held-out rows in the graph's columns; the loss is each row's log loss."""
        hold = data.holdout
        y = hold["y"].to_numpy(dtype=np.int64)
        return ImportanceInputs(
            x=data.mats(hold)["features"],
            groups=column_groups(data.feature_names),
            loss=lambda out, rows: row_log_loss(y[rows], out[1]),
            what="log loss per held-out bar",
            block=cfg.bootstrap_block,
            n_boot=cfg.n_bootstrap,
            level=cfg.ci_level,
        )

    def challenge(
        self,
        data: RegimeData,
        fitted: RegimeFit,
        cfg: RegimeConfig,
        streams: Streams,
        out_dir: Path,
        learned: OnnxExport,
        learned_gates: list[Gate],
        champion: Champion,
        parity_tolerance: float,
    ) -> ChampionDecision:
        """The slot's candidates (the learned classifier; persistence read from the features,
        fitted on the fit part) against the live champion (nothing live: the fit part's class
        frequencies), every one scored by each held-out bar's log loss of its graph's
        probabilities, paired, in nats: the regime gates' estimator
        (``pipelines/models/regime/rule.py``)."""
        hold = data.holdout
        order = np.lexsort((hold["ts"].to_numpy(), hold["symbol"].to_numpy()))
        hold = hold.iloc[order].reset_index(drop=True)
        x = data.mats(hold)["features"]
        y = hold["y"].to_numpy(dtype=np.int64)
        fit = data.fit_part
        rule = TrailingRule.for_horizon(
            cfg.label_horizon, cfg.label_trend_z, cfg.label_panic_vol_ratio
        )
        model = PersistenceRule(rule).fit(data.mats(fit)["features"], fit["y"], data.feature_names)
        rule_export = persistence_export(
            model, x, out_dir / "candidates" / f"{RULE_NAME}.onnx", cfg.onnx_opset
        )
        candidates = [
            Candidate(
                "classifier",
                "learned",
                learned,
                f"{fitted.best}, selected by walk-forward {cfg.selection_metric}",
            ),
            Candidate(RULE_NAME, "rule", rule_export, model.describe()),
        ]
        eligible = eligibility(candidates, learned_gates, parity_tolerance)
        values = {
            c.name: -row_log_loss(y, onnx_regime_probabilities(c.export.path, x))
            for c in candidates
        }
        champion, champ_proba = _champion_probabilities(champion, x, fit["y"].to_numpy())
        decision = challenge(
            hold["ts"],
            values,
            champion,
            -row_log_loss(y, champ_proba),
            candidates,
            eligible,
            cfg,
            streams.seed("champion"),
            scale=1.0,
            unit="nats",
            value_unit="nats, minus the log loss",
            parity_tolerance=parity_tolerance,
            min_lift=cfg.min_log_loss_lift,
            measure="log loss per held-out bar",
        )
        for k in range(len(REGIMES) + 1):
            name = REGIMES[k] if k < len(REGIMES) else "unknown"
            decision.metrics[f"champion/{RULE_NAME}/fit_rows/{name}"] = float(model.counts_[k])
        return decision

    def export(
        self, data: RegimeData, fitted: RegimeFit, cfg: RegimeConfig, out_dir: Path
    ) -> OnnxExport:
        path = export_onnx(
            fitted.model,
            out_dir / "regime.onnx",
            data.feature_names,
            REGIMES,
            opset=cfg.onnx_opset,
        )
        x = data.mats(data.holdout)["features"]
        got = onnx_probabilities(path, fitted.model, x)
        return OnnxExport.checked(path, got, fitted.model.predict_proba(x))


def _champion_probabilities(
    champion: Champion, x: np.ndarray, y_fit: np.ndarray
) -> tuple[Champion, np.ndarray]:
    """The live champion's probabilities per held-out row; the fallback's (the fit part's
    class frequencies: no regime, the unconditional mix) when nothing is live or the live
    graph cannot take today's inputs (the bot would run without a regime as well)."""
    fallback = prior_probabilities(y_fit, len(x))
    if champion.onnx_path is None:
        return champion, fallback
    try:
        return champion, onnx_regime_probabilities(champion.onnx_path, x)
    except Exception as exc:  # an old contract: the bot would run without a regime too
        logger.warning("regime: the live %s cannot be scored (%s): fallback", champion.label, exc)
        note = f"live {champion.label} does not take today's inputs ({exc})"
        return Champion("fallback", "fallback", note=note), fallback


#: Baselines on the held-out span; the gate is against the strongest of them.
BASELINE_NAMES: tuple[str, ...] = ("majority", "two_input_logistic", PERSISTENCE)


def row_log_loss(y: np.ndarray, proba: np.ndarray, eps: float = 1e-15) -> np.ndarray:
    """Each row's log loss, ``-log p(true class)`` (probabilities clipped at ``eps``)."""
    p = np.clip(np.asarray(proba, dtype=np.float64)[np.arange(len(y)), y], eps, 1.0)
    return np.asarray(-np.log(p))


def log_loss_lift(
    keys: pd.DataFrame,
    y: np.ndarray,
    proba: np.ndarray,
    baselines: dict[str, np.ndarray],
    best: str,
    cfg: RegimeConfig,
    seed: int,
) -> dict[str, float]:
    """Log-loss improvement of the model over the strongest baseline ``best`` (chosen on the
    training span's walk-forward folds, so the held-out rows do not pick the comparator), with
    a paired moving-block bootstrap CI on the test span and on the confirmation span
    (``pipelines.evaluation.spans``). Rows go to the bootstrap ordered by (symbol, ts), so a
    block keeps one symbol's serial dependence of regimes."""
    order = np.lexsort((keys["ts"].to_numpy(), keys["symbol"].to_numpy()))
    ts = pd.Series(keys["ts"].to_numpy()[order])
    mine = row_log_loss(y, proba)[order]
    losses = {name: row_log_loss(y, bp)[order] for name, bp in baselines.items()}
    cis = paired_span_cis(
        ts,
        losses[best],
        mine,
        mean_difference,
        block=cfg.bootstrap_block,
        n=cfg.n_bootstrap,
        level=cfg.ci_level,
        seed=seed,
        confirm_fraction=cfg.confirm_fraction,
    )
    out: dict[str, float] = {
        "baseline/best/index": float(list(BASELINE_NAMES).index(best)),
        "baseline/best/log_loss": float(losses[best].mean()),
    }
    put_span_intervals(out, "lift/log_loss_vs_best_baseline", cis)
    return out


def best_baseline(summary: pd.DataFrame) -> str:
    """The baseline with the lowest mean walk-forward log loss on the training span."""
    rows = summary.set_index("model").loc[list(BASELINE_NAMES)]
    return str(rows["log_loss_mean"].astype(float).idxmin())


def _evaluate(
    data: RegimeData, fitted: RegimeFit, cfg: RegimeConfig, out_dir: Path, seed: int
) -> Evaluation:
    """Held-out metrics of the selected model and the three baselines, the log-loss lift
    over the strongest, class-conditional conformal coverage, BOCD, reliability, plots."""
    n_classes = len(REGIMES)
    holdout, model, best = data.holdout, fitted.model, fitted.best
    m_fit, m_hold = data.mats(data.fit_part), data.mats(holdout)
    y_fit, y_hold = data.fit_part["y"].to_numpy(), holdout["y"].to_numpy()
    proba_hold = predict_proba_full(model, m_hold["features"], n_classes)
    held = classification_metrics(y_hold, proba_hold)
    report = fitted.conformal.evaluate(proba_hold, y_hold)
    curve = reliability_curve(proba_hold, y_hold)
    ece = expected_calibration_error(proba_hold, y_hold)

    metrics: dict[str, float] = {f"holdout/{k}": v for k, v in held.items()}
    metrics["holdout/ece"] = ece
    metrics["holdout/n_rows"] = float(len(holdout))
    metrics["train/bocd_prior_var"] = float(data.prior_var)  # for the bot's online BOCD
    pred_hold = proba_hold.argmax(axis=1)
    for c, name in enumerate(REGIMES):
        mask = y_hold == c
        metrics[f"holdout/recall/{name}"] = (
            float((pred_hold[mask] == c).mean()) if mask.any() else float("nan")
        )
        metrics[f"holdout/support/{name}"] = float(mask.sum())
    holdout_rows = [{"model": best, "kind": "selected", **held, "ece": ece}]
    base_probas: dict[str, np.ndarray] = {}
    for name in BASELINE_NAMES:
        spec = fitted.contenders[name]
        base_model = _fit(spec.factory, m_fit[spec.inputs], y_fit)
        bp = predict_proba_full(base_model, m_hold[spec.inputs], n_classes)
        base_probas[name] = bp
        bm = classification_metrics(y_hold, bp)
        metrics.update({f"baseline/{name}/{k}": v for k, v in bm.items()})
        holdout_rows.append(
            {"model": name, "kind": "baseline", **bm, "ece": expected_calibration_error(bp, y_hold)}
        )
    metrics.update(
        log_loss_lift(
            holdout[["symbol", "ts"]],
            y_hold,
            proba_hold,
            base_probas,
            best_baseline(fitted.summary),
            cfg,
            seed,
        )
    )
    for k, cov in fitted.conformal.class_coverage(proba_hold, y_hold).items():
        metrics[f"conformal/coverage/{REGIMES[k]}"] = cov
    metrics.update(
        {
            "conformal/target_coverage": report.target,
            "conformal/coverage": report.coverage,
            "conformal/mean_set_size": report.mean_set_size,
            "conformal/empty_fraction": report.empty_fraction,
            "conformal/qhat": report.qhat,
            "conformal/n_calibration": float(len(data.calib)),
            # sets below K - 1 classes on average say something; otherwise not claimed
            "conformal/informative": float(report.mean_set_size < n_classes - 1),
        }
    )
    for size in range(n_classes + 1):
        metrics[f"conformal/set_size_{size}_fraction"] = report.size_counts.get(size, 0) / report.n
    stream, states = conformal_stream_metrics(
        predict_proba_full(model, data.mats(data.calib)["features"], n_classes),
        data.calib["y"].to_numpy(),
        data.calib["ts"],
        proba_hold,
        y_hold,
        holdout["symbol"].to_numpy(),
        holdout["ts"],
        coverage=cfg.conformal_coverage,
        gamma=cfg.conformal_gamma,
        window=cfg.conformal_window,
        horizon=cfg.label_horizon,
        confirm_fraction=cfg.confirm_fraction,
        class_names=REGIMES,
    )
    metrics.update(stream)
    live = states[cfg.conformal_method]
    metrics["conformal/method/index"] = float(METHODS.index(cfg.conformal_method))
    for k, name in enumerate(REGIMES):
        # the state the stream ends in, for a consumer that continues it; a threshold of
        # +-inf is written as +-1 (the same sets: 1 - p lies in [0, 1])
        metrics[f"conformal/live/alpha/{name}"] = float(live.alphas[k])
        metrics[f"conformal/live/qhat/{name}"] = float(np.clip(live.thresholds[k], -1.0, 1.0))
    for _, row in fitted.summary.iterrows():
        for col in ("log_loss_mean", "balanced_accuracy_mean", "fit_seconds_mean"):
            metrics[f"walk_forward/{row['model']}/{col}"] = float(row[col])
    metrics.update(_bocd_metrics(data.frame, cfg))
    metrics["label/true_regime"] = 1.0 if data.source == "true_regime" else 0.0
    metrics["time/walk_forward_seconds"] = fitted.wf_seconds
    metrics["time/refit_seconds"] = fitted.refit_seconds

    artifacts: dict[str, Path] = {}
    artifacts["walk_forward"] = out_dir / "regime_walk_forward.csv"
    # wall-clock fit times stay in the metrics (time/..., MLflow): in the tables they would
    # make two runs of the same inputs write different reports
    fitted.table.drop(columns=["fit_seconds"]).to_csv(
        artifacts["walk_forward"], index=False, float_format="%.6f"
    )
    artifacts["comparison"] = out_dir / "regime_comparison.csv"
    fitted.summary.drop(columns=["fit_seconds_mean"]).assign(
        selected=fitted.summary["model"] == best
    ).to_csv(artifacts["comparison"], index=False, float_format="%.6f")
    artifacts["holdout"] = out_dir / "regime_holdout.csv"
    pd.DataFrame(holdout_rows).to_csv(artifacts["holdout"], index=False, float_format="%.6f")
    artifacts["reliability"] = out_dir / "regime_reliability.csv"
    curve.to_csv(artifacts["reliability"], index=False, float_format="%.6f")
    artifacts["calibration"] = plot_reliability(
        curve, ece, out_dir / "calibration.png", title=f"Regime ({best}) reliability"
    )
    first = holdout["symbol"].iloc[0]
    sym_mask = (holdout["symbol"] == first).to_numpy()
    sym = holdout[sym_mask]
    artifacts["regime_timeline"] = plot_regime_timeline(
        sym["ts"],
        sym["close"].to_numpy(),
        sym["y"].to_numpy(),
        proba_hold[sym_mask],
        sym["cp_prob"].to_numpy(),
        REGIMES,
        out_dir / "regime_timeline.png",
        reduce_threshold=cfg.bocd.reduce_threshold,
        exit_threshold=cfg.bocd.exit_threshold,
        truth_label="true regime" if data.source == "true_regime" else "rule label",
        title=f"{first}: held-out regimes, {best} prediction, BOCD",
    )
    feat_cols = list(data.feature_names)
    artifacts["export_meta"] = out_dir / "regime_export.json"
    artifacts["export_meta"].write_text(
        json.dumps(
            {
                "input": {"name": "features", "dtype": "float32", "shape": ["N", len(feat_cols)]},
                "outputs": list(OUTPUT_NAMES),
                "classes": list(REGIMES),
                "feature_names": feat_cols,
                "selected_model": best,
                "conformal_qhat": report.qhat,
                "conformal_class_qhat": [
                    q if np.isfinite(q) else None for q in fitted.conformal.class_qhat_.tolist()
                ],
                "conformal_rule": "class-conditional (Mondrian): class k in set iff "
                "1 - probabilities[k] <= conformal_class_qhat[k] (null: always in the set)",
                # sets averaging K - 1 or more classes say nothing: not claimed then
                "conformal_claimed": bool(report.mean_set_size < n_classes - 1),
                "conformal_online": {
                    "method": cfg.conformal_method,
                    "label_horizon": cfg.label_horizon,
                    "rule": "class k in set iff 1 - probabilities[k] <= thresholds[k]; when the "
                    "label y of bar t is known (bar t + label_horizon), "
                    "alphas[y] += gamma * (1 - coverage - missed) and, with a window, the "
                    "score 1 - p_t[y] joins pools[y] (oldest out); thresholds[y] is the "
                    "ceil((n + 1) (1 - alphas[y]))-th smallest score of pools[y] "
                    "(pipelines.models.regime.conformal.OnlineConformal)",
                    **live.to_dict(),
                },
                "opset": cfg.onnx_opset,
            },
            indent=2,
            sort_keys=True,
        ),
        encoding="utf-8",
    )
    params: dict[str, Any] = {
        "selected_model": best,
        "selection_metric": cfg.selection_metric,
        "label_source": data.source,
        "classes": list(REGIMES),
        "feature_names": feat_cols,
        "conformal_qhat": report.qhat,
        "conformal_coverage_target": cfg.conformal_coverage,
        "conformal_method": cfg.conformal_method,
        "n_folds": fitted.n_folds,
        "purge_bars": cfg.purge,
        "embargo_bars": cfg.embargo,
        "bocd_prior_var": data.prior_var,
    }
    logger.info(
        "regime %s: balanced_accuracy=%.3f coverage=%.3f",
        best,
        held["balanced_accuracy"],
        report.coverage,
    )
    return Evaluation(metrics, artifacts, params)
