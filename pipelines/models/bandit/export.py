"""Export the bandit's deterministic scoring network to ONNX and check parity.

Graph: ``features`` float32 [N, 43] (raw features; the safe policy folds the standardisation
into its first layer) -> MLP -> ``arm_values`` float32 [N, 12], each arm's value over the
horizon (for the safe policy: the lower confidence bound of its advantage over the default).
A consumer trades ``argmax`` over the row (see docs/bandit.md for the Thompson fallback).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from pipelines.export.session import make_session

INPUT_NAME = "features"
OUTPUT_NAME = "arm_values"


def export_onnx(module: nn.Module, n_features: int, path: Path, opset: int = 17) -> Path:
    """Write ``module`` (eval mode) to ``path`` with a dynamic batch axis.

    Uses the legacy TorchScript exporter (``dynamo=False``): the graph is a plain MLP, it
    exports in milliseconds and needs no onnxscript at run time.
    """
    module = module.eval().cpu()
    dummy = torch.zeros(1, n_features, dtype=torch.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
            opset_version=opset,
            dynamo=False,
        )
    return path


def onnx_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session; one intra-op thread by default (deterministic, like the bot's)."""
    return make_session(path, threads)


def onnx_arm_values(session: ort.InferenceSession, X: np.ndarray) -> np.ndarray:
    """[N, K] arm values from the exported graph."""
    out = session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})
    return np.asarray(out[0])


def parity(path: Path, module: nn.Module, X: np.ndarray) -> float:
    """Max |onnx - torch (eval)| over the rows of ``X``."""
    module = module.eval()
    with torch.no_grad():
        expected = module(torch.from_numpy(np.array(X, dtype=np.float32))).numpy()
    got = onnx_arm_values(onnx_session(path), X)
    if got.shape != expected.shape:
        raise ValueError(f"ONNX output shape {got.shape} != torch {expected.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
