"""Same model, same bytes: the canonical export step, and every model's export rebuilt in
processes with different hash seeds, thread counts and export orders.

The trigger: skl2onnx and onnxmltools fill ``opset_import`` in the iteration order of a
``set`` of ``(domain, version)`` pairs, which follows ``hash(domain)`` and so
``PYTHONHASHSEED``. The subprocess test picks hash seeds under which such a set iterates
``ai.onnx.ml`` first (the reversed file), so it does not depend on luck.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pipelines.export.onnx import canonicalize, make_session, write_canonical

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("exports_child.py")
EXPORTS = (
    "regime-lightgbm",
    "regime-random_forest",
    "regime-logistic",
    "metalabel",
    "bandit",
    "sizer",
)
#: The pairs onnxmltools adds to its set for a LightGBM classifier, in the order it adds them
#: (the ensemble, then Identity and Cast): with colliding slots, insertion order matters too.
LIGHTGBM_PAIRS = '[("ai.onnx.ml", 1), ("", 1), ("", 9)]'


def _graph(opsets: list[tuple[str, int]], meta: list[tuple[str, str]]) -> onnx.ModelProto:
    """A one-node graph (y = x + 1) with the given opset_import and metadata order."""
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "9f1c2b-uuid",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [one],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    proto.ir_version = 8
    for key, value in meta:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def test_reversed_opset_and_metadata_order_give_the_same_bytes(tmp_path: Path) -> None:
    """The case the issue saw, built directly: [("", 9), ("ai.onnx.ml", 1)] and reversed."""
    meta = [("model", "m"), ("arm_names", "[]"), ("platt", "{}")]
    a = _graph([("", 13), ("ai.onnx.ml", 1)], meta)
    b = _graph([("ai.onnx.ml", 1), ("", 13)], meta[::-1])
    assert a.SerializeToString() != b.SerializeToString()  # what was signed before
    pa = write_canonical(a, tmp_path / "a.onnx", "m")
    pb = write_canonical(b, tmp_path / "b.onnx", "m")
    assert pa.read_bytes() == pb.read_bytes()
    proto = onnx.load(str(pa))
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 13), ("ai.onnx.ml", 1)]
    assert [p.key for p in proto.metadata_props] == ["arm_names", "model", "platt"]
    assert proto.graph.name == "m"


def test_duplicate_default_domain_is_merged_and_a_conflict_refused() -> None:
    """skl2onnx lists the default domain twice at one version; two versions are refused."""
    proto = canonicalize(_graph([("ai.onnx.ml", 1), ("", 13), ("ai.onnx", 13)], []), "m")
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 13), ("ai.onnx.ml", 1)]
    with pytest.raises(ValueError, match="versions 13 and 15"):
        canonicalize(_graph([("", 13), ("", 15)], []), "m")
    with pytest.raises(ValueError, match="repeats a key"):
        canonicalize(_graph([("", 13)], [("k", "1"), ("k", "2")]), "m")


def test_canonical_graph_computes_what_the_converter_graph_computes(tmp_path: Path) -> None:
    """Parity is unchanged: a real LightGBM export, canonical or not, gives the same numbers."""
    import onnxmltools
    from lightgbm import LGBMClassifier
    from onnxmltools.convert.common.data_types import FloatTensorType

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    model = LGBMClassifier(n_estimators=5, verbose=-1).fit(x, (x[:, 0] > 0).astype(int))
    raw = onnxmltools.convert_lightgbm(
        model, initial_types=[("x", FloatTensorType([None, 4]))], zipmap=False, target_opset=15
    )
    path = write_canonical(onnx.ModelProto.FromString(raw.SerializeToString()), tmp_path / "c", "c")
    want = make_session(raw.SerializeToString()).run(None, {"x": x})
    got = make_session(path).run(None, {"x": x})
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def _first_domain(seed: str) -> str:
    """The domain a converter's set of LightGBM pairs iterates first under hash ``seed``
    (``-S``, not ``-I``: isolated mode would ignore ``PYTHONHASHSEED``)."""
    code = f"s = set()\nfor p in {LIGHTGBM_PAIRS}: s.add(p)\nprint(next(iter(s))[0] or '-')"
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True
    )
    return out.stdout.strip()


def _hash_seeds() -> list[str | None]:
    """Unset, 0, and the first two seeds that put ``ai.onnx.ml`` first (the reversed file)."""
    reversed_seeds: list[str] = []
    for seed in map(str, range(1, 500)):
        if _first_domain(seed) == "ai.onnx.ml":
            reversed_seeds.append(seed)
            if len(reversed_seeds) == 2:
                break
    assert len(reversed_seeds) == 2, "no hash seed reverses the converter's opset order"
    return [None, "0", *reversed_seeds]


def _exports(out: Path, seed: str | None, threads: int, order: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    env["PYTHONPATH"] = str(ROOT)
    if seed is not None:
        env["PYTHONHASHSEED"] = seed
    args = [str(out), str(threads), ",".join(order)]
    done = subprocess.run(
        [sys.executable, str(CHILD), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    digests: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return digests


@pytest.mark.slow
def test_every_export_has_the_same_bytes_whatever_the_hash_seed(tmp_path: Path) -> None:
    """Each model's export (every regime candidate too) built in processes with different
    PYTHONHASHSEED values (and unset), thread counts and export orders on threads."""
    seeds = _hash_seeds()
    runs = [
        (seed, 1 + i % 2, list(EXPORTS) if i % 2 == 0 else list(reversed(EXPORTS)))
        for i, seed in enumerate(seeds)
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(lambda r: _exports(tmp_path / f"run{r[0]}", *r), runs)  # type: ignore[misc]
        )
    assert set(results[0]) == set(EXPORTS)
    for (seed, threads, _), digests in zip(runs, results, strict=True):
        differ = sorted(k for k in EXPORTS if digests[k] != results[0][k])
        assert not differ, f"PYTHONHASHSEED={seed}, {threads} thread(s): {differ} differ"
