"""ONNX inference latency of every published graph beside plain MLPs of the same size.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_onnx.py [--rounds 15]``

Graphs: the bandit's safe-scoring policy as exported now and as it was exported before (the
previous module is rebuilt here from the same fitted bandit, for the before/after row), the
regime LightGBM classifier and the sizer's actor; references: plain Linear/ReLU MLPs exported
the same way (legacy TorchScript exporter, opset 17) whose Gemm shapes match each graph. Every
session is :func:`pipelines.export.session.make_session` (one intra-op thread). Latency does
not depend on the weights, so the bandit and the sizer are fitted briefly (the sizer's PPO is
untrained): only the graph's shape matters. Models are timed in interleaved rounds (each
round times every model once, 1-row calls then 1024-row calls) so that load from other jobs
on the machine spreads over all of them alike. Writes ``benchmarks/results/onnx.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import itertools
import os
import platform
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "onnx.md"


def _mlp_bytes(widths: tuple[int, ...]) -> bytes:
    """A plain MLP (Linear, ReLU, ..., Linear) of these widths, exported like the models."""
    import torch
    from torch import nn

    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    module = nn.Sequential(*layers[:-1]).eval()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module,
            (torch.zeros(1, widths[0]),),
            buf,  # type: ignore[arg-type]  # the legacy exporter accepts file-like objects
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
            opset_version=17,
            dynamo=False,
        )
    return buf.getvalue()


class _PreviousSafeScoringNet:
    """The safe-scoring module as exported before: standardisation as Sub/Div nodes, a ones
    column concatenated to the embedding, Reshape + ReduceSum for each arm's norm."""

    @staticmethod
    def build(bandit: Any, baseline_arm: int, z: float) -> Any:
        import copy

        import torch
        from torch import nn

        w, cov = bandit._advantage_posterior(baseline_arm)
        d = w.shape[1]
        chol = np.zeros_like(cov)
        for a in range(len(cov)):
            if np.any(cov[a]):
                chol[a] = np.linalg.cholesky(cov[a] + 1e-12 * np.eye(d))
        scale = bandit.reward_scale_
        weight, chol = w * scale, chol * scale
        k = weight.shape[0]

        class Previous(nn.Module):
            weight: torch.Tensor
            chol: torch.Tensor

            def __init__(self) -> None:
                super().__init__()
                self.net = copy.deepcopy(bandit.net_)
                self.register_buffer("weight", torch.from_numpy(weight.astype(np.float32)))
                stacked = np.transpose(chol, (1, 0, 2)).reshape(d, k * d)
                self.register_buffer("chol", torch.from_numpy(stacked.astype(np.float32)))

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                emb = self.net.embed(x)
                phi = torch.cat([emb, torch.ones_like(emb[:, :1])], dim=1)
                mean = phi @ self.weight.T
                proj = (phi @ self.chol).reshape(-1, k, d)
                std = torch.sqrt((proj * proj).sum(dim=2))
                return mean - z * std

        return Previous().eval()


