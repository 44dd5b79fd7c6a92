"""Publishing tasks: signed, ordered writes to the model store, then the MLflow alias."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipelines.models.common import Gate
from pipelines.registry.publish import PublishedVersion, publish_model
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store


@task(name="publish_model", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_files(
    store: Store,
    model: str,
    files: Mapping[str, Path | bytes],
    keyring: KeyRing,
    metrics: Mapping[str, float],
    gates: list[Gate],
    lineage: Mapping[str, Any],
    keep_last: int,
) -> PublishedVersion:
    """Files, manifest, signature, then the signed LATEST pointer (the registry's order)."""
    published = publish_model(
        store,
        model,
        dict(files),
        keyring,
        metrics={k: float(v) for k, v in metrics.items()},
        gates=[g.as_dict() for g in gates],
        lineage=dict(lineage),
        keep_last=keep_last,
    )
    log = get_run_logger()
    log.info(
        "published %s %s (sequence %d) to %s",
        model,
        published.version,
        published.sequence,
        published.store_uri,
    )
    if published.pruned:
        log.info("pruned %s versions %s", model, ", ".join(published.pruned))
    return published
