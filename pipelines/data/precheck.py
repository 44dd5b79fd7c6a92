"""The input checks that need no model, cheap enough to run before any orchestration starts.

``edgeflow run`` calls :func:`precheck_input` before it imports Prefect, MLflow or the
trainers, so bad input is refused (one line naming file, column and row) in about as long as
reading and checking it takes, rather than after the orchestration has started. The flow
still runs the same checks itself: a scheduled run has no command line.

It also answers "would every model be skipped for lack of history?" with each spec's own
rule (``ModelSpec.history_reason`` on ``ModelSpec.min_rows``; the spec list imports no
trainer), and the feature rows a symbol will have follow from its bar count, because
``featurize`` drops exactly the first ``WARMUP_BARS`` bars of every symbol.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import pandas as pd

from configs.data import DataConfig
from pipelines.data.checks import QUARANTINE_FILE, CheckReport, check_bars
from pipelines.data.checks import logger as checks_logger
from pipelines.data.errors import DataError
from pipelines.data.provenance import claim_store, source_fingerprint
from pipelines.data.sources import load_source
from pipelines.data.store import _load_state
from pipelines.models.base import ModelSpec
from pipelines.models.specs import SPECS

#: Fewest feature rows per symbol each model trains on, read from the specs (in their order).
MIN_FEATURE_ROWS: Final[Mapping[str, int]] = {name: s.min_rows for name, s in SPECS.items()}
#: Bars ``featurize`` drops at the start of every symbol (``pipelines.features.WARMUP_BARS``;
#: not imported from there because that package loads the numba kernels).
WARMUP_BARS: Final = 200
#: Sources read here; S3 needs a network client, which only the flow's task builds.
LOCAL_SOURCES: Final = frozenset({"synthetic", "files", "sample"})


class _DropScratchNotice(logging.Filter):
    """Hide the checks' "quarantined N rows -> PATH" notice for the scratch folder: the path
    is deleted at once, and the flow logs the real one when it writes the run's quarantine."""

    def __init__(self, scratch: str) -> None:
        super().__init__()
        self._scratch = scratch

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(self._scratch in str(arg) for arg in (record.args or ()))


@dataclass(frozen=True)
class Precheck:
    """What the early check found: the check report, the feature rows each symbol will have
    after this run's append, and why every model would be skipped (``None``: some can train)."""

    report: CheckReport
    feature_rows: dict[str, int]
    skip_reason: str | None


def history_skip_reason(
    feature_rows: Mapping[str, int], specs: Iterable[ModelSpec] | None = None
) -> str | None:
    """Why every model would be skipped for lack of history, or None when one can train:
    each spec's own rule (``ModelSpec.history_reason``), so the wording is the flow's."""
    reasons = []
    for spec in SPECS.values() if specs is None else specs:
        reason = spec.history_reason(feature_rows)
        if reason is None:
            return None
        reasons.append(reason)
    return "too little history for every model: " + "; ".join(reasons)


def precheck_input(
    cfg: DataConfig,
    seed: int,
    profile: str,
    bars_root: Path,
    workdir: Path,
    *,
    now: datetime | None = None,
    quarantine_dir: Path | None = None,
) -> Precheck | None:
    """Provenance, read, schema and value checks, and the history each symbol will have.

    Returns None for a source this module does not read (S3: the flow checks it). Raises
    :class:`DataError` (the one-line message the flow would give) for bad input. Nothing is
    written to the store; rows quarantined by a refused input are copied to
    ``quarantine_dir`` (when given) so the user can see them, as the flow does.
    """
    if cfg.source not in LOCAL_SOURCES:
        return None
    fp = source_fingerprint(cfg, seed, profile, hash_files=False)
    claim_store(bars_root, fp, workdir=workdir, record=False)
    raws = load_source(cfg, seed)
    scratch = Path(tempfile.mkdtemp(prefix="edgeflow-precheck-"))
    quiet = _DropScratchNotice(str(scratch))
    checks_logger.addFilter(quiet)
    try:
        checked = check_bars(
            raws, cfg.checks, interval=cfg.interval, now=now, quarantine_dir=scratch
        )
    except DataError:
        _keep_quarantine(scratch, quarantine_dir)
        raise
    finally:
        checks_logger.removeFilter(quiet)
    try:
        _check_exogenous(cfg, scratch / "exogenous", quarantine_dir)
        rows = stored_rows_after_append(bars_root, checked.bars)
        feature_rows = {sym: max(0, n - WARMUP_BARS) for sym, n in rows.items()}
        reason = history_skip_reason(feature_rows)
        if reason is not None and checked.report.quarantined_total:
            # the run stops here: the bad values must be named now, not only "too short"
            reason = f"{quarantine_summary(scratch / QUARANTINE_FILE)}; {reason}"
            _keep_quarantine(scratch, quarantine_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Precheck(checked.report, feature_rows, reason)


def _check_exogenous(cfg: DataConfig, scratch: Path, quarantine_dir: Path | None) -> None:
    """Read and check the configured exogenous series held in files (S3: the flow's), so a
    bad one is refused now, with its quarantined rows kept beside the bars' when it is."""
    local = [spec for spec in cfg.exogenous if spec.path is not None]
    if not local:
        return
    from pipelines.data.exogenous import load_exogenous
    from pipelines.data.exogenous import logger as exogenous_logger

    quiet = _DropScratchNotice(str(scratch))
    exogenous_logger.addFilter(quiet)
    try:
        series = load_exogenous(cfg.model_copy(update={"exogenous": local}), quarantine_dir=scratch)
    except DataError:
        if quarantine_dir is not None and scratch.exists():
            shutil.copytree(scratch, quarantine_dir, dirs_exist_ok=True)
        raise
    finally:
        exogenous_logger.removeFilter(quiet)
    for s in series:
        if s.report["quarantined"]:
            exogenous_logger.warning(
                "exogenous series %r (%s): %d of %d rows quarantined %s",
                s.name,
                s.origin,
                s.report["rows_in"] - s.report["rows_out"],
                s.report["rows_in"],
                s.report["quarantined"],
            )


def _keep_quarantine(scratch: Path, quarantine_dir: Path | None) -> None:
    """Copy the quarantined rows where the user can see them, as the flow does."""
    if quarantine_dir is not None and any(scratch.iterdir()):
        quarantine_dir.mkdir(parents=True, exist_ok=True)
        for path in scratch.iterdir():
            if path.is_file():  # the exogenous series' own folder is copied by its check
                shutil.copy2(path, quarantine_dir / path.name)


def quarantine_summary(path: Path) -> str:
    """The quarantined rows in one clause: how many, and the first by file, column and row."""
    table = pd.read_csv(path)
    first = table.iloc[0]
    return (
        f"quarantined {len(table)} row(s); first: {first['origin']}: column "
        f"{first['column']!r}, row {int(first['row'])}: {first['detail']}"
    )


def stored_rows_after_append(bars_root: Path, bars: pd.DataFrame) -> dict[str, int]:
    """Bars per symbol the store will hold once ``bars`` are appended (the append keeps only
    rows newer than each symbol's watermark), read from the commit record, not the parts."""
    symbols = _load_state(Path(bars_root))["symbols"]
    rows = {str(s): int(v["rows"]) for s, v in symbols.items()}
    for sym, ts in bars.groupby("symbol", sort=True)["ts"]:
        held = symbols.get(str(sym))
        new = ts if held is None else ts[ts > pd.Timestamp(held["watermark"])]
        rows[str(sym)] = rows.get(str(sym), 0) + int(new.nunique())
    return rows