def _graphs(tmp: Path) -> tuple[dict[str, tuple[bytes, int]], dict[str, str]]:
    """name -> (serialized graph, input width); and notes (parity figures)."""
    import gymnasium as gym
    import torch
    from gymnasium import spaces
    from stable_baselines3 import PPO

    from configs import load_config
    from configs.sizer import SizerConfig
    from pipelines.data.schema import REGIMES
    from pipelines.data.synthetic import generate_bars
    from pipelines.export.onnx import make_session, max_abs_diff, run
    from pipelines.features import FEATURE_NAMES, featurize
    from pipelines.models.bandit import NeuralBandit
    from pipelines.models.bandit.export import export_onnx as bandit_export
    from pipelines.models.regime.candidates import make_candidate
    from pipelines.models.regime.export import export_onnx as regime_export
    from pipelines.models.regime.export import onnx_probabilities
    from pipelines.models.regime.train import build_dataset
    from pipelines.models.sizer.data import ObservationScaler
    from pipelines.models.sizer.export import export_onnx as sizer_export
    from pipelines.models.sizer.train import _ppo_kwargs

    cfg = load_config("demo", environ={})
    bars = generate_bars(cfg.data.synthetic, cfg.seed)
    feats = featurize(bars).frame
    x = feats[list(FEATURE_NAMES)].to_numpy(np.float32)
    rng = np.random.default_rng(0)
    graphs: dict[str, tuple[bytes, int]] = {}
    notes: dict[str, str] = {}

    bandit = NeuralBandit(epochs=1, seed=0).fit_full_information(
        x, rng.normal(size=(len(x), 12)), 0
    )
    z = 1.28
    new = bandit.safe_scoring_module(0, z)
    old = _PreviousSafeScoringNet.build(bandit, 0, z)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        notes["bandit module change"] = (
            f"{float((new(xt) - old(xt)).abs().max()):.2e} (max |new - previous| on "
            f"{len(x):,} rows; values up to {float(old(xt).abs().max()):.2e})"
        )
    for name, module in (("bandit safe policy", new), ("bandit safe policy, previous", old)):
        path = bandit_export(module, x.shape[1], tmp / f"{len(graphs)}.onnx")
        with torch.no_grad():
            want = module.eval()(torch.from_numpy(x)).numpy()
        notes[f"{name} ONNX parity"] = f"{max_abs_diff(run(make_session(path), x)[0], want):.2e}"
        graphs[name] = (path.read_bytes(), x.shape[1])

    frame, _, _ = build_dataset(bars, feats, cfg.regime)
    X = frame[list(FEATURE_NAMES)].to_numpy(np.float32)
    lgbm = make_candidate("lightgbm", cfg.regime, cfg.seed).fit(X, frame["y"].to_numpy())
    path = regime_export(lgbm, tmp / "regime.onnx", FEATURE_NAMES, REGIMES)
    got = onnx_probabilities(path, lgbm, X[:2000])
    notes["regime LightGBM ONNX parity"] = f"{max_abs_diff(got, lgbm.predict_proba(X[:2000])):.2e}"
    graphs["regime LightGBM"] = (path.read_bytes(), x.shape[1])

    scfg = SizerConfig()
    obs_dim = x.shape[1] + 1  # features and the chosen arm's signal

    class _Spaces(gym.Env[np.ndarray, np.ndarray]):
        observation_space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    ppo = PPO("MlpPolicy", _Spaces(), **_ppo_kwargs(scfg, 0))
    raw = np.hstack([x, rng.normal(size=(len(x), 1)).astype(np.float32)])
    scaler = ObservationScaler(clip=scfg.obs_clip).fit(raw)
    path = sizer_export(ppo, scaler, tmp / "sizer.onnx")
    graphs["sizer actor"] = (path.read_bytes(), obs_dim)

    hidden = tuple(bandit.hidden)
    n_arms = 12
    d = hidden[-1] + 1
    graphs[f"MLP {'-'.join(map(str, (43, *hidden, n_arms)))}"] = (
        _mlp_bytes((43, *hidden, n_arms)),
        43,
    )
    graphs[f"MLP {'-'.join(map(str, (43, *hidden, n_arms + n_arms * d)))}"] = (
        _mlp_bytes((43, *hidden, n_arms + n_arms * d)),
        43,
    )
    arch = tuple(scfg.net_arch)
    graphs[f"MLP {'-'.join(map(str, (obs_dim, *arch, 1)))}"] = (
        _mlp_bytes((obs_dim, *arch, 1)),
        obs_dim,
    )
    return graphs, notes


def _node_counts(blob: bytes) -> tuple[int, str]:
    import onnx

    proto = onnx.load_from_string(blob)
    ops = Counter(n.op_type for n in proto.graph.node)
    return len(proto.graph.node), ", ".join(f"{op} {n}" for op, n in ops.most_common())


