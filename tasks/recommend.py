"""The recommendation task: derive ``latest_recommendation.json`` and publish it signed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipelines.models.base import ModelResult
from pipelines.recommendations import derive_from_models
from pipelines.workdir import WorkdirLayout
from tasks.context import ModelOutcome, RunContext
from tasks.publish import publish_files


def live_recommendation(ctx: RunContext) -> dict[str, Any] | None:
    """The published recommendation document, verified, or None (first run, nothing live, or
    a live version that does not verify: then the neutral defaults are the live settings)."""
    from pipelines.registry.verify import verify_model

    try:
        vv = verify_model(ctx.store, "recommendation", ctx.keyring, check_freshness=False)
        doc: dict[str, Any] = json.loads(vv.files["latest_recommendation.json"])
    except Exception as exc:  # nothing live is the common case; never a reason to stop
        get_run_logger().info("no verified live recommendation (%s): defaults are live", exc)
        return None
    return doc


def _interval(value: Any) -> str:
    """``[estimate, low, high]`` in bps as a person reads it; ``-`` when not judged."""
    if not isinstance(value, list | tuple) or len(value) != 3:
        return "-"
    est, low, high = value
    return f"{est:+.2f} [{low:+.2f}, {high:+.2f}]"


def table_row(family: str, regime: str, cell: Mapping[str, Any]) -> dict[str, Any]:
    """One cell of the document as a flat table row for the report and MLflow: values, the
    exit decision in one line with its lifts, and where each non-exit value came from (the
    document keeps the nested evidence; a table cell holding a dict reads as Python)."""
    exits = cell.get("exits") or {}
    provenance = cell.get("provenance") or {}
    row: dict[str, Any] = {"family": family, "regime": regime}
    row.update({k: v for k, v in cell.items() if not isinstance(v, Mapping)})
    if exits:
        why = exits.get("reason") or "chosen on evidence"
        row["exits_from"] = f"{exits.get('candidate', '?')}: {why}"
        row["exit_lift_test_bps"] = _interval(exits.get("lift_bps_per_trade_test"))
        row["exit_lift_confirmation_bps"] = _interval(exits.get("lift_bps_per_trade_confirmation"))
    for key in ("position_size_multiplier", "confidence_threshold", "risk_per_trade"):
        if key in provenance:
            row[f"{key}_from"] = provenance[key]
    return row


def write_tables(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """The cells' values and their evidence as two tables: in one, fifteen columns ran to
    1,676 px in the report's 1,100 px box at 1280 px and squeezed the reasons into slivers."""
    evidence_keys = [
        k for k in dict.fromkeys(k for r in rows for k in r) if k.endswith("_from") or "lift" in k
    ]
    frame = pd.DataFrame(rows)
    values = folder / "recommendation.csv"
    frame.drop(columns=evidence_keys).to_csv(values, index=False)
    if not evidence_keys:
        return [values]
    evidence = folder / "recommendation_evidence.csv"
    frame[["family", "regime", *evidence_keys]].to_csv(evidence, index=False)
    return [values, evidence]


@task(name="publish_recommendation", cache_policy=NO_CACHE)
def publish_recommendation(
    ctx: RunContext,
    parent: str,
    bars: pd.DataFrame,
    features: pd.DataFrame,
    signals: pd.DataFrame,
    results: Mapping[str, ModelResult],
    outcomes: Mapping[str, ModelOutcome],
    events: pd.DataFrame | None = None,
) -> ModelOutcome:
    """Per family and regime parameters from the models that passed, and exits chosen on
    evidence against the live document; published every run (without a regime champion every
    regime cell carries its family's values)."""
    settings = ctx.settings
    passed = {name: o.status == "published" for name, o in outcomes.items()}
    meta = results.get("metalabel")
    live = live_recommendation(ctx)
    doc = derive_from_models(
        bars,
        features,
        signals,
        {name: r.shipped_export.path for name, r in results.items()},  # what each slot ships
        passed,
        settings.bandit.reward_horizon,
        settings.bandit.holdout_fraction,
        meta_threshold=meta.extras.get("threshold") if meta is not None else None,
        exits_cfg=settings.recommendation,
        live=live,
        cost_bps=settings.bandit.cost_bps,
        slippage_bps=settings.bandit.slippage_bps,
        seed=settings.seed,
        events=events,
    )
    for name, result in results.items():  # which candidate of each slot the values came from
        cand = result.champion.challenger if result.champion is not None else None
        if cand is not None and passed.get(name) and name in doc["sources"]:
            doc["sources"][name] += f" [candidate {cand.name}, {cand.kind}]"
    doc = {"generated_at": datetime.now(UTC).isoformat(), **doc}
    path = ctx.run_dir / "recommendation" / "latest_recommendation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True))
    rows = [
        table_row(fam, reg, cell)
        for fam, cells in doc["recommendations"].items()
        for reg, cell in cells.items()
    ]
    tables = write_tables(rows, path.parent)
    if "outcomes" in doc:  # the bot's realized exits vs the simulation, per family and cell
        cells = doc["outcomes"]["simulated_vs_realized"]
        outcome_table = path.with_name("simulated_vs_realized.csv")
        pd.DataFrame(
            [{"family": f, "cell": c, **v} for f, by in cells.items() for c, v in by.items()]
        ).to_csv(outcome_table, index=False)
        tables.append(outcome_table)
    ctx.tracker.log_artifact(parent, path, "recommendation")
    logger = get_run_logger()
    logger.info("recommendation derived from %s", doc["sources"])
    for family, cell in doc.get("family_exits", {}).items():
        logger.info("exits %s: %s", family, cell["exits"]["reason"] or cell["exits"]["candidate"])
    published = publish_files(
        ctx.store,
        "recommendation",
        {"latest_recommendation.json": path},
        ctx.keyring,
        {},
        [],
        {**ctx.lineage, "seed": settings.seed, "mlflow_run_id": parent},
        settings.registry.keep_last,
        WorkdirLayout(settings.workdir).publisher_state,
    )
    used = ", ".join(k for k, v in doc["sources"].items() if "(passed)" in v) or (
        "no model passed its gates: family-level values"
    )
    return ModelOutcome(
        "recommendation",
        "published",
        f"version {published.version} (from: {used})",
        version=published.version,
        tables=tables,
    )
