"""Collect: read the configured source, check it, append what is new to the bar store.

The one pipelines call behind the collect task; pure apart from the files it reads and the
store and quarantine folders it writes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from configs.data import DataConfig
from pipelines.data.checks import CheckReport, check_bars
from pipelines.data.provenance import claim_store, source_fingerprint
from pipelines.data.sources import load_source
from pipelines.data.store import AppendResult, append_bars

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectResult:
    """The check report and what the append added."""

    report: CheckReport
    append: AppendResult

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON types only) for MLflow and the run report."""
        return {"checks": self.report.to_dict(), "append": self.append.to_dict()}


def collect_bars(
    cfg: DataConfig,
    seed: int,
    store_root: Path,
    *,
    now: datetime | None = None,
    quarantine_dir: Path | None = None,
    s3_client: Any = None,
    profile: str | None = None,
) -> CollectResult:
    """Load ``cfg.source``, check it (raising :class:`DataError` on fatal problems), append.

    Re-running with the same input adds nothing (the store keeps a watermark per symbol).
    ``now`` drives the staleness check only; ``seed`` only the synthetic source. A store that
    holds bars of another source is refused (:class:`SourceMismatchError`) before reading.
    """
    claim_store(store_root, source_fingerprint(cfg, seed, profile))
    raws = load_source(cfg, seed, s3_client=s3_client)
    checked = check_bars(
        raws, cfg.checks, interval=cfg.interval, now=now, quarantine_dir=quarantine_dir
    )
    appended = append_bars(store_root, checked.bars)
    logger.info(
        "collected %d rows (%d quarantined), %d new",
        checked.report.rows_out,
        checked.report.quarantined_total,
        appended.rows_added,
    )
    return CollectResult(report=checked.report, append=appended)
