"""Sizer figures: environment steps/s, training steps/s, ONNX vs SB3 latency, the demo run.

Run: ``.venv/bin/python benchmarks/bench_sizer.py [--timesteps 100000] [--skip-demo]``

Writes ``benchmarks/results/sizer.md`` (and the demo's plots under
``.edgeflow/bench_sizer/``). Speeds are measured, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sizer.md"
OUT_DIR = ROOT / ".edgeflow" / "bench_sizer"


def _inputs(n_bars: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    from configs.settings import load_config
    from pipelines.data.synthetic import generate_bars
    from pipelines.features import featurize
    from pipelines.strategies import compute_signals

    s = load_config("demo")
    syn = s.data.synthetic
    if n_bars is not None:
        syn = syn.model_copy(update={"n_bars": n_bars})
    bars = generate_bars(syn, s.seed)
    return bars, featurize(bars).frame, compute_signals(bars), s.seed


def bench_env(data: object, steps: int = 50_000) -> dict[str, float]:
    """Raw ``SizingEnv.step`` and a 16-env DummyVecEnv, random actions precomputed."""
    from configs.sizer import SizerConfig
    from pipelines.models.sizer.train import make_env

    cfg = SizerConfig()
    vec = make_env(data, cfg)  # type: ignore[arg-type]
    env = vec.envs[0]
    env.reset(seed=0)
    acts = np.random.default_rng(0).uniform(-1, 1, (steps, 1)).astype(np.float32)
    t0 = time.perf_counter()
    for a in acts:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    single = steps / (time.perf_counter() - t0)
    vec.seed(0)
    vec.reset()
    n_vec = steps // cfg.n_envs
    vacts = np.random.default_rng(1).uniform(-1, 1, (n_vec, cfg.n_envs, 1)).astype(np.float32)
    t0 = time.perf_counter()
    for a in vacts:
        vec.step(a)
    vectorized = n_vec * cfg.n_envs / (time.perf_counter() - t0)
    return {"env_single": single, "env_vec16": vectorized}


def bench_training(data: object, steps: int, threads: int) -> dict[str, float]:
    """Steps/s of ``learn`` for plain PPO and CVaR-PPO with the default sizer config."""
    from stable_baselines3 import PPO

    from configs.sizer import SizerConfig
    from pipelines.models.sizer.cppo import CVaRPPO
    from pipelines.models.sizer.train import _ppo_kwargs, make_env, torch_threads

    cfg = SizerConfig()
    out = {}
    with torch_threads(threads):
        for name, cls, extra in (
            ("ppo", PPO, {}),
            ("cvar_ppo", CVaRPPO, {"cvar_bound": 5.0, "lambda_lr": cfg.lambda_lr}),
        ):
            model = cls("MlpPolicy", make_env(data, cfg), **_ppo_kwargs(cfg, 0), **extra)  # type: ignore[arg-type]
            t0 = time.perf_counter()
            model.learn(steps)
            out[f"train_{name}_{threads}t"] = model.num_timesteps / (time.perf_counter() - t0)
    return out


def bench_latency(data: object, repeats: int = 2000) -> dict[str, float]:
    """Median single-row latency: onnxruntime graph vs SB3 ``predict`` vs torch eager."""
    from stable_baselines3 import PPO

    from configs.sizer import SizerConfig
    from pipelines.export.onnx import make_session
    from pipelines.models.sizer.export import OnnxSizer, export_onnx
    from pipelines.models.sizer.train import _ppo_kwargs, make_env

    cfg = SizerConfig()
    model = PPO("MlpPolicy", make_env(data, cfg), **_ppo_kwargs(cfg, 0))  # type: ignore[arg-type]
    scaler = data.scaler  # type: ignore[attr-defined]
    raw = data.raw_obs(data.holdout)[:repeats]  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, scaler, Path(tmp) / "sizer.onnx")
        sess = make_session(path)
        module = OnnxSizer(model, scaler).eval()

        def timed(fn: object) -> float:
            ts = []
            for row in raw:
                x = row[None, :]
                t0 = time.perf_counter_ns()
                fn(x)  # type: ignore[operator]
                ts.append(time.perf_counter_ns() - t0)
            return float(np.median(ts)) / 1000.0

        with torch.no_grad():
            res = {
                "lat_onnx_us": timed(lambda x: sess.run(["multiplier"], {"observation": x})),
                "lat_sb3_us": timed(
                    lambda x: model.predict(scaler.transform(x), deterministic=True)
                ),
                "lat_torch_us": timed(lambda x: module(torch.from_numpy(x))),
            }
    return res


def demo_run(timesteps: int | None) -> tuple[object, float]:
    from configs.settings import load_config
    from pipelines.models.specs import SPECS, train_one

    bars, features, signals, seed = _inputs()
    cfg = load_config("demo").sizer
    if timesteps is not None:
        cfg = cfg.model_copy(update={"total_timesteps": timesteps})
    t0 = time.perf_counter()
    outcome = train_one(SPECS["sizer"], bars, features, cfg, seed, OUT_DIR, signals=signals)
    return outcome, time.perf_counter() - t0


def constant_reference(multiplier: float) -> dict[str, float]:
    """Held-out figures of a constant multiplier on the demo's sized arm (a reference only)."""
    from configs.settings import load_config
    from pipelines.models.sizer.evaluate import run_sizer, sizer_metrics
    from pipelines.models.sizer.train import prepare_data

    bars, features, signals, _ = _inputs()
    cfg = load_config("demo").sizer
    data = prepare_data(bars, features, signals, cfg)
    run = run_sizer(data.holdout, np.full(len(data.holdout), multiplier), cfg.cost_bps * 1e-4)
    return sizer_metrics(run, data.ann_factor, cfg.cvar_alpha)


