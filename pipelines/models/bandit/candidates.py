"""The bandit slot's rule candidates and how any policy of the slot is scored.

Two rules: the best single arm on the training span (:class:`ConstantArm`) and the best arm
per *rule regime* (:class:`RegimeArmRule`, exported as :class:`RegimeArm`): a cell read from
three of the row's own features, each compared with 0, and the arm with the best mean net
reward in that cell on the training span.

Every policy of the slot is an ONNX graph with the slot's contract (``features`` [N, 43] ->
``arm_values`` [N, 12]; the bot trades the argmax), so the bot cannot tell a rule from the
learned network. Scoring is the same for all of them, the live champion included: run the
graph on the held-out features, take the argmax, and read that arm's net reward from the
bars (every arm's reward is known there, so the value is exact, not an off-policy estimate).
The exploration the engine adds around the argmax is the same for every policy, so the
greedy value ranks them as the bot would see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipelines.export.onnx import OnnxExport, make_session, run
from pipelines.models.bandit.export import export_onnx
from pipelines.strategies import ARM_NAMES, N_ARMS


class ConstantArm(nn.Module):
    """A rule policy: the same arm on every bar (value 1 for it, 0 for the others)."""

    def __init__(self, arm: int, n_arms: int = N_ARMS) -> None:
        super().__init__()
        if not 0 <= arm < n_arms:
            raise ValueError(f"arm must be in [0, {n_arms}), got {arm}")
        self.values: torch.Tensor
        self.register_buffer("values", torch.eye(n_arms, dtype=torch.float32)[arm : arm + 1])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # the features' first column times 0 gives the batch axis (NaN never reaches here:
        # the bot's features are finite after warm-up, and held-out rows are complete)
        return features[:, :1] * 0.0 + self.values


def constant_arm_export(arm: int, x: np.ndarray, path: Path, opset: int) -> OnnxExport:
    """The constant-arm rule as ONNX, checked against its own torch output on ``x``."""
    module = ConstantArm(arm).eval()
    export_onnx(module, x.shape[1], path, opset)
    with torch.no_grad():
        want = module(torch.from_numpy(np.array(x, dtype=np.float32))).numpy()
    (got,) = run(make_session(path), x)
    return OnnxExport.checked(path, got, want)


#: The rule regime: each question is one of the 43 features compared with 0, a threshold fixed
#: by the feature's meaning (a log ratio or a correlation), so nothing is fitted but the arm
#: table. Bit j of a row's cell is question j's answer: 2**3 = 8 cells.
REGIME_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("ema_spread_50_200", "uptrend: log(EMA 50 / EMA 200) > 0"),
    ("rv_ratio_24_200", "turbulent: log(24-bar vol / 200-bar vol) > 0"),
    ("autocorr_48", "persistent: 48-bar return autocorrelation > 0"),
)
#: The questions' feature names, bit 0 first.
QUESTION_FEATURES: tuple[str, ...] = tuple(name for name, _ in REGIME_QUESTIONS)
#: Fewest training rows a cell needs to get its own arm; a thinner cell trades the overall
#: best arm. Consecutive decisions share ``reward_horizon - 1`` (5) of their 6 reward bars,
#: so 500 rows are about 80 independent rewards; at ~185 bps of noise per 6-bar reward that
#: puts a cell mean's standard error near 20 bps, the size of the regime effects the arms
#: differ by. Below it the per-cell argmax over 12 arms mostly picks noise.
MIN_CELL_ROWS = 500


def rule_cells(x: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """Each row's rule cell, ``sum_j 2**j [x[:, columns[j]] > 0]``, on float32 values.

    Read on float32 (the bot's input type), so the numpy rule and its ONNX agree on a value
    that is positive in float64 but rounds to 0; a NaN answers "no" in both. Only the row's
    own columns are read: a row's cell cannot depend on another row."""
    x32 = np.asarray(x, dtype=np.float32)
    bits = x32[:, list(columns)] > 0
    return np.asarray(bits @ (1 << np.arange(len(columns))), dtype=np.int64)


class RegimeArmRule:
    """The best arm per rule regime (:data:`REGIME_QUESTIONS`), chosen on the training span.

    Parameters
    ----------
    questions : feature names, each asked ``> 0``; bit j of the cell is question j.
    min_rows : fewest training rows a cell needs to get its own arm (:data:`MIN_CELL_ROWS`);
        a thinner cell gets the overall best arm.

    Learned state (after :meth:`fit`): ``columns_`` (the questions' column indices),
    ``arms_`` [2**len(questions)] (each cell's arm), ``counts_`` (training rows per cell),
    ``overall_arm_`` (the best single arm, the thin cells' arm).
    """

    def __init__(
        self,
        questions: Sequence[str] = QUESTION_FEATURES,
        min_rows: int = MIN_CELL_ROWS,
    ) -> None:
        self.questions = tuple(questions)
        self.min_rows = min_rows

    def fit(
        self, x: np.ndarray, rewards: np.ndarray, feature_names: Sequence[str]
    ) -> RegimeArmRule:
        """Pick each cell's arm on the training rows.

        ``x`` [N, F] are the training rows' features (columns ``feature_names``), ``rewards``
        [N, 12] every arm's exact net reward on them. Each cell's arm is the argmax of its
        rows' mean reward (ties to the lowest arm); a cell with fewer than ``min_rows`` rows
        gets the argmax over all rows."""
        if not self.questions:
            raise ValueError("the rule needs at least one question")
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be >= 1, got {self.min_rows}")
        missing = [q for q in self.questions if q not in feature_names]
        if missing:
            raise ValueError(f"the rule's features {missing} are not among the inputs")
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.ndim != 2 or len(rewards) != len(x) or len(x) == 0:
            raise ValueError(f"rewards {rewards.shape} must be [{len(x)}, n_arms], N > 0")
        names = list(feature_names)
        self.columns_ = tuple(names.index(q) for q in self.questions)
        cells = rule_cells(x, self.columns_)
        n_cells = 1 << len(self.questions)
        self.overall_arm_ = int(np.argmax(rewards.mean(axis=0)))
        self.counts_ = np.bincount(cells, minlength=n_cells)
        arms = np.full(n_cells, self.overall_arm_, dtype=np.int64)
        for cell in range(n_cells):
            if self.counts_[cell] >= self.min_rows:
                arms[cell] = int(np.argmax(rewards[cells == cell].mean(axis=0)))
        self.arms_ = arms
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The arm the rule trades on each row of ``x`` [N, F]."""
        if not hasattr(self, "arms_"):
            raise RuntimeError("RegimeArmRule is not fitted")
        return np.asarray(self.arms_[rule_cells(x, self.columns_)], dtype=np.int64)

    def values(self, x: np.ndarray, n_arms: int = N_ARMS) -> np.ndarray:
        """The slot's output for ``x``: 1 for the chosen arm, 0 for the others, [N, n_arms]."""
        return np.eye(n_arms, dtype=np.float32)[self.predict(x)]

    def describe(self) -> str:
        """The table in words, for the candidate's description and the report."""
        own = int(np.sum(self.counts_ >= self.min_rows))
        order = " ".join(reversed(self.questions))  # bit j is question j: printed last first
        cells = ", ".join(
            f"{cell:0{len(self.questions)}b}:{ARM_NAMES[arm]}"
            for cell, arm in enumerate(self.arms_)
        )
        return (
            f"the best arm per rule regime on the training span (cells: {order} each > 0; "
            f"{own} of {len(self.arms_)} cells with >= {self.min_rows} training rows, thinner "
            f"ones {ARM_NAMES[self.overall_arm_]}; {cells})"
        )


class RegimeArm(nn.Module):
    """:class:`RegimeArmRule` as a graph: gather the questions' columns, compare with 0, weigh
    the bits into a cell index, one-hot it and read the cell's arm row of the table."""

    def __init__(self, columns: Sequence[int], arms: Sequence[int], n_arms: int = N_ARMS) -> None:
        super().__init__()
        if len(arms) != 1 << len(columns):
            raise ValueError(f"{len(columns)} questions need {1 << len(columns)} cell arms")
        if any(not 0 <= a < n_arms for a in arms):
            raise ValueError(f"every arm must be in [0, {n_arms})")
        self.columns: torch.Tensor
        self.weights: torch.Tensor
        self.cells: torch.Tensor
        self.table: torch.Tensor
        self.register_buffer("columns", torch.tensor(list(columns), dtype=torch.int64))
        weights = [float(1 << j) for j in range(len(columns))]
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))
        self.register_buffer("cells", torch.arange(len(arms), dtype=torch.float32))
        self.register_buffer("table", torch.eye(n_arms, dtype=torch.float32)[list(arms)])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        bits = (features.index_select(1, self.columns) > 0).to(torch.float32)
        cell = bits @ self.weights  # small integers, exact in float32
        one_hot = (cell.unsqueeze(1) == self.cells).to(torch.float32)
        return one_hot @ self.table


def regime_arm_export(rule: RegimeArmRule, x: np.ndarray, path: Path, opset: int) -> OnnxExport:
    """The rule-regime candidate as ONNX, checked against the numpy rule's output on ``x``."""
    module = RegimeArm(rule.columns_, rule.arms_.tolist()).eval()
    export_onnx(module, x.shape[1], path, opset)
    (got,) = run(make_session(path), x)
    return OnnxExport.checked(path, got, rule.values(x))


def arm_choices(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    """The arm a slot policy trades on each row: argmax of its values, ties to the lowest."""
    (values,) = run(make_session(onnx_path), x)
    values = np.asarray(values)
    if values.shape != (len(x), N_ARMS):
        raise ValueError(
            f"{onnx_path.name}: arm_values must be [{len(x)}, {N_ARMS}], got {values.shape}"
        )
    return np.asarray(np.argmax(values, axis=1), dtype=np.int64)


def chosen_rewards(arms: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """Each decision's exact net reward: the reward of the arm the policy chose."""
    return np.asarray(rewards[np.arange(len(arms)), arms], dtype=np.float64)


def arm_name(arm: int) -> str:
    return ARM_NAMES[arm]
