"""Export the bandit's deterministic scoring network to ONNX and check parity.

Graph: ``features`` float32 [N, 43] (raw features; the safe policy folds the standardisation
into its first layer) -> MLP -> ``arm_values`` float32 [N, 12], each arm's value over the
horizon (for the safe policy: the lower confidence bound of its advantage over the default).
A consumer trades ``argmax`` over the row (see docs/bandit.md for the Thompson fallback).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from pipelines.export.onnx import converter_lock, write_canonical

INPUT_NAME = "features"
OUTPUT_NAME = "arm_values"


def export_onnx(module: nn.Module, n_features: int, path: Path, opset: int = 17) -> Path:
    """Write ``module`` (eval mode) to ``path`` with a dynamic batch axis.

    Uses the legacy TorchScript exporter (``dynamo=False``): the graph is a plain MLP, it
    exports in milliseconds and needs no onnxscript at run time.
    """
    module = module.eval().cpu()
    dummy = torch.zeros(1, n_features, dtype=torch.float32)
    buf = io.BytesIO()
    with converter_lock(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (dummy,),
            buf,  # type: ignore[arg-type]  # the legacy exporter accepts file-like objects
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
            opset_version=opset,
            dynamo=False,
        )
    return write_canonical(onnx.load_model_from_string(buf.getvalue()), path, "bandit")
