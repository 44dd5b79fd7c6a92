"""The regime slot's rule candidate (persistence read from the features) and how any policy of
the slot is scored.

Persistence says "the regime of the last ``h`` bars goes on". The persistence *baseline* of the
regime gates reads the forward rule's label of bar ``t - h`` (``persistence_inputs``), whose
reference vol is a 720-bar robust median no feature carries, so no graph over the bot's
features can compute it. The rule candidate asks the same question of the features the bot
already has: the forward rule of ``labels.rule_labels_1d`` turned round to look back over the
last ``w`` bars, with the 200-bar realized vol as the reference vol:

* ``PANIC``      if ``rv_v > panic_vol_ratio * rv_200`` (checked first, as the rule does),
* ``TREND_UP``   elif ``ret_w >  trend_z * sqrt(w) * rv_200``,
* ``TREND_DOWN`` elif ``ret_w < -trend_z * sqrt(w) * rv_200``,
* ``RANGE``      otherwise; *unknown* when one of the three is not finite or ``rv_200 <= 0``,

with ``ret_w`` the return feature and ``rv_v`` the realized-vol feature whose windows are
nearest the label horizon (``ret_24`` and ``rv_24`` at the default ``h = 24``). That trailing
label is the input of a :class:`PersistenceClassifier` fitted on the fit span, so the
candidate's probabilities are the smoothed row of the trailing-label -> regime table (the class
prior for an unknown row): calibrated, never a one-hot with an infinite log loss.

Every policy of the slot is an ONNX graph with the regime contract (``features`` float32
[N, 43 + extras] -> ``label`` int64 [N], ``probabilities`` float32 [N, 4] in ``REGIMES``
order), so the bot runs the rule exactly as it runs the learned classifier. Scoring is the
same for all of them, the live champion included: each held-out bar's log loss of the graph's
probabilities against the bar's regime, paired with the champion's on the same bars. The
champion when nothing is live is the bot's fallback, which has no regime (``null``): the bot
and the recommendation then act on the unconditional mix of regimes (family-level values), so
it is scored as the fit span's class frequencies. Scoring it as uniform would credit any
candidate with merely knowing the base rates (a model fitted on shuffled labels would beat it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from onnx import TensorProto, helper, numpy_helper

from pipelines.data.schema import REGIMES
from pipelines.export.onnx import OnnxExport, make_session, run, write_canonical
from pipelines.models.regime.candidates import PersistenceClassifier
from pipelines.models.regime.export import INPUT_NAME, OUTPUT_NAMES
from pipelines.models.regime.labels import PANIC, RANGE, TREND_DOWN, TREND_UP

#: Windows of the return features the rule may read (``ret_<w>``, docs/features.md).
RETURN_WINDOWS: tuple[int, ...] = (1, 6, 24, 72, 168)
#: Windows of the realized-vol features it may read (``rv_200`` is the reference).
VOL_WINDOWS: tuple[int, ...] = (24, 72)
#: The reference vol: the longest realized-vol feature, the symbol's normal level.
REFERENCE_VOL = "rv_200"
#: The trailing label of a row the rule cannot read (its probabilities: the class prior).
UNKNOWN = len(REGIMES)
RULE_NAME = "persistence"


def _nearest(windows: Sequence[int], horizon: int) -> int:
    """The window nearest ``horizon`` (the shorter one on a tie)."""
    return min(windows, key=lambda w: (abs(w - horizon), w))


@dataclass(frozen=True)
class TrailingRule:
    """The trailing label's columns and thresholds (see the module docstring)."""

    return_feature: str
    vol_feature: str
    window: int
    trend_z: float
    panic_vol_ratio: float

    @classmethod
    def for_horizon(cls, horizon: int, trend_z: float, panic_vol_ratio: float) -> TrailingRule:
        """The rule for label horizon ``horizon``: the feature windows nearest it."""
        if horizon < 1 or trend_z <= 0 or panic_vol_ratio <= 1:
            raise ValueError("horizon must be >= 1, trend_z > 0 and panic_vol_ratio > 1")
        w = _nearest(RETURN_WINDOWS, horizon)
        return cls(f"ret_{w}", f"rv_{_nearest(VOL_WINDOWS, horizon)}", w, trend_z, panic_vol_ratio)

    @property
    def band(self) -> np.float32:
        """``trend_z * sqrt(w)``, the trend band in units of the reference vol (float32)."""
        return np.float32(self.trend_z * math.sqrt(self.window))

    @property
    def ratio(self) -> np.float32:
        return np.float32(self.panic_vol_ratio)

    def columns(self, feature_names: Sequence[str]) -> tuple[int, int, int]:
        """Indices of (return, vol, reference vol) among ``feature_names``."""
        names = list(feature_names)
        wanted = (self.return_feature, self.vol_feature, REFERENCE_VOL)
        missing = [c for c in wanted if c not in names]
        if missing:
            raise ValueError(f"the rule's features {missing} are not among the inputs")
        ret, vol, ref = (names.index(c) for c in wanted)
        return ret, vol, ref

    def describe(self) -> str:
        return (
            f"PANIC if {self.vol_feature} > {self.panic_vol_ratio:g} x {REFERENCE_VOL}, else "
            f"TREND_UP/DOWN if |{self.return_feature}| > {self.trend_z:g} x sqrt({self.window}) "
            f"x {REFERENCE_VOL}, else RANGE"
        )