def _time_calls(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=200, help="1-row calls per model per round")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import onnxruntime as ort
    import torch

    from pipelines.export.session import make_session

    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        graphs, notes = _graphs(Path(tmp))
    sessions = {name: make_session(blob) for name, (blob, _) in graphs.items()}
    rng = np.random.default_rng(1)
    inputs = {
        name: (
            sessions[name].get_inputs()[0].name,
            rng.normal(size=(1, width)).astype(np.float32),
            rng.normal(size=(1024, width)).astype(np.float32),
        )
        for name, (_, width) in graphs.items()
    }
    # the bandit graph with onnxruntime's default SessionOptions, for the session-option row
    default_opts = ort.InferenceSession(
        graphs["bandit safe policy"][0], providers=["CPUExecutionProvider"]
    )
    sessions["bandit safe policy, default SessionOptions"] = default_opts
    inputs["bandit safe policy, default SessionOptions"] = inputs["bandit safe policy"]
    one_row: dict[str, list[float]] = {name: [] for name in sessions}
    batch: dict[str, list[float]] = {name: [] for name in sessions}
    for name, sess in sessions.items():  # warm-up
        feed, one, many = inputs[name]
        for _ in range(50):
            sess.run(None, {feed: one})
        sess.run(None, {feed: many})
    for _ in range(args.rounds):
        for name, sess in sessions.items():
            feed, one, many = inputs[name]
            one_row[name] += _time_calls(partial(sess.run, None, {feed: one}), args.calls)
            batch[name] += _time_calls(partial(sess.run, None, {feed: many}), 3)
    load_after = os.getloadavg()[0]

    def p(name: str, q: float) -> float:
        return float(np.percentile(one_row[name], q))

    cmd = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_onnx.py"
    if args.rounds != 15 or args.calls != 200:
        cmd += f" --rounds {args.rounds} --calls {args.calls}"
    lines = [
        "## ONNX inference latency",
        "",
        f"- Command: `{cmd}`",
        f"- Machine: {os.cpu_count()}-core {platform.machine()} CPU, no GPU, Python "
        f"{platform.python_version()}, onnxruntime {ort.__version__}; date "
        f"{dt.date.today().isoformat()}; 1-min load average {load_before:.1f} at start, "
        f"{load_after:.1f} at end (cores shared with other jobs: p99 is mostly their noise)",
        f"- Sessions: `pipelines.export.session.make_session` (1 intra-op thread, sequential, "
        f"all graph optimisations); {args.rounds} interleaved rounds of {args.calls} one-row "
        f"calls and 3 calls of 1024 rows per graph; `session.run` from Python, float32 input",
        "",
        "| graph | nodes | 1-row p50 µs | 1-row p99 µs | 1024 rows ms (median) | ops |",
        "|---|---|---|---|---|---|",
    ]
    for name in sessions:
        blob = graphs[name if name in graphs else "bandit safe policy"][0]
        nodes, ops = _node_counts(blob)
        lines.append(
            f"| {name} | {nodes} | {p(name, 50):.1f} | {p(name, 99):.1f} | "
            f"{np.median(batch[name]) / 1e3:.2f} | {ops} |"
        )
    hidden = [n for n in graphs if n.startswith("MLP")]
    ref_bandit, ref_params, ref_sizer = hidden
    ratios = [
        ("bandit safe policy", ref_params, "same Gemm shapes"),
        ("bandit safe policy", ref_bandit, "the reward net's shape"),
        ("bandit safe policy, previous", ref_params, "same Gemm shapes"),
        ("regime LightGBM", ref_bandit, "the bandit reward net's shape"),
        ("sizer actor", ref_sizer, "same Gemm shapes"),
    ]
    lines += [
        "",
        "1-row p50 against the plain MLP reference (goal: within 2x):",
        "",
        "| graph | reference MLP | ratio |",
        "|---|---|---|",
    ]
    for name, ref, why in ratios:
        lines.append(f"| {name} | {ref} ({why}) | {p(name, 50) / p(ref, 50):.2f}x |")
    lines += ["", "Checks:", ""]
    lines += [f"- {k}: {v}" for k, v in notes.items()]
    lines.append("")
    text = "\n".join(lines)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
