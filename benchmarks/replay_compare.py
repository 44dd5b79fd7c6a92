"""Are two ``edgeflow replay`` runs the same replay? Diffs everything a replay reports.

Run: ``.venv/bin/python benchmarks/replay_compare.py SUMMARY_A.json SUMMARY_B.json``
(each the JSON ``edgeflow replay`` printed; its workdir must still exist).

A change that makes the replay faster must leave its results alone, so this compares, and
exits 1 on the first difference it lists:

- the summary: verdicts, CIs, per-cycle figures, versions, trainings (paths left out: the two
  runs live in different workdirs);
- ``replay_cycles.csv`` and ``replay_decisions.parquet`` (every scored decision);
- the live engine's events (decisions and outcomes), as a sorted list: which file an event
  lands in may differ, the events may not;
- the model store: the bytes of every published payload (ONNX, recommendation JSON) per
  model and version (manifests and signatures carry times and are left out, and so are
  the JSON payloads' ``generated_at`` stamps);
- the ONNX bytes of every candidate the trainings exported to MLflow (as a sorted list of
  ``(file name, sha256)``: MLflow's run ids are random).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

#: Summary keys that hold paths of the run's own workdir.
PATH_KEYS = ("plot", "report", "table", "events", "training_workdir")


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in PATH_KEYS}


def _events(folder: Path) -> list[str]:
    out: list[str] = []
    for f in folder.rglob("*.jsonl.gz"):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            out.extend(json.dumps(json.loads(line), sort_keys=True) for line in fh if line.strip())
    return sorted(out)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _undated(doc: Any) -> Any:
    """A JSON document without its ``generated_at`` stamps (the wall clock of the run)."""
    if isinstance(doc, dict):
        return {k: _undated(v) for k, v in doc.items() if k != "generated_at"}
    if isinstance(doc, list):
        return [_undated(v) for v in doc]
    return doc


def _payload(path: Path) -> str:
    if path.suffix == ".json":
        doc = _undated(json.loads(path.read_text(encoding="utf-8")))
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return _sha(path)


def _published(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store)): _payload(p)
        for p in sorted(store.glob("*/v*/*"))
        if p.is_file() and not p.name.startswith("manifest.json")
    }


def _candidates(work: Path) -> list[tuple[str, str]]:
    return sorted((p.name, _sha(p)) for p in (work / "mlartifacts").rglob("*.onnx"))


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between two replays' results (empty: the same replay)."""
    out = []
    if _summary(a) != _summary(b):
        keys = sorted(k for k in _summary(a) | _summary(b) if a.get(k) != b.get(k))
        out.append(f"summary differs in {keys}")
    ra, rb = Path(a["report"]).parent, Path(b["report"]).parent
    ta, tb = pd.read_csv(ra / "replay_cycles.csv"), pd.read_csv(rb / "replay_cycles.csv")
    if not ta.equals(tb):
        out.append("replay_cycles.csv differs")
    da = pd.read_parquet(ra / "replay_decisions.parquet")
    db = pd.read_parquet(rb / "replay_decisions.parquet")
    if not da.equals(db):
        out.append("replay_decisions.parquet differs")
    if _events(Path(a["events"])) != _events(Path(b["events"])):
        out.append("the live engine's events differ")
    wa, wb = Path(a["training_workdir"]), Path(b["training_workdir"])
    if _published(wa / "store") != _published(wb / "store"):
        out.append("published payloads differ")
    if _candidates(wa) != _candidates(wb):
        out.append("exported candidate ONNX bytes differ")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (args.a, args.b))
    diffs = differences(a, b)
    for line in diffs:
        print(line)
    if not diffs:
        n = sum(c["decisions"] for c in a["cycles"])
        print(f"identical: {len(a['cycles'])} cycles, {n} scored decisions, same artefacts")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
