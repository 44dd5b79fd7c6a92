"""Shadow decisions: what a published challenger would have done on each bar, never acted on.

A slot's challenger (``<model>/CHALLENGER``, see ``pipelines.registry.challenger``) is loaded
beside the champion the engine serves. On every decision the engine asks it the same
question it asked the champion, on the same inputs, and logs both answers as one
``edgeflow.shadow/1`` event (``docs/events.md``) in a log of its own: the decision, the
trade and the exploration draw are the champion's alone, so shadowing changes nothing the
bot does. The next training run scores the two answers on the bars that followed
(:func:`shadow_lifts`) and promotes the challenger only when the paired block-bootstrap lower
bound of its lift is above zero over at least the configured number of shadow decisions
(:func:`judge_shadow`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from pipelines.evaluation.bootstrap import mean_difference, paired_lower_bound
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store
from pipelines.registry.verify import read_challenger

log = logging.getLogger(__name__)

SHADOW_SCHEMA: Final = "edgeflow.shadow/1"
#: The roles whose shadow answers :func:`shadow_lifts` can score on realized bars (a regime
#: label has no reward of its own: its challenger is judged by the trainer's accuracy gates).
SCORED_ROLES: Final = ("bandit", "sizer", "metalabel")


class ChallengerModel:
    """The verified challenger of one model, as an onnxruntime session (or none).

    :meth:`refresh` reads ``CHALLENGER`` through
    :func:`~pipelines.registry.verify.read_challenger` (signature, schema, expiry, every file
    by hash). A pointer with a lower sequence than the one accepted is a replay and is
    refused (the session stays); a withdrawal drops the session; anything that does not
    verify drops it too, with the reason in ``last_error``, since a shadow decision from an
    unverified model would be evidence about bytes nobody signed.
    """

    def __init__(self, store: Store, model: str, keyring: KeyRing) -> None:
        self.store = store
        self.model = model
        self.keyring = keyring
        self.version: str | None = None
        self.sequence = 0
        self.last_error: str | None = None
        self._session: Any = None
        self._input: str | None = None

    def refresh(self) -> bool:
        """Poll ``CHALLENGER`` once; True when the challenger served changed."""
        try:
            view = read_challenger(self.store, self.model, self.keyring)
        except Exception as exc:  # refused: no shadow from bytes that did not verify
            changed = self.version is not None
            self._drop(f"{getattr(exc, 'code', type(exc).__name__)}: {exc}")
            return changed
        if view is None:
            changed = self.version is not None
            self._drop(None)
            return changed
        if view.pointer.sequence < self.sequence:
            self.last_error = (
                f"{self.model}/CHALLENGER sequence {view.pointer.sequence} is below the "
                f"accepted {self.sequence}: an old pointer was replayed; ignored"
            )
            log.warning("%s", self.last_error)
            return False
        if view.pointer.sequence == self.sequence:
            return False
        self.sequence = view.pointer.sequence
        if view.version is None:  # withdrawn
            changed = self.version is not None
            self._drop(None)
            return changed
        import onnxruntime as ort

        vv = view.version
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            vv.files[vv.primary_file()], sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self.version = vv.version
        self.last_error = None
        log.info("%s: shadowing challenger %s (sequence %d)", self.model, vv.version, self.sequence)
        return True

    def _drop(self, why: str | None) -> None:
        self._session, self._input, self.version, self.last_error = None, None, None, why

    def predict(self, feed: np.ndarray) -> dict[str, np.ndarray] | None:
        """The challenger's outputs on ``feed`` (float32 ``[1, n]``); None when none stands."""
        if self._session is None:
            return None
        outs = self._session.run(None, {self._input: feed})
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, outs, strict=True))


def shadow_event(
    *,
    decision_id: str,
    bot_id: str,
    ts: str,
    symbol: str,
    model: str,
    arm: str,
    champion_version: str | None,
    champion: Mapping[str, Any],
    challenger_version: str,
    challenger_sequence: int,
    challenger: Mapping[str, Any],
) -> dict[str, Any]:
    """One ``edgeflow.shadow/1`` event: both answers to the same question on one bar.

    ``arm``: the arm the champion's decision traded (what a sizer's or meta-labeler's answer
    applies to)."""
    return {
        "schema": SHADOW_SCHEMA,
        "event_id": f"{decision_id}:shadow:{model}",
        "decision_id": decision_id,
        "bot_id": bot_id,
        "ts": ts,
        "symbol": symbol,
        "model": model,
        "arm": arm,
        "champion": {"version": champion_version, **champion},
        "challenger": {
            "version": challenger_version,
            "sequence": challenger_sequence,
            **challenger,
        },
    }


@dataclass(frozen=True)
class ShadowLifts:
    """Per shadow decision of one challenger version: the realized lift of its answer over
    the champion's (reward units per decision), time-ordered per symbol."""

    model: str
    version: str
    lifts: np.ndarray
    unscored: int


