"""The meta-labeler slot's rule candidate and how any policy of the slot is scored.

Every policy of the slot is an ONNX graph with the meta-labeler's contract (``features``
[N, 43 + 12]: the features, then the one-hot arm -> ``win_probability`` [N, 1]), so the bot
runs a rule exactly as it runs the learned model. The rule is the per-arm filter: keep the
trades of the arms whose mean net P&L per trade on the fit span is above zero, drop the
others; its graph outputs 1.0 for a kept arm and 0.0 for a dropped one, so the bot's own
threshold (``EngineConfig.metalabel_threshold``, 0.5) applies unchanged. Net P&L per trade
rather than win rate: the P&L is what the bot earns, and a win rate says nothing about the
size of the wins against the costs. An arm with no fit-span trade is kept: there is no
evidence to drop it, and keeping is what the bot does with no filter live.

Scoring is the same for every policy, the live champion included: run the graph on the
held-out trades, threshold it as the bot does, and read each trade's exact net P&L from the
bars: all of it when the trade is kept, ``VETO_MULTIPLIER`` of it when it is vetoed (the bot
sizes a vetoed trade at its minimum multiplier, it does not skip it). The champion when
nothing is live is the bot's fallback for the slot: no filter, every trade at full size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from onnx import TensorProto, helper, numpy_helper

from pipelines.export.onnx import OnnxExport, make_session, run, write_canonical
from pipelines.models.metalabel.export import INPUT_COLUMNS, INPUT_NAME, OUTPUT_NAME
from pipelines.strategies import ARM_NAMES, N_ARMS

#: The bot's P(win) threshold (``EngineConfig.metalabel_threshold``): below it a trade is vetoed.
VETO_THRESHOLD = 0.5
#: What a vetoed trade is sized at (``EngineConfig.min_multiplier``): its share of the P&L.
VETO_MULTIPLIER = 0.1


def per_arm_keep(fit: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """[N_ARMS] whether each arm's mean net P&L per trade on ``fit`` is above zero (an arm
    with no trade there is kept: nothing says it loses)."""
    arm = fit["arm"].to_numpy(dtype=np.int64)
    reward = fit["reward"].to_numpy(dtype=np.float64)
    n = np.bincount(arm, minlength=N_ARMS)
    total = np.bincount(arm, weights=reward, minlength=N_ARMS)
    mean = np.divide(total, n, out=np.zeros(N_ARMS), where=n > 0)
    return np.asarray((n == 0) | (mean > 0), dtype=bool)


def per_arm_probability(x: npt.ArrayLike, keep: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The rule in numpy: 1.0 for a row whose one-hot arm is kept, 0.0 otherwise."""
    onehot = np.asarray(x, dtype=np.float64)[:, -N_ARMS:]  # the last columns, any feature set
    return np.asarray(onehot @ np.asarray(keep, dtype=np.float64), dtype=np.float64)


def per_arm_filter_export(
    keep: npt.ArrayLike,
    x: npt.NDArray[np.float32],
    path: Path,
    opset: int,
    columns: Sequence[str] = INPUT_COLUMNS,
) -> OnnxExport:
    """The per-arm filter as ONNX (the meta-labeler's input and output), checked on ``x``
    against :func:`per_arm_probability`. Only the one-hot columns are read (Gather), so a
    non-finite feature cannot reach the output. The graph's width and column names are
    ``x``'s and ``columns``' (the meta-labeler's :func:`input_columns`)."""
    k = np.asarray(keep, dtype=bool)
    if k.shape != (N_ARMS,):
        raise ValueError(f"keep must be [{N_ARMS}], got {k.shape}")
    width = len(columns)
    if x.shape[1] != width:
        raise ValueError(f"x has {x.shape[1]} columns, the graph takes {width}")
    inits = [
        numpy_helper.from_array(np.arange(width - N_ARMS, width, dtype=np.int64), "pa_arm_cols"),
        numpy_helper.from_array(k.astype(np.float32).reshape(N_ARMS, 1), "pa_keep"),
    ]
    nodes = [
        helper.make_node("Gather", [INPUT_NAME, "pa_arm_cols"], ["pa_onehot"], axis=1),
        helper.make_node("MatMul", ["pa_onehot", "pa_keep"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "per_arm_filter",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8  # what onnxruntime of every supported version loads
    metadata = {
        "input_columns": json.dumps(list(columns)),
        "arm_names": json.dumps(list(ARM_NAMES)),
        "kept_arms": json.dumps([a for a, kept in zip(ARM_NAMES, k, strict=True) if kept]),
        "threshold": json.dumps(VETO_THRESHOLD),
        "model": "metalabel",
        "candidate": "per_arm_filter",
    }
    write_canonical(proto, path, "metalabel", metadata)
    (got,) = run(make_session(path), x)
    return OnnxExport.checked(path, np.asarray(got).reshape(-1), per_arm_probability(x, k))


def onnx_keep(path: Path, x: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    """Whether the bot keeps each trade under a slot graph: P(win) >= the bot's threshold
    (output ``win_probability`` [N, 1], or [N, 2] with P(win) last, as the engine reads it)."""
    outs = run(make_session(path), x)
    p = np.asarray(outs[-1], dtype=np.float64)
    if p.ndim == 2 and p.shape[1] in (1, 2):
        p = p[:, -1]
    if p.shape != (len(x),) or not np.all(np.isfinite(p)):
        raise ValueError(f"{path.name}: expected {len(x)} finite P(win), got shape {p.shape}")
    return np.asarray(p >= VETO_THRESHOLD, dtype=bool)


def trade_values(reward: npt.ArrayLike, keep: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Each trade's exact net P&L under a filter: all of it kept, ``VETO_MULTIPLIER`` vetoed."""
    r = np.asarray(reward, dtype=np.float64)
    k = np.asarray(keep, dtype=bool)
    return np.where(k, r, VETO_MULTIPLIER * r)
