"""What a consumer can load: one ONNX model file, all weights inside it, no external data.

onnxruntime resolves an external-data tensor's ``location`` against the current working
directory when a model is loaded from bytes, so a planted ``./weights.bin`` (or a ``../``
path) would change predictions without touching a single verified byte. The publisher
refuses such models before signing and the consumer refuses them before loading.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipelines.registry.errors import ExternalDataError, ModelUnloadableError


def _tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attributes: Any) -> Iterator[Any]:
    for attr in attributes:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values
            yield attr.sparse_tensor.indices
        for sparse in attr.sparse_tensors:
            yield sparse.values
            yield sparse.indices
        if attr.HasField("g"):
            yield from _tensors(attr.g)
        for g in attr.graphs:
            yield from _tensors(g)


def parse_onnx(blob: bytes, what: str) -> Any:
    """The ModelProto, or :class:`ModelUnloadableError` naming ``what``."""
    import onnx

    try:
        return onnx.load_model_from_string(blob)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelUnloadableError(f"{what} is not a readable ONNX model: {exc}") from None


def refuse_external_data(model: Any, what: str) -> None:
    """:class:`ExternalDataError` when any tensor of ``model`` references an external file."""
    from onnx import TensorProto

    tensors = list(_tensors(model.graph))
    for function in model.functions:
        for node in function.node:
            tensors.extend(_attribute_tensors(node.attribute))
    for tensor in tensors:
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "?")
            raise ExternalDataError(
                f"{what}: tensor {tensor.name!r} keeps its data in an external file "
                f"({location[:80]!r}); only self-contained ONNX models are published and loaded"
            )


def check_loadable(blob: bytes, what: str) -> Any:
    """Parse, refuse external data, and open an onnxruntime session from the bytes.

    Returns the ModelProto. Raises :class:`ExternalDataError` or :class:`ModelUnloadableError`.
    """
    import onnxruntime as ort

    model = parse_onnx(blob, what)
    refuse_external_data(model, what)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelUnloadableError(f"{what}: onnxruntime cannot load it: {exc}") from None
    return model
