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

    python -m pipelines.features.isolated BARS.arrow OUT.arrow
    python -m pipelines.features.isolated --warm     # fill numba's cache (make setup)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

from pipelines.features.featureset import FeatureSet

#: Schema metadata key that carries ``FeatureSet.warmup_dropped`` back to the parent.
_WARMUP_KEY = b"edgeflow.warmup_dropped"
#: Exit status for a ``ValueError`` from ``featurize``; its message is the child's stdout.
_REFUSED = 3
#: Scratch folders are ``<prefix><parent pid>-<random>`` in the temporary directory.
_SCRATCH_PREFIX = "edgeflow-featurize-"
#: A scratch folder whose parent is gone is removed once it is this old (seconds): a process
#: that shares the temporary directory from another PID namespace has long finished by then.
ORPHAN_AGE_S = 3600.0


def featurize_isolated(bars: pd.DataFrame) -> FeatureSet:
    """``featurize(bars)`` computed by a fresh interpreter; returns the same ``FeatureSet``.

    The bars are not modified. The child inherits this process's environment (numba's cache
    settings included) and imports ``pipelines`` from where this process did.
    """
    sweep_orphans(Path(tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-") as tmp:
        src, out = Path(tmp) / "bars.arrow", Path(tmp) / "features.arrow"
        feather.write_feather(bars, src, compression="uncompressed")
        proc = subprocess.run(
            [sys.executable, "-m", __name__, str(src), str(out)],
            capture_output=True,
            text=True,
            env=_child_env(),
            check=False,
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


def sweep_orphans(tmpdir: Path, min_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Remove the scratch folders a killed parent left behind; returns those removed.

    ``TemporaryDirectory`` cleans up on every exit Python sees, but not after ``kill -9``: the
    folder (a copy of the bars and their features) would stay in the workdir for good. One
    is removed only when the process that made it no longer exists and it is older than
    ``min_age_s``, so a featurize running now is never touched.
    """
    removed: list[Path] = []
    for folder in tmpdir.glob(f"{_SCRATCH_PREFIX}*-*"):
        pid = folder.name[len(_SCRATCH_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or not folder.is_dir():
            continue
        try:
            age = time.time() - folder.stat().st_mtime
        except FileNotFoundError:
            continue
        if age >= min_age_s:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        pass
    return True


def _child_env() -> dict[str, str]:
    """This environment, with the directory this ``pipelines`` package was imported from
    first on the child's path: the child runs the parent's code even where the package is
    not installed (a checkout put on ``sys.path`` by hand, as the benchmarks do)."""
    root = str(Path(__file__).resolve().parents[2])
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _main(src: str, out: str) -> int:
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
    sys.exit(_main(*sys.argv[1:3]))
