"""The real training flow on tiny budgets: Prefect, MLflow (sqlite), the signed file store.

Gate thresholds are set per test so the outcome of each gate is known in advance: the regime
model is made to pass, the sizer to fail, and the flow's handling of both is what is checked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from configs import Settings, load_config
from flows.training import run_training, store_uri
from pipelines.models.specs import MODEL_NAMES
from pipelines.recommendations import check_bounds
from pipelines.registry.errors import VerificationError
from pipelines.registry.keys import keyring_from_env
from pipelines.registry.store import open_store
from pipelines.registry.verify import verify_model
from pipelines.workdir import WorkdirLayout

TINY = Path(__file__).with_name("tiny.yaml")
PASS_REGIME = {"regime.min_log_loss_lift": -10.0, "regime.coverage_tolerance": 0.99}
FAIL_SIZER = {"sizer.gate_sharpe_tolerance": -100.0}


def _settings(workdir: Path, **overrides: Any) -> Settings:
    return load_config(TINY, overrides={"workdir": str(workdir), **overrides}, environ={})


@pytest.fixture(scope="module")
def first_run(
    tmp_path_factory: pytest.TempPathFactory, prefect_api: None
) -> tuple[Settings, dict[str, Any]]:
    settings = _settings(tmp_path_factory.mktemp("e2e"), **PASS_REGIME, **FAIL_SIZER)
    return settings, run_training(settings)


def _keyring(settings: Settings) -> Any:
    return keyring_from_env({}, settings, settings.workdir, create_dev_key=False)


def test_passing_model_is_published_and_failing_one_is_not(
    first_run: tuple[Settings, dict[str, Any]],
) -> None:
    settings, summary = first_run
    models = summary["models"]
    assert models["regime"]["status"] == "published"
    assert models["sizer"]["status"] == "blocked"
    # the champion (the bot's fallback) stays, and the run says why; the learned sizer could
    # not even be the challenger: its own gate failed, as the slot's candidate table records
    assert models["sizer"]["detail"].startswith("champion fallback stays"), models["sizer"]
    run_dir = Path(settings.workdir) / "runs" / summary["run_id"]
    table = pd.read_csv(run_dir / "sizer" / "champion.csv")
    why = table.set_index("candidate").loc["cvar_ppo", "why_not"]
    assert "sharpe_vs_constant" in why, table
    # the meta-labeler's slot runs its champion stage too: the model and the per-arm filter
    meta = pd.read_csv(run_dir / "metalabel" / "champion.csv")
    assert list(meta["candidate"]) == ["lightgbm", "per_arm_filter", "champion: fallback"]
    store = open_store(store_uri(settings))
    live = verify_model(store, "regime", _keyring(settings))
    assert live.version == models["regime"]["version"]
    gates = {g["name"]: g for g in live.manifest["gates"]}
    assert gates["onnx_max_abs_diff"]["passed"] and gates["onnx_max_abs_diff"]["value"] <= 1e-5
    assert "onnx_max_abs_diff" in live.manifest["metrics"]
    assert live.manifest["lineage"]["data_hash"] == summary["data_hash"]
    with pytest.raises(VerificationError):
        verify_model(store, "sizer", _keyring(settings))
    # the flow publishes with its own publisher state, which the heartbeat and CLI share
    assert any((Path(settings.workdir) / "publisher-state").rglob("*"))
    rec = verify_model(store, "recommendation", _keyring(settings))
    doc = json.loads(rec.files["latest_recommendation.json"])
    check_bounds(doc)
    assert set(doc["recommendations"]) == {"ema_cross", "mean_reversion", "breakout", "momentum"}
    assert "not used" in doc["sources"]["sizer"]  # the sizer was blocked, so it contributed nothing
    # exits: every family's choice, its candidate and reason, in every cell
    assert set(doc["family_exits"]) == set(doc["recommendations"])
    for cells in doc["recommendations"].values():
        for cell in cells.values():
            assert cell["exits"]["candidate"] in {"live", "grid", "heuristic", "qlearn"}
            assert cell["exits"]["reason"]


def test_mlflow_holds_one_parent_run_with_a_nested_run_per_model(
    first_run: tuple[Settings, dict[str, Any]],
) -> None:
    _, summary = first_run
    client = MlflowClient(summary["mlflow_tracking_uri"])
    parent = client.get_run(summary["mlflow_run_id"])
    assert parent.data.params["data.synthetic.n_bars"] == "1500"
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    by_model = {r.data.tags["edgeflow.model"]: r for r in children}
    assert set(by_model) == set(MODEL_NAMES)
    assert by_model["regime"].data.tags["edgeflow.status"] == "published"
    assert by_model["sizer"].data.tags["edgeflow.status"] == "blocked"
    for run in by_model.values():
        assert run.data.metrics["onnx_max_abs_diff"] <= 1e-5
        assert run.data.metrics["onnx/pyfunc_max_abs_diff"] <= 1e-6
        # the model's run spans its training (it spanned only its logging: 2.5 s of 107 s)
        trained_ms = 1000 * sum(v for k, v in run.data.metrics.items() if k.startswith("time/"))
        assert run.info.end_time - run.info.start_time >= trained_ms, run.data.tags
        assert run.info.start_time >= parent.info.start_time
    kind = client.get_experiment(parent.info.experiment_id).tags.get("mlflow.experimentKind")
    assert kind == "custom_model_development"
    champion = client.get_model_version_by_alias("edgeflow-tiny-regime", "champion")
    assert champion.run_id == by_model["regime"].info.run_id
    # every registered version says what became of it, with the run's one-line reason
    assert champion.tags["edgeflow.status"] == "published"
    assert champion.tags["edgeflow.reason"].startswith(
        f"version {summary['models']['regime']['version']}"
    )
    (sizer,) = client.search_model_versions("name = 'edgeflow-tiny-sizer'")
    assert sizer.tags["edgeflow.status"] == "blocked"
    assert sizer.tags["edgeflow.reason"].startswith("champion fallback stays")
    with pytest.raises(Exception, match="alias"):
        client.get_model_version_by_alias("edgeflow-tiny-sizer", "champion")
    # a slot with a champion stage registers its challenger (not always the learned model)
    # under the challenger alias, tagged with the candidate and its kind; champion stays put
    for slot in ("bandit", "sizer", "metalabel"):
        challenger = client.get_model_version_by_alias(f"edgeflow-tiny-{slot}", "challenger")
        assert challenger.run_id == by_model[slot].info.run_id
        assert challenger.tags["edgeflow.kind"] in ("learned", "rule")
        assert by_model[slot].data.tags["edgeflow.decision"].startswith("champion fallback")
        assert (
            challenger.tags["edgeflow.candidate"] in by_model[slot].data.tags["edgeflow.challenger"]
        )


def test_report_shows_gates_and_every_plot(first_run: tuple[Settings, dict[str, Any]]) -> None:
    _, summary = first_run
    page = Path(summary["report"])
    text = page.read_text()
    # names may wrap after _ and / (<wbr>), never inside a word
    assert "<h2>Gates</h2>" in text and "sharpe_vs_constant" in text.replace("<wbr>", "")
    images = re.findall(r'src="(img/[^"]+)"', text)
    assert len(images) >= 6
    for src in images:
        assert (page.parent / src).stat().st_size > 1000, src


def test_no_new_data_means_no_training(first_run: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = first_run
    again = run_training(
        settings.model_copy(
            update={"training": settings.training.model_copy(update={"min_new_bars": 24})}
        )
    )
    assert again["status"] == "skipped"
    assert "training.min_new_bars=24" in again["reason"]


def test_failed_gate_leaves_previous_version_live_on_a_dask_cluster(
    first_run: tuple[Settings, dict[str, Any]],
) -> None:
    """Forced retrain on a local 2-worker Dask cluster; the regime gate now fails."""
    first_settings, first = first_run
    settings = _settings(
        first_settings.workdir,
        **{**PASS_REGIME, "regime.min_log_loss_lift": 10.0},
        **FAIL_SIZER,
        **{"training.task_runner": "dask", "training.dask_workers": 2},
    )
    summary = run_training(settings, force=True)
    assert summary["models"]["regime"]["status"] == "blocked"
    # never blocked whole: the recommendation is published with family-level values and
    # names only the models that passed as its sources
    rec = summary["models"]["recommendation"]
    assert rec["status"] == "published", rec
    assert "regime" not in rec["detail"].split("(from: ", 1)[1], rec
    live = verify_model(open_store(store_uri(settings)), "regime", _keyring(settings))
    assert live.version == first["models"]["regime"]["version"]
    state = json.loads(WorkdirLayout(settings.workdir).last_training.read_text())
    published_now = any(m["status"] == "published" for m in summary["models"].values())
    assert (state["run_id"] == summary["run_id"]) == published_now


def test_cli_verify_passes_on_the_published_store(
    first_run: tuple[Settings, dict[str, Any]],
) -> None:
    settings, _ = first_run
    cli = Path(sys.executable).with_name("edgeflow")
    out = subprocess.run(
        [str(cli), "verify", store_uri(settings), "--model", "regime"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(settings.workdir),
            "EDGEFLOW_WORKDIR": str(settings.workdir),
        },
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "regime" in out.stdout


def test_flow_states_tell_the_truth(
    first_run: tuple[Settings, dict[str, Any]], tmp_path: Path
) -> None:
    """Rejected input ends Failed, a run with nothing new ends Skipped, a good run Completed
    with the counts; per-model settle tasks are named Published / Blocked; the summary, gate
    table and report link are Prefect artifacts of the run."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        TaskRunFilter,
        TaskRunFilterName,
    )

    from flows.training import with_task_runner

    settings, _ = first_run
    KEYS = {"edgeflow-run-summary", "edgeflow-gates", "edgeflow-report"}
    bad = Path(__file__).parents[1] / "data" / "bad" / "inf_value.csv"
    rejected = _settings(tmp_path / "bad", **{"data.source": "files", "data.path": str(bad)})
    state = with_task_runner(rejected)(rejected, return_state=True)
    assert state.is_failed() and "rejected input" in str(state.message)
    quiet = settings.model_copy(
        update={"training": settings.training.model_copy(update={"min_new_bars": 24})}
    )
    state = with_task_runner(quiet)(quiet, return_state=True)
    assert state.is_completed() and state.name == "Skipped"

    async def artifacts_and_states() -> tuple[set[str], set[tuple[str, str]]]:
        async with get_client() as client:
            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(KEYS)))
            )
            runs = await client.read_task_runs(
                task_run_filter=TaskRunFilter(
                    name=TaskRunFilterName(
                        any_=["settle_regime", "settle_sizer", "train_regime", "train_sizer"]
                    )
                )
            )
        return {a.key for a in arts if a.key}, {(r.name, r.state.name) for r in runs if r.state}

    keys, states = asyncio.run(artifacts_and_states())
    assert keys == KEYS
    assert ("settle_regime", "Published") in states
    assert ("settle_sizer", "Blocked") in states
    # training ends before the publish: a model that passed its gates is named Passed
    assert ("train_regime", "Passed") in states
    assert ("train_sizer", "Blocked") in states