def trailing_labels(
    x: npt.ArrayLike, rule: TrailingRule, feature_names: Sequence[str]
) -> npt.NDArray[np.int64]:
    """[N] each row's trailing label (``UNKNOWN`` where the rule cannot read it).

    Computed on float32 values with float32 thresholds, the operations the graph runs, so
    the numpy rule and its ONNX agree on a value at a threshold's edge."""
    x32 = np.asarray(x, dtype=np.float32)
    i_ret, i_vol, i_ref = rule.columns(feature_names)
    ret, vol, ref = x32[:, i_ret], x32[:, i_vol], x32[:, i_ref]
    with np.errstate(invalid="ignore", over="ignore"):
        band = rule.band * ref
        panic = vol > rule.ratio * ref
        up, down = ret > band, ret < -band
    label = np.full(len(x32), RANGE, dtype=np.int64)
    label[down] = TREND_DOWN
    label[up] = TREND_UP
    label[panic] = PANIC
    known = np.isfinite(ret) & np.isfinite(vol) & np.isfinite(ref) & (ref > 0)
    label[~known] = UNKNOWN
    return label


class PersistenceRule:
    """The rule candidate: the trailing label, then the fitted trailing-label -> regime table.

    Parameters
    ----------
    rule : which features and thresholds give the trailing label.
    alpha : the Laplace pseudo-count of the :class:`PersistenceClassifier` table.

    Learned state (after :meth:`fit`): ``feature_names_`` (the graph's input columns),
    ``table_`` float32 [5, 4] (the four trailing labels' rows, then the prior for an unknown
    row), ``counts_`` [5] (fit rows per trailing label).
    """

    def __init__(self, rule: TrailingRule, alpha: float = 1.0) -> None:
        self.rule = rule
        self.alpha = alpha

    def fit(
        self, x: npt.ArrayLike, y: npt.ArrayLike, feature_names: Sequence[str]
    ) -> PersistenceRule:
        """Fit the table on the fit span's rows ``x`` [N, F] and regimes ``y`` [N]."""
        self.feature_names_ = tuple(feature_names)
        lab = trailing_labels(x, self.rule, self.feature_names_)
        lagged = np.where(lab == UNKNOWN, -1, lab).reshape(-1, 1)
        model = PersistenceClassifier(n_classes=len(REGIMES), alpha=self.alpha).fit(lagged, y)
        self.table_ = np.vstack([model.transition_, model.prior_]).astype(np.float32)
        self.counts_ = np.bincount(lab, minlength=UNKNOWN + 1)
        return self

    def predict_proba(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """[N, 4] float32: the table row of each row's trailing label."""
        if not hasattr(self, "table_"):
            raise RuntimeError("PersistenceRule is not fitted; call fit() first")
        return np.asarray(self.table_[trailing_labels(x, self.rule, self.feature_names_)])

    def predict(self, x: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """[N] the most likely regime (ties to the lowest class, as the graph's ArgMax)."""
        return np.asarray(np.argmax(self.predict_proba(x), axis=1), dtype=np.int64)

    def describe(self) -> str:
        """The rule and its table's diagonal in words, for the candidate and the report."""
        stay = ", ".join(
            f"{REGIMES[k]} {self.table_[k, k]:.2f} ({self.counts_[k]} rows)"
            for k in range(len(REGIMES))
        )
        return f"trailing regime ({self.rule.describe()}) persists; P(same regime): {stay}"


def persistence_export(
    model: PersistenceRule, x: npt.NDArray[np.float32], path: Path, opset: int
) -> OnnxExport:
    """The rule as ONNX (the regime contract), checked on ``x`` against its numpy output:
    the probabilities' max abs diff is the recorded parity, and a label that is not the numpy
    argmax is refused outright."""
    names = model.feature_names_
    width = len(names)
    if x.shape[1] != width:
        raise ValueError(f"x has {x.shape[1]} columns, the graph takes {width}")
    i_ret, i_vol, i_ref = model.rule.columns(names)
    f32 = np.float32
    consts: dict[str, np.ndarray] = {
        "pr_i_ret": np.array(i_ret, np.int64),
        "pr_i_vol": np.array(i_vol, np.int64),
        "pr_i_ref": np.array(i_ref, np.int64),
        "pr_band": np.array(model.rule.band, f32),
        "pr_ratio": np.array(model.rule.ratio, f32),
        "pr_zero": np.array(0.0, f32),
        "pr_up": np.array(TREND_UP, np.int64),
        "pr_down": np.array(TREND_DOWN, np.int64),
        "pr_range": np.array(RANGE, np.int64),
        "pr_panic": np.array(PANIC, np.int64),
        "pr_unknown": np.array(UNKNOWN, np.int64),
        "pr_table": model.table_,
    }
    node = helper.make_node
    nodes = [
        node("Gather", [INPUT_NAME, "pr_i_ret"], ["ret"], axis=1),
        node("Gather", [INPUT_NAME, "pr_i_vol"], ["vol"], axis=1),
        node("Gather", [INPUT_NAME, "pr_i_ref"], ["ref"], axis=1),
        node("Mul", ["pr_band", "ref"], ["band"]),
        node("Neg", ["band"], ["nband"]),
        node("Mul", ["pr_ratio", "ref"], ["panic_vol"]),
        node("Greater", ["ret", "band"], ["is_up"]),
        node("Less", ["ret", "nband"], ["is_down"]),
        node("Greater", ["vol", "panic_vol"], ["is_panic"]),
        node("Where", ["is_down", "pr_down", "pr_range"], ["lab_down"]),
        node("Where", ["is_up", "pr_up", "lab_down"], ["lab_up"]),
        node("Where", ["is_panic", "pr_panic", "lab_up"], ["lab"]),
        # finite: 0 * v is 0 for a finite v and NaN for NaN or +-inf
        node("Mul", ["ret", "pr_zero"], ["z_ret"]),
        node("Mul", ["vol", "pr_zero"], ["z_vol"]),
        node("Mul", ["ref", "pr_zero"], ["z_ref"]),
        node("Add", ["z_ret", "z_vol"], ["z_2"]),
        node("Add", ["z_2", "z_ref"], ["z_3"]),
        node("Equal", ["z_3", "pr_zero"], ["finite"]),
        node("Greater", ["ref", "pr_zero"], ["ref_pos"]),
        node("And", ["finite", "ref_pos"], ["known"]),
        node("Where", ["known", "lab", "pr_unknown"], ["row"]),
        node("Gather", ["pr_table", "row"], [OUTPUT_NAMES[1]], axis=0),
        node("ArgMax", [OUTPUT_NAMES[1]], [OUTPUT_NAMES[0]], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "regime",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", width])],
        [
            helper.make_tensor_value_info(OUTPUT_NAMES[0], TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info(OUTPUT_NAMES[1], TensorProto.FLOAT, ["N", len(REGIMES)]),
        ],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8  # what onnxruntime of every supported version loads
    metadata = {
        "class_names": json.dumps(list(REGIMES)),
        "feature_names": json.dumps(list(names)),
        "model": "regime",
        "candidate": RULE_NAME,
        "rule": model.rule.describe(),
    }
    write_canonical(proto, path, "regime", metadata)
    label, proba = make_session(path).run(list(OUTPUT_NAMES), {INPUT_NAME: x})
    want = model.predict_proba(x)
    if not np.array_equal(np.asarray(label), model.predict(x)):
        raise ValueError(f"{path.name}: the graph's label is not the rule's argmax")
    return OnnxExport.checked(path, proba, want)


def onnx_regime_probabilities(path: Path, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """A regime graph's ``probabilities`` [N, 4] for rows ``x``, as the bot reads them (the
    output named ``probabilities``, else the last), checked against the slot's contract."""
    session = make_session(path)
    names = [o.name for o in session.get_outputs()]
    at = names.index(OUTPUT_NAMES[1]) if OUTPUT_NAMES[1] in names else len(names) - 1
    p = np.asarray(run(session, x)[at], dtype=np.float64)
    if p.shape != (len(x), len(REGIMES)) or not np.all(np.isfinite(p)):
        raise ValueError(f"{path.name}: expected [{len(x)}, {len(REGIMES)}], got {p.shape}")
    return p


def prior_probabilities(y_fit: npt.ArrayLike, n_rows: int) -> npt.NDArray[np.float64]:
    """The fallback's forecast on ``n_rows`` bars: the fit span's class frequencies."""
    y = np.asarray(y_fit, dtype=np.int64)
    if y.size == 0:
        raise ValueError("no fit rows to take class frequencies from")
    freq = np.bincount(y, minlength=len(REGIMES)) / y.size
    return np.tile(freq, (n_rows, 1))
