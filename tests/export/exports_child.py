"""Build every model's ONNX export once and print each file's sha256 (run as a subprocess).

``tests/export/test_export_reproducible.py`` runs this under different ``PYTHONHASHSEED``
values, thread counts and export orders and compares what it prints. Each model is fitted
here on tiny, seeded data (seconds, not a training run) and written through its own
``export_onnx``, the exports concurrently on threads as the flow's trainings are.

Usage: ``python exports_child.py OUT_DIR THREADS ORDER`` with ORDER a comma-separated list of
export names (the order they are submitted in).
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")


def builders(out: Path, threads: int) -> dict[str, Callable[[], Path]]:
    """One zero-argument export per model and regime candidate, its model already fitted."""
    import torch
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from stable_baselines3 import PPO
    from torch import nn

    from pipelines.features import FEATURE_NAMES
    from pipelines.models.bandit.export import export_onnx as bandit_export
    from pipelines.models.metalabel.export import INPUT_COLUMNS
    from pipelines.models.metalabel.export import export_onnx as metalabel_export
    from pipelines.models.regime.export import export_onnx as regime_export
    from pipelines.models.regime.labels import REGIMES
    from pipelines.models.sizer.data import ObservationScaler
    from pipelines.models.sizer.env import SizingEnv
    from pipelines.models.sizer.export import export_onnx as sizer_export

    # Fitted on one thread as the flow's trainings are (OMP_NUM_THREADS=1): SB3's orthogonal
    # init differs in the last bit with torch's thread count, a property of training, not of
    # the export. The exports then run with ``threads``.
    torch.set_num_threads(1)
    rng = np.random.default_rng(7)
    n_feat = len(FEATURE_NAMES)
    x = rng.normal(size=(400, n_feat)).astype(np.float32)
    y4 = (x[:, 0] > 0).astype(int) * 2 + (x[:, 1] > 0).astype(int)
    lgb_kw = {"n_estimators": 8, "random_state": 7, "n_jobs": 1, "verbose": -1}
    regime = {
        "lightgbm": LGBMClassifier(deterministic=True, force_row_wise=True, **lgb_kw),
        "random_forest": RandomForestClassifier(
            n_estimators=3, max_depth=4, random_state=7, n_jobs=1
        ),
        "logistic": Pipeline(
            [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=50))]
        ),
    }
    for model in regime.values():
        model.fit(x, y4)
    xm = np.concatenate([x, np.eye(12, dtype=np.float32)[np.arange(400) % 12]], axis=1)
    assert xm.shape[1] == len(INPUT_COLUMNS)
    meta = LGBMClassifier(deterministic=True, force_row_wise=True, **lgb_kw).fit(
        xm, (x[:, 2] > 0).astype(int)
    )
    torch.manual_seed(7)
    bandit = nn.Sequential(nn.Linear(n_feat, 16), nn.ReLU(), nn.Linear(16, 12))
    obs = rng.normal(size=(300, n_feat + 1)).astype(np.float32)
    env = SizingEnv(obs, np.sign(obs[:, -1]), rng.normal(0, 1e-3, 300), np.zeros(300), window=32)
    ppo = PPO("MlpPolicy", env, n_steps=32, batch_size=32, seed=7, device="cpu", verbose=0)
    scaler = ObservationScaler().fit(obs)
    torch.set_num_threads(threads)

    def regime_job(name: str) -> Callable[[], Path]:
        return lambda: regime_export(
            regime[name], out / f"regime-{name}.onnx", FEATURE_NAMES, REGIMES
        )

    return {
        **{f"regime-{name}": regime_job(name) for name in regime},
        "metalabel": lambda: metalabel_export(meta, 1.1, -0.05, out / "metalabel.onnx"),
        "bandit": lambda: bandit_export(bandit, n_feat, out / "bandit.onnx"),
        "sizer": lambda: sizer_export(ppo, scaler, out / "sizer.onnx"),
    }


def main(argv: list[str]) -> None:
    out, threads, order = Path(argv[0]), int(argv[1]), argv[2].split(",")
    out.mkdir(parents=True, exist_ok=True)
    jobs = builders(out, threads)
    if sorted(order) != sorted(jobs):
        raise SystemExit(f"ORDER must name each of {sorted(jobs)} once, got {order}")
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(jobs[name]) for name in order}
        paths = {name: f.result() for name, f in futures.items()}
    digests = {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in sorted(paths.items())}
    print(json.dumps(digests, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