def test_too_little_history_skips_every_model_with_one_line(
    tmp_path: Path, prefect_api: None
) -> None:
    """A few hundred bars: each model is skipped naming its minimum and what it had; nothing
    is published, the run is not a failure but says it skipped (as the CLI's pre-check does),
    and no model's trainer ran."""
    settings = _settings(tmp_path, **{"data.synthetic.n_bars": 400})
    summary = run_training(settings)
    assert summary["status"] == "skipped"
    models = summary["models"]
    assert set(models) == set(MODEL_NAMES)
    for name, outcome in models.items():
        assert outcome["status"] == "skipped", outcome
        assert outcome["detail"].startswith(f"{name}: needs >= ") and "got " in outcome["detail"]
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("LATEST"))


def test_a_crash_mid_run_leaves_the_mlflow_run_failed_not_running(
    tmp_path: Path, prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception (or Ctrl-C) after MLflow's parent run started ends it FAILED."""
    import flows.training

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the machine fell over")

    monkeypatch.setattr(flows.training, "compute_arm_signals", crash)
    settings = _settings(tmp_path / "wd")
    with pytest.raises(RuntimeError, match="the machine fell over"):
        run_training(settings)
    client = MlflowClient(tracking_uri=f"sqlite:///{WorkdirLayout(settings.workdir).mlflow_db}")
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
