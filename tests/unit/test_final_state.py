"""The flow run's final state says what became of the models."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.evaluation.gates import Gate
from pipelines.export.onnx import GraphSpec, OnnxExport
from pipelines.models.base import ModelResult
from tasks.context import ModelOutcome
from tasks.reporting import final_state, run_status
from tasks.train import BLOCKED, PASSED, Trained, judged_state


def _outcomes(*statuses: str) -> dict[str, ModelOutcome]:
    return {f"m{i}": ModelOutcome(f"m{i}", s, s) for i, s in enumerate(statuses)}  # type: ignore[arg-type]


def test_every_model_skipped_is_a_skipped_run() -> None:
    state = final_state({"status": "skipped"}, _outcomes("skipped", "skipped"))
    assert state.is_completed() and state.name == "Skipped"
    assert state.message == "every model skipped (0 published, 0 blocked, 2 skipped, 0 failed)"


def test_failed_and_published_runs() -> None:
    failed = final_state({"status": "failed"}, _outcomes("published", "failed"))
    assert failed.is_failed() and failed.message.startswith("m1 failed")
    ok = final_state({"status": "published"}, _outcomes("published", "blocked", "skipped"))
    assert ok.is_completed() and ok.name == "Published"
    assert ok.message == "1 published, 1 blocked, 1 skipped, 0 failed"


@pytest.mark.parametrize(
    ("statuses", "want"),
    [
        (("published", "failed"), "failed"),
        (("skipped", "skipped"), "skipped"),
        (("blocked", "skipped"), "blocked"),
        (("blocked", "published"), "published"),
        (("skipped", "published"), "published"),
    ],
)
def test_one_status_word_for_the_run(statuses: tuple[str, ...], want: str) -> None:
    """The summary's status is the state's name: a run that shipped no model says blocked,
    never "ok" beside its blocked models."""
    outcomes = _outcomes(*statuses)
    status = run_status(outcomes)
    assert status == want
    assert final_state({"status": status}, outcomes).name.lower() == (
        "failed" if want == "failed" else want
    )


def test_only_the_recommendation_shipped_is_a_blocked_run() -> None:
    outcomes = _outcomes("blocked")
    outcomes["recommendation"] = ModelOutcome("recommendation", "published", "v1")
    assert run_status(outcomes) == "blocked"


def test_a_run_that_shipped_no_model_is_named_blocked() -> None:
    """Green "Completed" beside four blocked models read as success; the name says it."""
    outcomes = _outcomes("blocked", "skipped")
    outcomes["recommendation"] = ModelOutcome("recommendation", "published", "v1")
    state = final_state({"status": run_status(outcomes)}, outcomes)
    assert state.is_completed() and state.name == "Blocked"
    assert (
        state.message == "no model shipped: 1 blocked, 1 skipped; only the recommendation published"
    )


def test_the_recommendation_is_counted_apart_from_the_models() -> None:
    """One model shipped beside the recommendation read "2 published, 3 blocked" in the
    Prefect UI; the recommendation is a parameter file and is named apart, as in the report."""
    outcomes = _outcomes("published", "blocked", "blocked", "blocked")
    outcomes["recommendation"] = ModelOutcome("recommendation", "published", "v1")
    state = final_state({"status": run_status(outcomes)}, outcomes)
    assert state.name == "Published"
    assert state.message == (
        "1 published, 3 blocked, 0 skipped, 0 failed; the recommendation published"
    )


def _trained(*passed: bool) -> Trained:
    gates = [Gate(f"g{i}", 1.0 if ok else -1.0, 0.0, ok) for i, ok in enumerate(passed)]
    export = OnnxExport(Path("m.onnx"), 0.0, GraphSpec((), (), 17))
    return Trained(ModelResult("regime", export, {}, gates), 0, 1)


def test_a_train_task_ends_named_passed_or_blocked_never_plain_completed() -> None:
    """The train task ends before the publish is tried: a model that passed is named Passed
    (its settle task then says Published or Blocked), a model that did not, Blocked with its
    first failing gate. A passed model's train task used to end plain Completed."""
    passed = _trained(True, True)
    state = judged_state("regime", passed)
    assert state.is_completed() and state.name == PASSED == "Passed"
    assert state.message == "regime: passed every gate" and state.result() is passed
    blocked = _trained(True, False)
    state = judged_state("regime", blocked)
    assert state.is_completed() and state.name == BLOCKED == "Blocked"
    assert state.message is not None and state.message.startswith("regime: gate(s) g1 failed")
    assert state.result() is blocked
