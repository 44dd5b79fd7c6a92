"""``featurize`` in a child process: the same features, the same errors, no numba in the caller."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs.settings import load_config
from pipelines.data.fingerprint import frame_hash
from pipelines.data.synthetic import generate_bars
from pipelines.features import WARMUP_BARS, featurize
from pipelines.features import isolated as iso
from pipelines.scratch import ORPHAN_AGE_S

ROOT = Path(__file__).resolve().parents[2]


def _bars(n: int, symbols: list[str], seed: int = 11) -> pd.DataFrame:
    cfg = load_config().data.synthetic.model_copy(update={"n_bars": n, "symbols": symbols})
    return generate_bars(cfg, seed)


def test_child_features_equal_in_process_features() -> None:
    # a second symbol too short for its warm-up contributes no rows: the edge of the concat
    long, short = _bars(900, ["AAA", "BBB"]), _bars(WARMUP_BARS - 5, ["CCC"], seed=3)
    bars = pd.concat([long, short], ignore_index=True)
    before = bars.copy(deep=True)
    got, want = iso.featurize_isolated(bars), featurize(bars)
    pd.testing.assert_frame_equal(got.frame, want.frame, check_exact=True, check_index_type=True)
    assert type(got.frame.index) is type(want.frame.index)
    assert got.warmup_dropped == want.warmup_dropped == 2 * WARMUP_BARS + len(short)
    assert frame_hash(got.frame) == frame_hash(want.frame)
    pd.testing.assert_frame_equal(bars, before)  # the input is not touched


def test_bad_bars_raise_the_childs_value_error_in_the_parent() -> None:
    bars = _bars(300, ["AAA"])
    bars.loc[17, "close"] = -1.0
    with pytest.raises(ValueError) as in_process:
        featurize(bars)
    with pytest.raises(ValueError) as isolated:
        iso.featurize_isolated(bars)
    assert str(isolated.value) == str(in_process.value) and str(isolated.value)


def test_a_child_that_crashes_is_a_runtime_error_with_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'numba: segmentation fault in the cache' >&2\nexit 9\n")
    fake.chmod(0o755)
    monkeypatch.setattr(iso.sys, "executable", str(fake))
    with pytest.raises(RuntimeError, match=r"exited 9:\nnumba: segmentation fault"):
        iso.featurize_isolated(_bars(300, ["AAA"]))


def test_the_training_flow_never_imports_numba() -> None:
    """The flow, its tasks and every trainer import without numba: only the child loads it."""
    code = (
        "import sys, flows.training, flows.collect, tasks.data, tasks.train, flows.cli\n"
        "import pipelines.models.bandit.train, pipelines.models.regime.train\n"
        "import pipelines.models.sizer.train, pipelines.models.metalabel.train\n"
        "from pipelines.features import FEATURE_NAMES, FeatureSet\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite'))\n"
        "assert not bad, bad[:5]\n"
        "assert 'pipelines.features.kernels' not in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # and the lazy names still resolve to the real transforms
    import pipelines.features as pf

    assert (
        pf.featurize is featurize
        and np.isfinite(pf.compute_features(_bars(300, ["A"])).iloc[-1]).all()
    )


def test_the_child_runs_the_parents_checkout_even_when_it_is_not_installed(
    tmp_path: Path,
) -> None:
    """A copy of the package on ``sys.path`` only (not installed): the child imports the copy.

    The copy's ``names`` module leaves a file per process that imports it: two (parent and
    child) when the child runs the copy, one if it fell back to the installed package.
    """
    import shutil

    copy, marks = tmp_path / "checkout", tmp_path / "marks"
    marks.mkdir()
    for pkg in ("pipelines", "configs"):
        shutil.copytree(ROOT / pkg, copy / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    names = copy / "pipelines" / "features" / "names.py"
    names.write_text(
        names.read_text()
        + f"\nimport os as _os\nopen({str(marks)!r} + f'/{{_os.getpid()}}', 'w')\n"
    )
    code = (
        f"import sys; sys.path.insert(0, {str(copy)!r})\n"
        "from pipelines.data.synthetic import generate_bars\n"
        "from configs.settings import load_config\n"
        "from pipelines.features.isolated import featurize_isolated\n"
        "cfg = load_config().data.synthetic.model_copy(update={'n_bars': 400, 'symbols': ['A']})\n"
        "print(len(featurize_isolated(generate_bars(cfg, 1)).frame))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [str(400 - WARMUP_BARS)]
    assert len(list(marks.iterdir())) == 2


def test_warming_compiles_every_kernel_the_features_use() -> None:
    """``make setup`` fills numba's cache with this: every compiled kernel gets a signature."""
    from numba.core.registry import CPUDispatcher

    from pipelines.features import kernels

    assert iso.warm_kernels(n_bars=WARMUP_BARS + 50) > 0
    dispatchers = {n: f for n, f in vars(kernels).items() if isinstance(f, CPUDispatcher)}
    assert len(dispatchers) >= 10
    # _bin_of is compiled as part of the profile loop; featurize calls all the others
    missing = [n for n, f in dispatchers.items() if not f.signatures and n != "_bin_of"]
    assert not missing, missing


def test_scratch_a_killed_parent_left_is_swept_and_a_live_ones_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(gone.stdout)
    old = time.time() - ORPHAN_AGE_S - 60

    def scratch(pid: int, age: float | None) -> Path:
        folder = tmp_path / f"edgeflow-featurize-{pid}-x{age is None}"
        folder.mkdir()
        (folder / "bars.arrow").write_bytes(b"x" * 100)
        if age is not None:
            os.utime(folder, (age, age))
        return folder

    orphan = scratch(dead, old)
    fresh_orphan = scratch(dead, None)  # might be a parent in another PID namespace
    live = scratch(os.getpid(), old)
    other = tmp_path / "edgeflow-featurize-notapid-1"
    other.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    features = iso.featurize_isolated(_bars(400, ["A"]))
    assert len(features.frame)
    assert not orphan.exists()
    assert fresh_orphan.exists() and live.exists() and other.exists()
    # its own scratch is gone after the call
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (fresh_orphan, live, other)
    )


ORPHANED = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", (
    "import os, time; from pipelines.features.isolated import _die_with_parent; "
    "_die_with_parent(os.getppid()); print('armed', flush=True); time.sleep(120)")])
print(child.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_dies_with_a_killed_parent() -> None:
    """``kill -9`` of the run left the featurize child running on as an orphan; it now asks
    for SIGTERM when its parent dies."""
    import psutil

    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHANED],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    # The child shares the pipe and says when it has asked for the signal: killing the parent
    # before that (its imports take over a second on a loaded machine) tests nothing.
    assert parent.stdout.readline().strip() == "armed"
    assert child.is_running()
    parent.kill()
    parent.wait()
    try:
        child.wait(timeout=15)
    except psutil.TimeoutExpired:
        child.kill()
        pytest.fail("the child outlived its killed parent")


def test_a_child_whose_parent_is_already_gone_exits() -> None:
    """The parent died before the child asked for the signal: the child must not run on."""
    root = Path(__file__).resolve().parents[2]
    code = "from pipelines.features.isolated import _die_with_parent; _die_with_parent(1)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )
    assert done.returncode == 1 and "(1) is gone" in done.stderr
