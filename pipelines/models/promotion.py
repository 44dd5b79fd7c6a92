"""Shadow promotion: a published challenger goes live only on what it did in shadow.

With ``registry.promotion: shadow`` a challenger that beat its champion on the training
spans is published under ``CHALLENGER`` instead of moving ``LATEST``; the bot shadows it
(``pipelines.bot.shadow``). The next run settles it here, before anything is trained:

- **promoted** when at least ``min_decisions`` of its shadow decisions, scored on the bars
  that followed, give a one-sided block-bootstrap lower bound of its lift over the champion
  above zero: ``LATEST`` moves to it and ``CHALLENGER`` is withdrawn;
- **kept** in shadow while it has fewer scored decisions than that and its pointer is fresh
  (too little evidence is not evidence against it);
- **withdrawn** when enough decisions give a lower bound at or below zero, or its pointer
  expired before it had enough: a signed withdrawal, ``LATEST`` untouched.

Each outcome carries the one line the run summary and the report show.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pipelines.bot.shadow import ShadowVerdict, judge_shadow, shadow_lifts
from pipelines.registry.challenger import (
    promote_challenger,
    standing_challenger,
    withdraw_challenger,
)
from pipelines.registry.errors import PointerExpiredError
from pipelines.registry.publish import DEFAULT_TTL
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store

log = logging.getLogger(__name__)

Action = Literal["promoted", "kept", "withdrawn", "none"]


@dataclass(frozen=True)
class ShadowRules:
    """How a shadow period is judged (``RegistryConfig``'s promotion fields)."""

    min_decisions: int
    block: int
    n_bootstrap: int
    level: float
    seed: int
    metalabel_threshold: float = 0.5


@dataclass(frozen=True)
class ShadowSettlement:
    """What became of one slot's standing challenger, and why, in one line."""

    model: str
    action: Action
    line: str
    version: str | None = None
    verdict: ShadowVerdict | None = None
    sequence: int | None = None

    def summary(self) -> dict[str, Any]:
        """The run summary's entry for this slot."""
        out: dict[str, Any] = {"action": self.action, "line": self.line, "version": self.version}
        if self.verdict is not None:
            out |= {
                "shadow_decisions": self.verdict.n,
                "unscored": self.verdict.unscored,
                "lift_bps": self.verdict.lift_bps,
                "lower_bps": self.verdict.lower_bps,
            }
        return out


def indexed_rewards(bars: pd.DataFrame, rewards: pd.DataFrame) -> pd.DataFrame:
    """``arm_rewards(bars, ...)`` indexed by ``(symbol, ts)`` (UTC), as shadow scoring reads
    it; rows whose horizon runs past the data (NaN) stay and count as unscored."""
    ts = pd.to_datetime(bars["ts"], utc=True)
    index = pd.MultiIndex.from_arrays([bars["symbol"].astype(str), ts], names=["symbol", "ts"])
    return rewards.set_axis(index, axis=0)


def settle_shadow(
    store: Store,
    model: str,
    keyring: KeyRing,
    events: Iterable[Mapping[str, Any]],
    rewards: pd.DataFrame,
    rules: ShadowRules,
    *,
    state_dir: Path | None = None,
    ttl: timedelta = DEFAULT_TTL,
    keep_last: int = 5,
    now: datetime | None = None,
) -> ShadowSettlement:
    """Judge ``model``'s standing challenger on its shadow decisions and act on the verdict.

    ``events``: shadow events (any bots, any models; the challenger's version picks its
    own), ``rewards``: :func:`indexed_rewards` of the bars collected so far.
    """
    try:
        view = standing_challenger(store, model, keyring, state_dir=state_dir, now=now)
    except PointerExpiredError as exc:
        withdraw_challenger(store, model, keyring, ttl=ttl, state_dir=state_dir)
        line = f"{model} challenger withdrawn: its pointer expired before it was judged ({exc})"
        return ShadowSettlement(model, "withdrawn", line)
    if view is None or view.version is None:
        return ShadowSettlement(model, "none", f"{model}: no challenger in shadow")
    version = view.version.version
    scored = shadow_lifts(
        events, rewards, model, version, metalabel_threshold=rules.metalabel_threshold
    )
    verdict = judge_shadow(
        scored,
        min_decisions=rules.min_decisions,
        block=rules.block,
        n_bootstrap=rules.n_bootstrap,
        level=rules.level,
        seed=rules.seed,
    )
    if verdict.promote:
        done = promote_challenger(
            store,
            model,
            keyring,
            expected_version=version,
            keep_last=keep_last,
            ttl=ttl,
            state_dir=state_dir,
            now=now,
        )
        line = f"{verdict.reason}; LATEST moved to {version} (sequence {done.sequence})"
        log.info("%s", line)
        return ShadowSettlement(model, "promoted", line, version, verdict, done.sequence)
    if verdict.n < rules.min_decisions:
        line = f"{verdict.reason}; kept in shadow, LATEST unchanged"
        log.info("%s", line)
        return ShadowSettlement(model, "kept", line, version, verdict)
    withdrawn = withdraw_challenger(store, model, keyring, ttl=ttl, state_dir=state_dir)
    line = f"{verdict.reason}; CHALLENGER withdrawn, LATEST unchanged"
    log.info("%s", line)
    seq = withdrawn.sequence if withdrawn is not None else None
    return ShadowSettlement(model, "withdrawn", line, version, verdict, seq)
