"""``edgeflow runs`` lists a collect run as what it was, not as a run that wrote no summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from configs import load_config
from flows.cli.app import main
from flows.collect import COLLECT_RECORD, run_collect

TINY = Path(__file__).resolve().parents[1] / "e2e" / "tiny.yaml"


def test_a_collect_run_is_listed_with_what_it_checked_and_added(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, prefect_api: None
) -> None:
    wd = tmp_path / "wd"
    settings = load_config(
        TINY, overrides={"workdir": str(wd), "data.synthetic.n_bars": 700}, environ={}
    )
    summary = run_collect(settings)  # a real collect flow run, as the deployment runs it
    (folder,) = (wd / "runs").iterdir()
    checks = json.loads((folder / "data_checks.json").read_text(encoding="utf-8"))
    record = json.loads((folder / COLLECT_RECORD).read_text(encoding="utf-8"))
    assert record["kind"] == "collect" and record["rows_added"] == summary["rows_added"] > 0

    assert main(["runs", "-w", str(wd), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "collected" and row["report"] is None
    want = (
        f"collect: {checks['rows_in']} rows checked, {summary['rows_added']} new, "
        f"0 quarantined; {summary['bars']} bars, {summary['feature_rows']} feature rows"
    )
    assert row["collect"] == want
    assert main(["runs", "-w", str(wd)]) == 0
    out = capsys.readouterr().out
    assert f"{folder.name}  " in out and "collected" in out and f"    {want}" in out
    assert "no summary" not in out and "report: -" not in out

    # a run stopped after its checks (only data_checks.json) still wrote no summary
    stopped = wd / "runs" / "20200101T000000000000Z"
    stopped.mkdir()
    shutil.copyfile(folder / "data_checks.json", stopped / "data_checks.json")
    assert main(["runs", "-w", str(wd), "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[stopped.name]["status"].startswith("no summary")
    assert rows[stopped.name]["collect"] is None
