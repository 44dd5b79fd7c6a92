"""``featurize`` in a child process, so numba and LLVM never load into the training process.

The kernels are numba-compiled. Loading them, even from the on-disk cache, costs the process
that calls them about 110 MB it keeps for life: numba's typing machinery (~52 MB) and the
pages of LLVM's library that linking touches (~60 MB). The training flow featurizes once,
then trains for a minute with that memory idle, at the very point where its peak is measured
(docs/performance.md). A child that imports numba, featurizes and exits takes it with it,
for about 0.8 s of start-up.

Bars go to the child and features come back as Arrow IPC files in a private temporary
directory: columns, dtypes and values round-trip exactly, so the result equals
``featurize(bars)`` (tested). A ``ValueError`` from ``featurize`` (bad bars, a non-finite
feature) is raised again in the parent with the child's message; anything else is a
``RuntimeError`` that carries the child's last lines of output.

    python -m pipelines.features.isolated BARS.arrow OUT.arrow [PARENT_PID]
    python -m pipelines.features.isolated --warm     # fill numba's cache (make setup)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

from pipelines.features.featureset import FeatureSet
from pipelines.scratch import scratch_prefix, sweep_orphans

#: Schema metadata key that carries ``FeatureSet.warmup_dropped`` back to the parent.
_WARMUP_KEY = b"edgeflow.warmup_dropped"
#: Exit status for a ``ValueError`` from ``featurize``; its message is the child's stdout.
_REFUSED = 3


def featurize_isolated(bars: pd.DataFrame) -> FeatureSet:
    """``featurize(bars)`` computed by a fresh interpreter; returns the same ``FeatureSet``.

    The bars are not modified. The child inherits this process's environment (numba's cache
    settings included) and imports ``pipelines`` from where this process did.
    """
    sweep_orphans(Path(tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(prefix=scratch_prefix()) as tmp:
        src, out = Path(tmp) / "bars.arrow", Path(tmp) / "features.arrow"
        feather.write_feather(bars, src, compression="uncompressed")
        proc = subprocess.run(
            [sys.executable, "-m", __name__, str(src), str(out), str(os.getpid())],
            capture_output=True,
            text=True,
            env=_child_env(),
            check=False,
            # A terminal's Ctrl-C reaches the whole foreground group: the parent handles it
            # (``subprocess.run`` kills the child on the way out) and the child does not
            # print a traceback of its own.
            start_new_session=True,
        )
        if proc.returncode == _REFUSED:
            raise ValueError(proc.stdout.strip())
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-20:])
            raise RuntimeError(f"featurize child process exited {proc.returncode}:\n{tail}")
        table = feather.read_table(out, memory_map=False)
        dropped = int(json.loads((table.schema.metadata or {})[_WARMUP_KEY]))
        frame = table.to_pandas()
    return FeatureSet(frame=frame, warmup_dropped=dropped)


def _child_env() -> dict[str, str]:
    """This environment, with the directory this ``pipelines`` package was imported from
    first on the child's path: the child runs the parent's code even where the package is
    not installed (a checkout put on ``sys.path`` by hand, as the benchmarks do)."""
    root = str(Path(__file__).resolve().parents[2])
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _die_with_parent(parent: int) -> None:
    """Ask Linux for SIGTERM when the parent dies (``kill -9`` of the run), then check it
    did not die before the request. Done here, after exec: a ``preexec_fn`` is not safe in
    the parent, whose other threads are training. Elsewhere the child just finishes."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
    if os.getppid() != parent:
        sys.exit(f"featurize: the process that started this one ({parent}) is gone")


def _main(src: str, out: str, parent: str | None = None) -> int:
    if parent is not None:
        _die_with_parent(int(parent))
    from pipelines.features.compute import featurize

    bars = feather.read_feather(src, memory_map=False)
    try:
        features = featurize(bars)
    except ValueError as exc:
        print(exc)
        return _REFUSED
    table = pa.Table.from_pandas(features.frame, preserve_index=None)
    meta = {**(table.schema.metadata or {}), _WARMUP_KEY: json.dumps(features.warmup_dropped)}
    feather.write_feather(table.replace_schema_metadata(meta), out, compression="uncompressed")
    return 0


def warm_kernels(n_bars: int = 3000) -> float:
    """Compile the kernels into numba's cache now (``make setup`` does), so the first run in a
    fresh checkout loads them instead of compiling (~5-8 s on the 2-core machine); returns
    the seconds it took."""
    import time

    from configs.settings import load_config
    from pipelines.data.synthetic import generate_bars
    from pipelines.features.compute import featurize

    start = time.perf_counter()
    cfg = load_config().data.synthetic.model_copy(update={"n_bars": n_bars, "symbols": ["WARM"]})
    featurize(generate_bars(cfg, 0))
    return time.perf_counter() - start


if __name__ == "__main__":
    if sys.argv[1:] == ["--warm"]:
        print(f"feature kernels compiled or loaded in {warm_kernels():.1f} s")
        sys.exit(0)
    sys.exit(_main(*sys.argv[1:4]))
