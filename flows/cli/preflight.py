"""Checks before Prefect starts: the input, the store a run publishes to, too little history.

Each answers in a second or two what the flow would otherwise find after Prefect's server has
started and the trainers have been imported; the flows repeat them (a scheduled run has no
command line). A refusal is one line and exit 2 (``flows.cli.app``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from configs.settings import Settings
    from pipelines.data.precheck import Precheck


def _refuse_mixed_sources(settings: Settings) -> None:
    """Stop before any flow starts when the workdir holds bars of another source.

    The collect stage checks (and records) this too; checking here first answers in a second
    rather than after Prefect has started.
    """
    from pipelines.data.provenance import claim_store, source_fingerprint
    from pipelines.workdir import WorkdirLayout

    fp = source_fingerprint(settings.data, settings.seed, settings.profile, hash_files=False)
    bars = WorkdirLayout(settings.workdir).bars
    claim_store(bars, fp, workdir=settings.workdir, record=False)


def check_input(settings: Settings) -> Precheck | None:
    """Refuse bad input before Prefect starts and the heavy imports load.

    The checks that need no model (provenance, read, schema and values, history per symbol)
    take a second or two; the flow repeats them (a scheduled run has no command line). A bad
    input raises DataError (one line, exit 2). Returns None for a source only the flow reads
    (S3), after refusing a store that holds another source's bars.
    """
    from datetime import UTC, datetime

    from pipelines.data.precheck import precheck_input
    from pipelines.workdir import WorkdirLayout, new_run_id

    layout = WorkdirLayout(settings.workdir)
    run_dir = layout.run_dir(new_run_id())
    found = precheck_input(
        settings.data,
        settings.seed,
        settings.profile,
        layout.bars,
        layout.root,
        now=datetime.now(UTC),
        quarantine_dir=run_dir / "quarantine",
    )
    if found is None:  # a source only the flow reads (S3): still refuse a mixed store now
        _refuse_mixed_sources(settings)
    return found


def precheck(settings: Settings) -> dict[str, Any] | None:
    """:func:`check_input`, then stop a run that every model would skip.

    A run with too little history for every model returns its summary (status ``skipped``,
    exit 0: the input is fine, there is just not enough of it yet). Returns None when the
    flow should run.
    """
    from pipelines.data.precheck import MIN_FEATURE_ROWS

    found = check_input(settings)
    if found is None or found.skip_reason is None:
        return None
    return {
        "status": "skipped",
        "reason": found.skip_reason,
        "feature_rows": found.feature_rows,
        "models": {name: {"status": "skipped"} for name in MIN_FEATURE_ROWS},
    }


def check_store_uri(settings: Settings) -> None:
    """Refuse a store URI edgeflow cannot open before the flow starts, not after training."""
    if settings.registry.store is None:
        return
    from pipelines.registry import RegistryError, open_store

    try:
        open_store(settings.registry.store, endpoint_url=settings.registry.s3_endpoint_url)
    except RegistryError as exc:
        raise typer.BadParameter(str(exc), param_hint="--store / registry.store") from None
