"""One way to open an exported graph for inference: CPU, few threads, fully optimised.

Every published model is scored one row at a time by the bot, where per-call overhead, not
arithmetic, dominates; a session with one intra-op thread (no thread-pool hand-off, and
deterministic), one inter-op thread, sequential execution and every graph optimisation is the
fastest and the most reproducible setting measured (``benchmarks/bench_onnx.py``).
"""

from __future__ import annotations

import os

import onnxruntime as ort


def session_options(threads: int = 1) -> ort.SessionOptions:
    """The options :func:`make_session` uses (for callers that add their own entries)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: a published graph's warnings are not actionable
    return opts


def make_session(
    path_or_bytes: str | os.PathLike[str] | bytes, threads: int = 1
) -> ort.InferenceSession:
    """A CPU ``InferenceSession`` on a model file or its serialized bytes."""
    model = path_or_bytes if isinstance(path_or_bytes, bytes) else os.fspath(path_or_bytes)
    return ort.InferenceSession(model, session_options(threads), providers=["CPUExecutionProvider"])
