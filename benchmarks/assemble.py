"""Assemble BENCHMARKS.md from the sections each benchmark wrote under benchmarks/results/."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = [
    "real",
    "champion",
    "replay",
    "shrinkage",
    "confirmation_power",
    "null",
    "flow",
    "demo",
    "concurrency",
    "refusal",
    "interrupt",
    "features",
    "onnx",
    "scaling",
    "cli",
    "engine",
    "events",
    "generator",
    "data",
    "registry",
    "registry_faults",
    "regime",
    "bandit",
    "sizer",
    "exits",
    "exit_policy",
]
HEADER = """# Benchmarks

Every figure below was produced by the command shown with it, on the machine named with it.
`make bench` re-runs them all and rewrites this file (`benchmarks/assemble.py`). The build
machine is a shared 2-core x86_64 CPU with no GPU: absolute times move with its load, which
each section states. Speed goals are checked here, never by timed assertions in tests.
"""


def main() -> None:
    results = ROOT / "benchmarks" / "results"
    names = ORDER + sorted(p.stem for p in results.glob("*.md") if p.stem not in ORDER)
    parts = [HEADER]
    for name in names:
        path = results / f"{name}.md"
        if path.exists():
            parts.append(path.read_text().strip() + "\n")
    (ROOT / "BENCHMARKS.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
