"""The flow run's final state says what became of the models."""

from __future__ import annotations

from tasks.context import ModelOutcome
from tasks.reporting import final_state


def _outcomes(*statuses: str) -> dict[str, ModelOutcome]:
    return {f"m{i}": ModelOutcome(f"m{i}", s, s) for i, s in enumerate(statuses)}  # type: ignore[arg-type]


def test_every_model_skipped_is_a_skipped_run() -> None:
    state = final_state({"status": "skipped"}, _outcomes("skipped", "skipped"))
    assert state.is_completed() and state.name == "Skipped"
    assert state.message == "every model skipped (0 published, 0 blocked, 2 skipped, 0 failed)"


def test_failed_and_ok_runs() -> None:
    failed = final_state({"status": "failed"}, _outcomes("published", "failed"))
    assert failed.is_failed() and failed.message.startswith("m1 failed")
    ok = final_state({"status": "ok"}, _outcomes("published", "blocked", "skipped"))
    assert ok.is_completed() and ok.name == "Completed"
    assert ok.message == "1 published, 1 blocked, 1 skipped, 0 failed"


def test_a_run_that_shipped_no_model_is_named_blocked() -> None:
    """Green "Completed" beside four blocked models read as success; the name says it."""
    outcomes = _outcomes("blocked", "skipped")
    outcomes["recommendation"] = ModelOutcome("recommendation", "published", "v1")
    state = final_state({"status": "ok"}, outcomes)
    assert state.is_completed() and state.name == "Blocked"
    assert (
        state.message == "no model shipped: 1 blocked, 1 skipped; only the recommendation published"
    )
