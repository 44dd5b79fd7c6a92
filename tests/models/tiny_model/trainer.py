"""A ridge forecast of the next bar's return from the 43 features: the smallest model that
still has every stage a real one has (time split, fit, held-out evaluation against a
baseline, a gate, an ONNX export checked for parity)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.evaluation.gates import Gate, check
from pipelines.export.onnx import OnnxExport, make_session, run, write_canonical
from pipelines.features import FEATURE_NAMES
from pipelines.models.base import Evaluation, NoExtras, NotTrainable, TrainInputs
from pipelines.models.common import time_split
from pipelines.seeding import Streams

INPUT_NAME, OUTPUT_NAME = "features", "forecast"


@dataclass(frozen=True)
class TinyConfig:
    """The model's settings; ``Settings`` has no section for it, so the spec's
    ``default_config`` makes them."""

    holdout_fraction: float = 0.3
    ridge: float = 10.0
    mse_tolerance: float = 0.0
    onnx_opset: int = 17


@dataclass(frozen=True)
class TinyData:
    train: pd.DataFrame
    hold: pd.DataFrame


@dataclass(frozen=True)
class TinyFit:
    weights: np.ndarray  # per feature, on the raw (unscaled) features
    bias: float


def next_return(bars: pd.DataFrame) -> pd.DataFrame:
    """``ts, symbol, target``: each bar's next close over its close, minus one."""
    close = bars.groupby("symbol", sort=False)["close"]
    target = close.shift(-1) / bars["close"] - 1.0
    return bars[["ts", "symbol"]].assign(target=target)


def tiny_gates(metrics: Mapping[str, float], cfg: TinyConfig) -> list[Gate]:
    """Held-out MSE no worse than the zero forecast's, within ``mse_tolerance``."""
    return [
        check(
            "mse_vs_zero",
            metrics.get("lift/mse_vs_zero", float("nan")),
            -cfg.mse_tolerance,
            ">=",
            description="held-out MSE of the zero forecast - the model's",
        )
    ]


class TinyTrainer(NoExtras):
    """The four stages of :class:`pipelines.models.base.Trainer`."""

    def prepare(self, inputs: TrainInputs, cfg: TinyConfig, streams: Streams) -> TinyData:
        frame = inputs.features.merge(next_return(inputs.bars), on=["ts", "symbol"])
        frame = frame.dropna(subset=["target"]).sort_values(["ts", "symbol"])
        if len(frame) < 100:
            raise NotTrainable(f"{len(frame)} labelled rows, needs 100")
        train, hold = time_split(frame, cfg.holdout_fraction)
        return TinyData(train, hold)

    def fit(self, data: TinyData, cfg: TinyConfig, streams: Streams) -> TinyFit:
        x = data.train[list(FEATURE_NAMES)].to_numpy(np.float64)
        y = data.train["target"].to_numpy(np.float64)
        mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-12
        z = (x - mu) / sd
        w = np.linalg.solve(z.T @ z + cfg.ridge * np.eye(z.shape[1]), z.T @ (y - y.mean()))
        return TinyFit(w / sd, float(y.mean() - (mu / sd) @ w))

    def evaluate(
        self, data: TinyData, fitted: TinyFit, cfg: TinyConfig, streams: Streams, out_dir: Path
    ) -> Evaluation:
        y = data.hold["target"].to_numpy(np.float64)
        pred = self.predict(fitted, data.hold)
        mse, zero = float(np.mean((y - pred) ** 2)), float(np.mean(y**2))
        table = out_dir / "holdout.csv"
        pd.DataFrame({"model": ["ridge", "zero"], "mse": [mse, zero]}).to_csv(table, index=False)
        metrics = {
            "holdout/mse": mse,
            "baseline/zero/mse": zero,
            "lift/mse_vs_zero": zero - mse,
        }
        return Evaluation(metrics, {"holdout_table": table}, {"ridge": cfg.ridge})

    def export(self, data: TinyData, fitted: TinyFit, cfg: TinyConfig, out_dir: Path) -> OnnxExport:
        from onnx import TensorProto, helper, numpy_helper

        w = numpy_helper.from_array(fitted.weights.astype(np.float32).reshape(-1, 1), "w")
        b = numpy_helper.from_array(np.array([fitted.bias], dtype=np.float32), "b")
        width = len(FEATURE_NAMES)
        graph = helper.make_graph(
            [
                helper.make_node("MatMul", [INPUT_NAME, "w"], ["xw"]),
                helper.make_node("Add", ["xw", "b"], [OUTPUT_NAME]),
            ],
            "tiny",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", width])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1])],
            initializer=[w, b],
        )
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", cfg.onnx_opset)])
        proto.ir_version = 8
        path = write_canonical(proto, out_dir / "model.onnx", "tiny", {"model": "tiny"})
        x = data.hold[list(FEATURE_NAMES)].to_numpy(np.float32)
        (got,) = run(make_session(path), x)
        return OnnxExport.checked(path, got.reshape(-1), self.predict(fitted, data.hold))

    @staticmethod
    def predict(fitted: TinyFit, frame: pd.DataFrame) -> np.ndarray:
        """The framework's own output: the float64 forecast the ONNX graph must reproduce."""
        x = frame[list(FEATURE_NAMES)].to_numpy(np.float32).astype(np.float64)
        return np.asarray(x @ fitted.weights + fitted.bias)