def shadow_lifts(
    events: Iterable[Mapping[str, Any]],
    rewards: pd.DataFrame,
    model: str,
    version: str,
    *,
    metalabel_threshold: float = 0.5,
) -> ShadowLifts:
    """Score ``version``'s shadow decisions for ``model`` on the realized arm rewards.

    ``rewards``: the arms' net forward P&L per bar (``arm_rewards``), indexed by
    ``(symbol, ts)`` (UTC), one column per arm. The lift of one decision:

    - bandit: reward of the challenger's greedy arm minus that of the champion's;
    - sizer: (challenger's multiplier - champion's) x the reward of the arm traded;
    - metalabel: (challenger keeps - champion keeps) x that reward, where "keeps" is
      P(win) >= ``metalabel_threshold`` (a champion without P(win) keeps every trade).

    Decisions whose bar has no realized reward yet (its horizon runs past the data) or that
    are not in ``rewards`` are counted in ``unscored``, never guessed.
    """
    if model not in SCORED_ROLES:
        raise ValueError(f"shadow decisions of {model!r} have no realized score")
    rows: list[tuple[str, pd.Timestamp, float]] = []
    unscored = 0
    for e in events:
        if e.get("schema") != SHADOW_SCHEMA or e.get("model") != model:
            continue
        chal, champ = e["challenger"], e["champion"]
        if chal.get("version") != version:
            continue
        ts = pd.Timestamp(e["ts"]).tz_convert("UTC")
        key = (e["symbol"], ts)
        if key not in rewards.index:
            unscored += 1
            continue
        r = rewards.loc[key]
        if model == "bandit":
            lift = float(r[chal["arm"]]) - float(r[champ["arm"]])
        elif model == "sizer":
            lift = (float(chal["size_multiplier"]) - float(champ["size_multiplier"])) * float(
                r[e["arm"]]
            )
        else:
            keep_c = float(chal["p_win"]) >= metalabel_threshold
            p0 = champ.get("p_win")
            keep_0 = True if p0 is None else float(p0) >= metalabel_threshold
            lift = (float(keep_c) - float(keep_0)) * float(r[e["arm"]])
        if not np.isfinite(lift):
            unscored += 1
            continue
        rows.append((str(e["symbol"]), ts, lift))
    rows.sort(key=lambda t: (t[0], t[1]))
    return ShadowLifts(model, version, np.array([t[2] for t in rows]), unscored)


@dataclass(frozen=True)
class ShadowVerdict:
    """The promotion decision on one challenger's shadow period, with its one-line reason."""

    model: str
    version: str
    promote: bool
    n: int
    unscored: int
    lift_bps: float
    lower_bps: float
    reason: str


def judge_shadow(
    scored: ShadowLifts,
    *,
    min_decisions: int,
    block: int,
    n_bootstrap: int,
    level: float,
    seed: int,
    scale: float = 1e4,
) -> ShadowVerdict:
    """Promote only when at least ``min_decisions`` scored shadow decisions give a one-sided
    ``level`` moving-block bootstrap lower bound of the mean lift above zero.

    The same test the champion stage puts a challenger through on the training spans, now on
    bars nobody had seen when it was published: the shadow period is the out-of-sample
    check that the winner of a comparison among candidates was not just the luckiest one.
    """
    n = int(scored.lifts.size)
    what = f"{scored.model} challenger {scored.version}"
    if n < min_decisions:
        return ShadowVerdict(
            scored.model,
            scored.version,
            False,
            n,
            scored.unscored,
            float(np.mean(scored.lifts) * scale) if n else float("nan"),
            float("nan"),
            f"{what} not promoted: {n} scored shadow decisions, fewer than the "
            f"{min_decisions} required",
        )
    lb = paired_lower_bound(
        scored.lifts, np.zeros(n), mean_difference, min(block, n), n_bootstrap, level, seed
    )
    lift, lower = lb.value * scale, lb.lower * scale
    ok = lb.lower > 0.0
    verb = "promoted" if ok else "refused"
    cmp = ">" if ok else "<="
    return ShadowVerdict(
        scored.model,
        scored.version,
        ok,
        n,
        scored.unscored,
        lift,
        lower,
        f"{what} {verb}: lift {lift:+.2f} bps per decision over the champion on {n} shadow "
        f"decisions, {level:.0%} lower bound {lower:+.2f} {cmp} 0",
    )


def read_shadow_events(folder: Path) -> list[dict[str, Any]]:
    """Every ``edgeflow.shadow/1`` event under ``folder`` (other records are skipped)."""
    from pipelines.bot.events import read_events

    return [e for e in read_events(folder) if e.get("schema") == SHADOW_SCHEMA]


__all__ = [
    "SCORED_ROLES",
    "SHADOW_SCHEMA",
    "ChallengerModel",
    "ShadowLifts",
    "ShadowVerdict",
    "judge_shadow",
    "read_shadow_events",
    "shadow_event",
    "shadow_lifts",
]