def _fmt(v: float) -> str:
    return f"{v:,.4f}" if abs(v) < 100 else f"{v:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timesteps", type=int, default=None, help="demo training budget")
    parser.add_argument("--bench-steps", type=int, default=20_000, help="steps per train bench")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()

    from configs.settings import load_config
    from pipelines.models.sizer.train import prepare_data

    load0 = os.getloadavg()[0]
    bars, features, signals, _ = _inputs()
    data = prepare_data(bars, features, signals, load_config("demo").sizer)
    figures: dict[str, float] = {}
    figures.update(bench_env(data))
    for threads in (1, 2):
        figures.update(bench_training(data, args.bench_steps, threads))
    figures.update(bench_latency(data))
    for k, v in figures.items():
        print(f"{k}: {v:,.1f}")

    lines = [
        "## Sizer (CVaR-PPO)",
        "",
        f"- Command: `.venv/bin/python benchmarks/bench_sizer.py"
        f"{' --timesteps ' + str(args.timesteps) if args.timesteps else ''}`",
        f"- Machine: 2-core x86_64 CPU, no GPU (none lent to this session), Python "
        f"{platform.python_version()}, torch {torch.__version__}; date {dt.date.today()}; "
        f"1-min load average {load0:.1f} at start (cores shared with other jobs: absolute "
        "speeds are inflated when it is > 2)",
        f"- Data: demo profile, {bars['symbol'].nunique()} synthetic hourly symbols x "
        f"{len(bars) // bars['symbol'].nunique():,} bars, seed 7",
        "",
        "| measure | value |",
        "|---|---|",
        f"| `SizingEnv.step`, one env | {figures['env_single']:,.0f} steps/s |",
        f"| 16-env `DummyVecEnv.step` | {figures['env_vec16']:,.0f} env-steps/s |",
    ]
    for t in (1, 2):
        lines.append(
            f"| training, plain PPO, {t} torch thread(s) | {figures[f'train_ppo_{t}t']:,.0f} "
            "steps/s |"
        )
        lines.append(
            f"| training, CVaR-PPO, {t} torch thread(s) | "
            f"{figures[f'train_cvar_ppo_{t}t']:,.0f} steps/s |"
        )
    lines += [
        f"| single-row latency, onnxruntime (1 thread) | {figures['lat_onnx_us']:.1f} µs median |",
        f"| single-row latency, torch eager actor | {figures['lat_torch_us']:.1f} µs median |",
        f"| single-row latency, SB3 `predict(deterministic=True)` | "
        f"{figures['lat_sb3_us']:.1f} µs median |",
        "",
        "No GPU figure: this session was not lent a device machine; nothing requires one.",
    ]

    if not args.skip_demo:
        outcome, seconds = demo_run(args.timesteps)
        m = outcome.metrics  # type: ignore[attr-defined]
        table = pd.read_csv(outcome.artifacts["holdout_metrics"])  # type: ignore[attr-defined]
        traj = pd.read_csv(outcome.artifacts["lambda_trajectory"])  # type: ignore[attr-defined]
        lines += [
            "",
            f"### Demo run: `train_one(SPECS['sizer'], ...)` on the demo profile "
            f"({seconds:.1f} s wall, both "
            f"trainings of {int(outcome.params['total_timesteps']):,} steps each)",  # type: ignore[attr-defined]
            "",
            f"Arm sized: `{outcome.params['arm']}` (best train-span Sharpe). Held-out span: "  # type: ignore[attr-defined]
            f"{int(m['eval/holdout_rows']):,} rows. Annualization: {m['eval/ann_factor']:,.0f} "
            "periods/year (1 h bars on a 365.25-day, round-the-clock calendar).",
            "",
            "| sizer | " + " | ".join(table.columns[1:]) + " |",
            "|---|" + "---|" * (len(table.columns) - 1),
        ]
        for _, row in table.iterrows():
            lines.append(
                f"| {row['sizer']} | " + " | ".join(_fmt(float(v)) for v in row.iloc[1:]) + " |"
            )
        lines += [
            "",
            "Constant-multiplier references (not trained; CVaR scales with leverage, Sharpe "
            "does not, so these show how much of the CVaR cut is plain de-levering):",
            "",
            "| constant sizer | sharpe | cvar_bar | CVaR cut vs fixed 1.0x |",
            "|---|---|---|---|",
        ]
        mean_m = float(m["holdout/mean_multiplier"])
        for label, c in (("0.8x", 0.8), (f"{mean_m:.3f}x (CVaR-PPO's mean multiplier)", mean_m)):
            ref = constant_reference(c)
            lines.append(
                f"| {label} | {ref['sharpe']:.4f} | {ref['cvar_bar']:.4f} | "
                f"{1 - ref['cvar_bar'] / m['baseline/fixed_1x/cvar_bar']:.1%} |"
            )
        lines += ["", "Gates (the sizer is published only if all pass):", ""]
        for g in outcome.gates:  # type: ignore[attr-defined]
            lines.append(
                f"- {g.name}: {g.value:.4f} vs threshold {g.threshold:.4f} -> "
                f"{'PASS' if g.passed else 'FAIL'}"
            )
        lines += [
            "",
            f"ONNX parity vs SB3 `predict(deterministic=True)`: max |diff| "
            f"{outcome.onnx_max_abs_diff:.2e} on the held-out rows.",  # type: ignore[attr-defined]
            "",
            f"Lambda trajectory (every 5th update; VaR/CVaR of {int(outcome.params['window'])}-bar "  # type: ignore[attr-defined]
            "window loss in the rollout, fraction of capital):",
            "",
            "| update | lambda | VaR | CVaR | bound | tail paths |",
            "|---|---|---|---|---|---|",
        ]
        for _, r in traj.iloc[[*range(0, len(traj), 5), len(traj) - 1]].iterrows():
            lines.append(
                f"| {int(r['update'])} | {r['lambda']:.3f} | {r['var']:.4f} | {r['cvar']:.4f} | "
                f"{r['bound']:.4f} | {int(r['n_tail'])}/{int(r['n_paths'])} |"
            )
        lines += [
            "",
            f"Plots: `{OUT_DIR.relative_to(ROOT)}/equity_curves.png`, "
            f"`{OUT_DIR.relative_to(ROOT)}/lambda_trajectory.png`.",
        ]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
