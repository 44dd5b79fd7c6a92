"""Health: are data, models and training fresh, is there disk, does the store verify?

``edgeflow health`` prints one JSON document and exits non-zero when anything is unhealthy.
It never signs anything: a live version that fails verification is reported (with the
error code) and left to an operator's explicit ``edgeflow rollback``; answering tampering
with an automatic rollback would let whoever damages versions choose what the fleet runs.
An expired pointer (nobody re-signed the store) is reported as well. Also a Prefect flow
for the 30-minute deployment.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow

from configs import Settings
from flows.collect import deployment_settings
from pipelines.data.store import watermarks
from pipelines.registry.errors import PointerExpiredError, RegistryError, VerificationError
from pipelines.registry.keys import keyring_from_env
from pipelines.registry.publisher_state import recorded_models
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store, open_store
from pipelines.registry.verify import check_fresh, list_models, verify_model
from pipelines.workdir import WorkdirLayout
from tasks.reporting import read_last_training

DEFAULT_LIMITS = {
    "data_max_age_h": 2.0,
    "model_max_age_h": 48.0,
    "training_max_age_h": 8.0,
    "min_free_gb": 1.0,
}


def _age_hours(ts: str | datetime | None, now: datetime) -> float | None:
    if ts is None:
        return None
    when = (
        ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    )
    return (now - when).total_seconds() / 3600.0


def _check(name: str, ok: bool, detail: str, **values: Any) -> dict[str, Any]:
    return {"check": name, "ok": bool(ok), "detail": detail, **values}


def _data_freshness(layout: WorkdirLayout, now: datetime, limit_h: float) -> dict[str, Any]:
    marks = watermarks(layout.bars) if layout.bars.exists() else {}
    if not marks:
        return _check("data_freshness", False, f"no bars under {layout.bars}")
    ages = {s: _age_hours(ts.to_pydatetime(), now) or 0.0 for s, ts in marks.items()}
    oldest = max(ages, key=lambda s: ages[s])
    return _check(
        "data_freshness",
        ages[oldest] <= limit_h,
        f"newest bar of {oldest} is {ages[oldest]:.1f} h old (limit {limit_h:g} h)",
        age_hours={s: round(a, 3) for s, a in ages.items()},
    )


def _training_freshness(layout: WorkdirLayout, now: datetime, limit_h: float) -> dict[str, Any]:
    last = read_last_training(layout)
    if last is None:
        return _check("last_training", False, "no successful training recorded")
    age = _age_hours(last["finished_at"], now) or 0.0
    return _check(
        "last_training",
        age <= limit_h,
        f"last successful training {age:.1f} h ago (limit {limit_h:g} h)",
        run_id=last.get("run_id"),
        age_hours=round(age, 3),
    )


def _disk(layout: WorkdirLayout, min_free_gb: float) -> dict[str, Any]:
    target = layout.root if layout.root.exists() else Path(".")
    free_gb = shutil.disk_usage(target).free / 2**30
    return _check(
        "disk_space",
        free_gb >= min_free_gb,
        f"{free_gb:.1f} GiB free (minimum {min_free_gb:g} GiB)",
        free_gb=round(free_gb, 2),
    )


def _store_checks(
    store: Store,
    keyring: KeyRing,
    now: datetime,
    limit_h: float,
    state_dir: Path | None = None,
) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    # With the publisher's records, a model whose folder was deleted fails by name.
    models = sorted(set(list_models(store)) | set(recorded_models(state_dir, store.uri)))
    if not models:
        return [_check("store", False, f"no models published in {store.uri}")]
    for model in models:
        try:
            # LATEST against the verified history beside it: an older envelope copied over
            # LATEST verifies on its own; only the newer signed entry next to it shows it
            live = verify_model(store, model, keyring, check_freshness=False, check_history=True)
        except (VerificationError, RegistryError) as exc:
            code = getattr(exc, "code", "invalid")
            checks.append(
                _check(
                    f"verify:{model}",
                    False,
                    f"live pointer fails verification [{code}]: {exc}; nothing was signed: "
                    f"an operator decides (edgeflow rollback --model {model} --to VERSION)",
                    code=code,
                )
            )
            continue
        checks.append(
            _check(
                f"verify:{model}",
                True,
                f"{model} {live.version} (sequence {live.sequence}) verifies and no verified "
                "history entry beside LATEST is newer",
                version=live.version,
                sequence=live.sequence,
            )
        )
        if live.pointer is not None:
            try:
                check_fresh(live.pointer, now)
                fresh = _check(
                    f"pointer_freshness:{model}",
                    True,
                    f"{model} pointer valid until {live.pointer.expires or 'no expiry (legacy)'}",
                    expires=live.pointer.expires,
                )
            except PointerExpiredError as exc:
                fresh = _check(
                    f"pointer_freshness:{model}",
                    False,
                    f"{exc} (frozen store: run the heartbeat or publish)",
                    expires=live.pointer.expires,
                )
            checks.append(fresh)
        age = _age_hours(str(live.manifest["created_at"]), now) or 0.0
        checks.append(
            _check(
                f"model_freshness:{model}",
                age <= limit_h,
                f"{model} {live.version} is {age:.1f} h old (limit {limit_h:g} h)",
                age_hours=round(age, 3),
            )
        )
    return checks


def check_health(
    settings: Settings,
    store_uri: str | None = None,
    now: datetime | None = None,
    limits: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Every check with its verdict; ``healthy`` only when all pass. Read-only: signs nothing."""
    lim = {**DEFAULT_LIMITS, **(limits or {})}
    now = now or datetime.now(UTC)
    layout = WorkdirLayout(settings.workdir)
    checks = [
        _data_freshness(layout, now, lim["data_max_age_h"]),
        _training_freshness(layout, now, lim["training_max_age_h"]),
        _disk(layout, lim["min_free_gb"]),
    ]
    uri = store_uri or settings.registry.store or layout.store.resolve().as_uri()
    try:
        store = open_store(uri, endpoint_url=settings.registry.s3_endpoint_url)
        keyring = keyring_from_env(os.environ, settings, settings.workdir, create_dev_key=False)
        checks.extend(
            _store_checks(store, keyring, now, lim["model_max_age_h"], layout.publisher_state)
        )
    except RegistryError as exc:
        checks.append(_check("store", False, f"{uri}: {exc}"))
    return {
        "healthy": all(c["ok"] for c in checks),
        "checked_at": now.isoformat(),
        "workdir": str(settings.workdir),
        "store": uri,
        "checks": checks,
    }


@flow(name="edgeflow-health")
def health_flow(
    config: str = "configs/default.yaml", workdir: str | None = None, store: str | None = None
) -> dict[str, Any]:
    """Deployment entry (prefect.yaml); fails the flow run when unhealthy, so alerts fire.

    Args:
        config: the profile's YAML file (relative to the checkout) or a shipped profile's name.
        workdir: the workdir to check; empty: the config file's own ``workdir``.
        store: the model store to verify; empty: the workdir's.
    """
    report = check_health(deployment_settings(config, workdir), store)
    if not report["healthy"]:
        bad = [c["detail"] for c in report["checks"] if not c["ok"]]
        raise RuntimeError("unhealthy: " + "; ".join(bad))
    return report


__all__ = ["DEFAULT_LIMITS", "check_health", "health_flow"]
