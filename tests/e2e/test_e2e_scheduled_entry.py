"""The deployments' entry flows after the demo filled a workdir: refused runs end in one line.

``prefect deployment run .../training`` after ``make demo`` in the same workdir was refused
(another profile's bars) and said only "1/1 states failed." on the run it printed, with a
``TypeError: Unexpected result for failed state`` in the worker's log, while the subflow and
``claim_bar_store`` ended Completed after logging the refusal at ERROR, and an empty MLflow
experiment stayed behind. These run the deployments' own entry flows on the real local API.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from mlflow import MlflowClient

from configs import load_config
from flows.collect import collect_flow, collect_stage
from flows.training import scheduled_training
from pipelines.workdir import WorkdirLayout

TINY = Path(__file__).with_name("tiny.yaml")


def _profile(tmp: Path, name: str, symbols: str) -> Path:
    """A tiny profile file of its own name and bar source (as demo.yaml and default.yaml are)."""
    text = TINY.read_text().replace("profile: tiny", f"profile: {name}")
    text = text.replace("[SYN1, SYN2]", symbols).replace("n_bars: 1500", "n_bars: 600")
    path = tmp / f"{name}.yaml"
    path.write_text(text.replace("edgeflow-tiny", f"edgeflow-{name}"))
    return path


def _runs_below(parent: UUID) -> tuple[list[Any], list[Any]]:
    """The subflow runs of ``parent`` and the task runs of every run in that tree."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )

    async def read() -> tuple[list[Any], list[Any]]:
        async with get_client() as client:
            subs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
                )
            )
            ids = [parent, *(s.id for s in subs)]
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
            )
        return subs, tasks

    return asyncio.run(read())


def test_refused_deployment_runs_end_with_the_one_line(tmp_path: Path, prefect_api: None) -> None:
    workdir = tmp_path / "wd"
    demo = load_config(_profile(tmp_path, "demo", "[SYN1]"), overrides={"workdir": str(workdir)})
    assert collect_stage(demo, "demo-run", return_state=True).is_completed()
    other = _profile(tmp_path, "other", "[SYN1, SYN2]")

    state = scheduled_training(str(other), str(workdir), return_state=True)
    assert state.is_failed(), state
    message = str(state.message)
    assert message.startswith("rejected input: ") and "profile 'demo'" in message
    assert "\n" not in message and "states failed" not in message
    subs, tasks = _runs_below(state.state_details.flow_run_id)
    assert [(s.state.type.value, s.state.message) for s in subs] == [("FAILED", message)]
    claims = [t.state for t in tasks if t.name.startswith("claim_bar_store")]
    assert [(c.type.value, c.name) for c in claims] == [("FAILED", "Rejected")]
    assert "profile 'demo'" in str(claims[0].message)
    # refused before anything was tracked: no experiment of the refused profile
    db = WorkdirLayout(workdir).mlflow_db
    names = [e.name for e in MlflowClient(f"sqlite:///{db}").search_experiments()]
    assert "edgeflow-other" not in names

    collected = collect_flow(str(other), str(workdir), return_state=True)
    assert collected.is_failed() and collected.name == "Rejected"
    assert "profile 'demo'" in str(collected.message) and "\n" not in str(collected.message)
    subs, _ = _runs_below(collected.state_details.flow_run_id)
    assert [(s.state.type.value, s.state.name) for s in subs] == [("FAILED", "Rejected")]


@pytest.mark.parametrize("entry", [scheduled_training, collect_flow])
def test_a_deployment_without_a_workdir_writes_its_profiles_own(
    entry: Any, tmp_path: Path, prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployments pass no workdir: the config file's own is used, not ``.edgeflow``."""
    import flows.collect

    seen: list[Path] = []
    real = flows.collect.deployment_settings

    def spy(config: str, workdir: str | None) -> Any:
        settings = real(config, workdir)
        seen.append(settings.workdir)
        raise RuntimeError("stop here")

    monkeypatch.setattr(flows.collect, "deployment_settings", spy)
    monkeypatch.setattr("flows.training.deployment_settings", spy)
    config = tmp_path / "p.yaml"
    config.write_text(f"profile: p\nworkdir: {tmp_path / 'own'}\n")
    state = entry(str(config), return_state=True)
    assert state.is_failed() and seen == [tmp_path / "own"]
