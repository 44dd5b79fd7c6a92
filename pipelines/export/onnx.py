"""Canonical bytes, parity and graph description for every exported model (sessions:
``session.py``).

Every model's export ends in :func:`write_canonical`: the one step that fixes what the
converters leave to chance (``opset_import`` order, metadata order, the graph's name), so the
same model, inputs and seed give the same signed bytes in any process. Converter calls run
under :func:`converter_lock` (torch's exporter keeps process-global state).

Every trainer checks its export against the framework's own output with :func:`max_abs_diff`
and the one configured tolerance (``pipelines.evaluation.gates.parity_gate``); the
recommendation, the MLflow round trip and the registry open sessions through
:func:`make_session`, so a session option (threads, optimisation level) is set once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from pipelines.export.session import make_session

if TYPE_CHECKING:
    import onnx

__all__ = [
    "GraphSpec",
    "OnnxExport",
    "TensorSpec",
    "canonicalize",
    "converter_lock",
    "describe",
    "make_session",
    "max_abs_diff",
    "run",
    "write_canonical",
]

_CONVERTING = threading.RLock()


@contextmanager
def converter_lock() -> Iterator[None]:
    """Run one converter call at a time in this process.

    The trainings run concurrently on threads, and torch's TorchScript exporter keeps its
    settings (opset, training mode, "in export") in process-global state that one export sets
    and resets while another may be reading it; onnxmltools and skl2onnx are cheap enough to
    serialise too. A conversion takes well under a second, the trainings minutes.
    """
    with _CONVERTING:
        yield


def canonicalize(proto: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """Put every field whose order or value a converter leaves to chance in one order, in place.

    Why: skl2onnx and onnxmltools collect the ``(domain, version)`` pairs of the nodes they
    emit in a ``set`` and fill ``opset_import`` in that set's iteration order, which follows
    ``hash(domain)``, i.e. ``PYTHONHASHSEED``; skl2onnx also lists the default domain twice.
    Converters name the graph with a random uuid. None of this changes what the graph
    computes, all of it changes the signed bytes. Fixed here: ``opset_import`` sorted by
    domain, one entry per domain (two different versions of one domain are refused, not
    guessed); ``metadata_props`` sorted by key (a repeated key is refused); the graph named
    ``name``; an empty ``doc_string`` on the model and the graph. Nodes, initializers and
    values keep the converter's order: it is the topological order the graph was built in and
    was found stable across hash seeds and threads.
    """
    versions: dict[str, int] = {}
    for entry in proto.opset_import:
        domain = "" if entry.domain == "ai.onnx" else entry.domain
        if versions.setdefault(domain, entry.version) != entry.version:
            raise ValueError(
                f"opset_import lists domain {domain!r} at versions "
                f"{versions[domain]} and {entry.version}"
            )
    del proto.opset_import[:]
    for domain in sorted(versions):
        entry = proto.opset_import.add()
        entry.domain, entry.version = domain, versions[domain]
    props = sorted((p.key, p.value) for p in proto.metadata_props)
    keys = [k for k, _ in props]
    if len(set(keys)) != len(keys):
        raise ValueError(f"metadata_props repeats a key: {keys}")
    del proto.metadata_props[:]
    for key, value in props:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.graph.name = name
    proto.doc_string = ""
    proto.graph.doc_string = ""
    return proto


def write_canonical(
    proto: onnx.ModelProto, path: Path, name: str, metadata: Mapping[str, str] | None = None
) -> Path:
    """Add ``metadata``, canonicalise, check and write ``proto`` to ``path``: the one way every
    model's export reaches the disk (so the bytes that get signed are the canonical ones)."""
    import onnx

    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    canonicalize(proto, name)
    onnx.checker.check_model(proto)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString(deterministic=True))
    return path


#: Rows per ``session.run`` in :func:`run`: scoring a whole span at once makes onnxruntime's
#: arena grow to the span's intermediate tensors (hundreds of MB for the bandit's posterior).
#: 4,096 rows still took +58 MB for the bandit's parity check, 1,024 take +13 MB in the same
#: time.
RUN_CHUNK = 1024


def run(
    session: ort.InferenceSession, x: npt.ArrayLike, chunk: int = RUN_CHUNK
) -> list[np.ndarray]:
    """Every output of a single-input, row-wise graph for float32 rows ``x``, ``chunk`` rows
    per call; every output must have one row per input row."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    name = session.get_inputs()[0].name
    if len(x32) <= chunk:
        return [np.asarray(o) for o in session.run(None, {name: x32})]
    parts: list[list[np.ndarray]] = []
    for start in range(0, len(x32), chunk):
        rows = x32[start : start + chunk]
        outs = [np.asarray(o) for o in session.run(None, {name: rows})]
        bad = [o.shape for o in outs if o.ndim == 0 or o.shape[0] != len(rows)]
        if bad:
            raise ValueError(f"graph outputs {bad} are not one row per input row: run it whole")
        parts.append(outs)
    return [np.concatenate(col) for col in zip(*parts, strict=True)]


def max_abs_diff(got: npt.ArrayLike, want: npt.ArrayLike) -> float:
    """Max |got - want| in float64 after flattening; shapes must agree (0.0 when empty)."""
    a = np.asarray(got, dtype=np.float64)
    b = np.asarray(want, dtype=np.float64)
    if a.size == b.size and a.shape != b.shape and a.squeeze().shape == b.squeeze().shape:
        a, b = a.squeeze(), b.squeeze()
    if a.shape != b.shape:
        raise ValueError(f"ONNX output shape {a.shape} != framework output shape {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as a consumer sees it."""

    name: str
    dtype: str | None
    shape: tuple[int | str | None, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class GraphSpec:
    """Inputs, outputs and default-domain opset of an ONNX graph."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int | None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def input_width(self) -> int:
        """The fixed last dimension of the first input (the feature count)."""
        width = self.inputs[0].shape[-1]
        if not isinstance(width, int):
            raise ValueError(f"input {self.inputs[0].name!r} has no fixed width ({width!r})")
        return width


def describe(model: Path | str | bytes) -> GraphSpec:
    """Read a graph's interface without running it."""
    import onnx
    from onnx import helper

    proto = (
        onnx.load_model_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    )
    init = {i.name for i in proto.graph.initializer}

    def specs(values: Sequence[Any]) -> tuple[TensorSpec, ...]:
        out = []
        for v in values:
            if v.name in init:
                continue
            tt = v.type.tensor_type
            dims: list[int | str | None] = [
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in tt.shape.dim
            ]
            dtype = str(helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else None
            out.append(TensorSpec(v.name, dtype, tuple(dims)))
        return tuple(out)

    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    meta = {p.key: p.value for p in proto.metadata_props}
    return GraphSpec(specs(proto.graph.input), specs(proto.graph.output), opset, meta)


@dataclass(frozen=True)
class OnnxExport:
    """An exported graph and its parity against the framework that trained it."""

    path: Path
    max_abs_diff: float
    graph: GraphSpec

    @classmethod
    def checked(cls, path: Path, got: npt.ArrayLike, want: npt.ArrayLike) -> OnnxExport:
        """Describe ``path`` and record parity of its output ``got`` against ``want``."""
        return cls(Path(path), max_abs_diff(got, want), describe(path))
