"""Bandit benchmark: training time on the demo data, ONNX vs torch eager latency, OPE table.

Run: .venv/bin/python benchmarks/bench_bandit.py [--seeds 12]
Writes benchmarks/results/bandit.md. The seed sweep trains on generator seeds 1..N (the demo's
seed among them) with the configured learner and with the previous one, to show how often the
DR gate passes and whether it passes where the true lift is positive.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from configs.settings import Settings, load_config
from pipelines.data.synthetic import generate_bars
from pipelines.evaluation.gates import bandit_gates
from pipelines.export.onnx import make_session, run
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.models.bandit import NeuralBandit
from pipelines.models.bandit.export import export_onnx
from pipelines.models.specs import SPECS, train_one

ROOT = Path(__file__).resolve().parents[1]
ESTS = ("ips", "snips", "dr")
# The learner before target smoothing, stronger weight decay and the 80 % safety level.
PREVIOUS = {"label_window": 1, "weight_decay": 1e-4, "safety_level": 0.9}
POLICIES = ("bandit", "bandit_ts", "beta_ts", "best_arm", "uniform")


def _latency(fn: Callable[[], object], reps: int) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e6


def _sweep(cfg: Settings, seeds: range, tmp: Path) -> list[str]:
    """Per seed and learner: true lift, the exact test-span lift with its CI, and the gates'
    verdict (bps)."""
    lines = [
        "| seed | learner | true lift | exact lift [90% CI] | gates | agree with truth |",
        "|---|---|---|---|---|---|",
    ]
    # passes, agreements, mean lift
    tally: dict[str, list[float]] = {"configured": [0, 0, 0.0], "previous": [0, 0, 0.0]}
    for seed in seeds:
        bars = generate_bars(cfg.data.synthetic, seed)
        feats = featurize(bars).frame
        for learner, update in (("configured", {}), ("previous", PREVIOUS)):
            bc = cfg.bandit.model_copy(update=update)
            m = train_one(SPECS["bandit"], bars, feats, bc, seed, tmp / f"{seed}-{learner}").metrics
            true_lift = (m["truth/bandit"] - m["truth/best_arm"]) * 1e4
            key = "lift/bandit_vs_best_arm/exact"
            passed = all(g.passed for g in bandit_gates(m, bc))
            agrees = passed == (true_lift > 0)
            tally[learner][0] += passed
            tally[learner][1] += agrees
            tally[learner][2] += true_lift / len(seeds)
            lines.append(
                f"| {seed} | {learner} | {true_lift:+.1f} | {m[key] * 1e4:+.1f} "
                f"[{m[key + '_ci_low'] * 1e4:+.1f}, {m[key + '_ci_high'] * 1e4:+.1f}] | "
                f"{'pass' if passed else 'blocked'} | {'yes' if agrees else 'no'} |"
            )
            print(lines[-1], flush=True)
    lines.append("")
    for learner, (n_pass, n_agree, mean_lift) in tally.items():
        lines.append(
            f"- {learner}: mean true lift {mean_lift:+.1f} bps; gate passes on "
            f"{n_pass:.0f}/{len(seeds)} seeds and agrees with the sign of the true lift on "
            f"{n_agree:.0f}/{len(seeds)}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=12, help="sweep seeds 1..N (0: skip)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = load_config("demo")
    bars = generate_bars(cfg.data.synthetic, cfg.seed)
    t0 = time.perf_counter()
    feats = featurize(bars).frame
    feat_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = train_one(SPECS["bandit"], bars, feats, cfg.bandit, cfg.seed, Path(tmp))
        train_s = time.perf_counter() - t0
        # Latency does not depend on the weights: time the same safe-scoring graph, exported
        # from a NeuralBandit fitted briefly here (the trainer keeps no torch handle).
        x = feats[list(FEATURE_NAMES)].to_numpy(np.float32)
        rng = np.random.default_rng(0)
        quick = NeuralBandit(epochs=1, seed=0).fit_full_information(
            x, rng.normal(size=(len(x), 12)), 0
        )
        net = quick.safe_scoring_module(0, m_z := out.metrics["train/safety_z"])
        path = export_onnx(net, x.shape[1], Path(tmp) / "bench.onnx")
        sess = make_session(path)
        torch.set_num_threads(1)
        one, batch = x[:1], x[:1024]
        lat = {
            "onnx_1": _latency(lambda: run(sess, one)[0], 2000),
            "onnx_1024": _latency(lambda: run(sess, batch)[0], 200),
        }
        with torch.no_grad():
            t1, tb = torch.from_numpy(one.copy()), torch.from_numpy(batch.copy())
            lat["torch_1"] = _latency(lambda: net(t1), 2000)
            lat["torch_1024"] = _latency(lambda: net(tb), 200)
        torch.set_num_threads(2)
        sweep = _sweep(cfg, range(1, args.seeds + 1), Path(tmp)) if args.seeds else []
    m = out.metrics
    lines = [
        "## Strategy bandit",
        "",
        "Command: `.venv/bin/python benchmarks/bench_bandit.py`  ",
        f"Machine: 2-core x86_64 CPU, no GPU ({platform.processor() or platform.machine()}); "
        f"date {dt.date.today().isoformat()}; demo profile "
        f"({len(cfg.data.synthetic.symbols)} symbols x {cfg.data.synthetic.n_bars} hourly bars), "
        f"seed {cfg.seed}.",
        "",
        f"- featurize: {feat_s:.2f} s; `train_one(SPECS['bandit'], ...)` end to end: "
        f"{train_s:.1f} s "
        f"(network + posterior fit {m['train/fit_seconds']:.1f} s, "
        f"{int(m['train/epochs_run'])} epochs, {int(m['train/n_decisions'])} train / "
        f"{int(m['holdout/n_decisions'])} held-out decisions)",
        f"- ONNX parity (max abs diff vs torch eval): {out.onnx_max_abs_diff:.2e}",
        f"- training feedback: {cfg.bandit.training_feedback}; default arm "
        f"{out.params['default_arm']}; safe rule z = {m_z:.2f} "
        f"(one-sided {cfg.bandit.safety_level:.0%} x sqrt(horizon)); the bandit leaves the "
        f"default arm on {m['holdout/deviation_share']:.0%} of held-out decisions",
        "",
        "| latency (median, 1 thread) | onnxruntime | torch eager |",
        "|---|---|---|",
        f"| 1 row | {lat['onnx_1']:.1f} µs | {lat['torch_1']:.1f} µs |",
        f"| 1024 rows | {lat['onnx_1024']:.0f} µs | {lat['torch_1024']:.0f} µs |",
        "",
        f"Off-policy estimates on the held-out span, bps per decision, "
        f"{int(cfg.bandit.ci_level * 100)}% moving-block bootstrap CIs; "
        "`true` is the full-information value (synthetic data only).",
        "",
        "| policy | IPS | SNIPS | DR | true |",
        "|---|---|---|---|---|",
    ]

    def cell(key: str) -> str:
        return (
            f"{m[key] * 1e4:.1f} [{m[key + '_ci_low'] * 1e4:.1f}, {m[key + '_ci_high'] * 1e4:.1f}]"
        )

    for p in POLICIES:
        row = " | ".join(cell(f"ope/{p}/{e}") for e in ESTS)
        lines.append(f"| {p} | {row} | {m[f'truth/{p}'] * 1e4:.1f} |")
    row = " | ".join(cell(f"lift/bandit_vs_best_arm/{e}") for e in ESTS)
    lines.append(
        f"| lift bandit - best_arm | {row} | "
        f"{(m['truth/bandit'] - m['truth/best_arm']) * 1e4:.1f} |"
    )
    lines += [
        "",
        f"Oracles (true values): per-bar hindsight {m['truth/oracle_hindsight'] * 1e4:.1f} bps, "
        f"best arm per true regime {m['truth/oracle_regime'] * 1e4:.1f} bps. "
        f"Regret vs the regime oracle: bandit {m['regret/bandit_vs_oracle_regime'] * 1e4:.1f}, "
        f"best arm {m['regret/best_arm_vs_oracle_regime'] * 1e4:.1f}, "
        f"uniform {m['regret/uniform_vs_oracle_regime'] * 1e4:.1f} bps.",
        "",
        "Gates: "
        + ", ".join(
            f"{g.name} = {g.value:.3g} (threshold {g.threshold:.3g}, "
            f"{'passed' if g.passed else 'FAILED'})"
            for g in out.gates
        ),
        "",
    ]
    if sweep:
        lines += [
            f"### Seed sweep (generator seeds 1-{args.seeds}, demo profile otherwise)",
            "",
            f"`previous` = the learner before this change ({PREVIOUS}). True and DR lifts of "
            "the bandit over the best single arm, bps per decision.",
            "",
            *sweep,
            "",
        ]
    text = "\n".join(lines)
    print(text)
    dest = ROOT / "benchmarks" / "results" / "bandit.md"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
