"""The decision engine a Python bot embeds: bar in, logged decision out.

Per bar and symbol: update the 43 features incrementally (equal to training's ``featurize``)
and the online changepoint detector, then ask the verified models in turn:

1. ``regime`` -> P(TREND_UP, TREND_DOWN, RANGE, PANIC), the regime logged with the decision;
2. ``bandit`` -> arm values -> action distribution -> one seeded draw; the drawn arm's
   probability is the logged propensity. With ``EngineConfig.exploration = "budgeted"`` (the
   default) and a bandit whose manifest publishes an exploration set and rate
   (``explore/*``, chosen by training so the expected cost is within a budget in bps per
   decision), the engine explores only among that set plus the shadowed bandit challenger's
   arm (``pipelines.events.exploration.budgeted_distribution``); otherwise, and always under
   ``exploration = "epsilon_greedy"``, it is epsilon-greedy over all 12 arms. Without a
   bandit the epsilon-greedy rule explores around the default arm, so the logs support every
   arm from the first decision on and the first bandit can be trained on them (a fallback
   that always played one arm would log propensity 1 for it and teach nothing about the
   others). The draws come from the named stream ``engine/exploration`` of the root seed
   (``pipelines.seeding``), not from ``default_rng(seed)``, so they are not the numbers
   another consumer of the same seed draws;
3. ``metalabel`` (optional) -> P(win) of the drawn arm; below its threshold the trade is sized
   at the safe minimum;
4. ``sizer`` -> a multiplier on the arm's signal, clamped to [0.1, 2.0];
5. the changepoint thresholds: at ``reduce_threshold`` the multiplier is scaled down, at
   ``exit_threshold`` the target position is flat.

Every model comes from a :class:`~pipelines.registry.ModelClient`, which serves only bytes it
verified and hot-swaps newer versions. A model that is missing, refused or failing degrades to
a documented fallback, and the decision event says which one and why (``docs/bot.md``):

=========  ========================================================================
model      fallback
=========  ========================================================================
regime     regime ``null``, probabilities ``null`` (nothing else depends on it)
bandit     epsilon-greedy around the default arm (the last served bandit's
           ``train/default_arm_index``, else ``EngineConfig.default_arm``): the
           default with probability 1 - epsilon + epsilon/12, each other arm
           epsilon/12, the drawn arm's probability logged as its propensity
metalabel  skipped (no P(win), no effect on the size)
sizer      multiplier ``fallback_multiplier`` (1.0)
=========  ========================================================================
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from pipelines.bot.changepoint import OnlineBocd
from pipelines.bot.events import (
    DECISION_SCHEMA,
    FEATURE_SET,
    EventLog,
    event_id,
    outcome_record,
)
from pipelines.bot.policy import action_distribution, one_hot, sample_arm
from pipelines.bot.shadow import ChallengerModel, shadow_event
from pipelines.data.schema import REGIMES
from pipelines.events.exploration import (
    RULE_BUDGETED,
    RULE_EPSILON_GREEDY,
    ExplorationPolicy,
    budgeted_distribution,
    exploration_record,
)
from pipelines.features.names import FEATURE_NAMES
from pipelines.features.stream import SymbolFeatureState
from pipelines.registry.client import ModelClient
from pipelines.registry.errors import NoModelLoadedError
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store
from pipelines.registry.verify import verify_version
from pipelines.seeding import Streams
from pipelines.strategies.rules import ARMS
from pipelines.strategies.signals import ARM_NAMES, FALLBACK_ARM, N_ARMS

log = logging.getLogger(__name__)

#: The models the engine consults, in the order it consults them.
MODEL_ROLES: Final = ("regime", "bandit", "metalabel", "sizer")
_STRATEGY_OF_ARM: Final = {a.name: a.legacy for a in ARMS}
_N_FEATURES: Final = len(FEATURE_NAMES)


@dataclass(frozen=True)
class EngineConfig:
    """What the engine needs besides the models (all documented in ``docs/bot.md``).

    The BOCD fields must match the trained regime's (``configs/regime.py``, ``prior_var`` =
    its ``params["bocd_prior_var"]``) for the online changepoint probability to be the one
    training saw.
    """

    bot_id: str = "bot-1"
    epsilon: float = 0.1
    #: ``budgeted``: the bandit's published exploration set and rate when its manifest has
    #: them (else epsilon-greedy at ``epsilon``); ``epsilon_greedy``: always the old rule.
    exploration: str = RULE_BUDGETED
    seed: int = 0
    default_arm: str = FALLBACK_ARM
    hazard: float = 1 / 200
    max_run_length: int = 300
    window: int = 24
    prior_var: float = 1e-4
    kappa0: float = 1.0
    alpha0: float = 2.0
    reduce_threshold: float = 0.7
    exit_threshold: float = 0.9
    reduce_factor: float = 0.5
    min_multiplier: float = 0.1
    max_multiplier: float = 2.0
    fallback_multiplier: float = 1.0
    metalabel_threshold: float = 0.5
    currency: str = "USD"
    #: Write the ``engine`` object (fallbacks and their reasons, changepoint action, P(win),
    #: target position) into each decision event; False writes only the contract's fields.
    event_details: bool = True

    def __post_init__(self) -> None:
        if self.default_arm not in ARM_NAMES:
            raise ValueError(f"default_arm {self.default_arm!r} is not one of {ARM_NAMES}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if self.exploration not in (RULE_BUDGETED, RULE_EPSILON_GREEDY):
            raise ValueError(
                f"exploration must be {RULE_BUDGETED!r} or {RULE_EPSILON_GREEDY!r}, "
                f"got {self.exploration!r}"
            )
        if not 0.0 < self.reduce_threshold <= self.exit_threshold <= 1.0:
            raise ValueError("need 0 < reduce_threshold <= exit_threshold <= 1")
        if not 0.0 < self.min_multiplier <= self.fallback_multiplier <= self.max_multiplier:
            raise ValueError("need 0 < min_multiplier <= fallback_multiplier <= max_multiplier")
        if not 0.0 < self.reduce_factor <= 1.0:
            raise ValueError(f"reduce_factor must be in (0, 1], got {self.reduce_factor}")
        if not 0.0 <= self.metalabel_threshold <= 1.0:
            raise ValueError("metalabel_threshold must be in [0, 1]")

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> EngineConfig:
        """BOCD parameters and thresholds from the pipeline's ``Settings.regime.bocd``."""
        b = settings.regime.bocd
        values: dict[str, Any] = {
            "hazard": b.hazard,
            "max_run_length": b.max_run_length,
            "window": b.window,
            "kappa0": b.kappa0,
            "alpha0": b.alpha0,
            "reduce_threshold": b.reduce_threshold,
            "exit_threshold": b.exit_threshold,
            "seed": settings.seed,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Fallback:
    """A model the decision could not use, and why (a registry error code or exception)."""

    model: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """One logged decision. ``target_position = signal * size_multiplier`` (0 on exit)."""

    event_id: str
    ts: str
    symbol: str
    arm: str
    arm_index: int
    strategy_id: str
    propensity: float
    action_distribution: tuple[float, ...]
    regime: str | None
    regime_probabilities: tuple[float, ...] | None
    changepoint_prob: float
    changepoint_action: str
    p_win: float | None
    signal: int
    size_multiplier: float
    target_position: float
    models: dict[str, str]
    fallbacks: tuple[Fallback, ...]
    features: np.ndarray = field(repr=False)
    #: How the distribution was made (``docs/events.md``, "Budgeted exploration"): the rule,
    #: epsilon, the greedy arms and, for ``budgeted``, the exploration set (arm indices).
    exploration: dict[str, Any] = field(default_factory=dict)

    def as_event(self, bot_id: str, details: bool = True) -> dict[str, Any]:
        """The decision event: ``edgeflow.decision/1`` fields, plus ``engine`` if ``details``."""
        event = {
            "schema": DECISION_SCHEMA,
            "event_id": self.event_id,
            "ts": self.ts,
            "bot_id": bot_id,
            "symbol": self.symbol,
            "arm": self.arm,
            "strategy_id": self.strategy_id,
            "feature_set": FEATURE_SET,
            "features": [float(v) for v in self.features],
            "propensity": self.propensity,
            "action_distribution": list(self.action_distribution),
            "models": dict(self.models),
            "size_multiplier": self.size_multiplier,
            "regime": self.regime,
            "changepoint_prob": self.changepoint_prob,
        }
        if details:
            event["engine"] = {
                "fallbacks": [{"model": f.model, "reason": f.reason} for f in self.fallbacks],
                "changepoint_action": self.changepoint_action,
                "p_win": self.p_win,
                "signal": self.signal,
                "target_position": self.target_position,
                "regime_probabilities": (
                    list(self.regime_probabilities) if self.regime_probabilities else None
                ),
                "exploration": dict(self.exploration),
            }
        return event


@dataclass
class _SymbolState:
    features: SymbolFeatureState
    bocd: OnlineBocd
    last_lc: float = math.nan


def _reason(client: ModelClient, exc: Exception) -> str:
    if isinstance(exc, NoModelLoadedError):
        err = client.last_error
        return f"no-model ({getattr(err, 'code', type(err).__name__)})" if err else "no-model"
    return f"{getattr(exc, 'code', type(exc).__name__)}: {exc}"


def _signals_vector(signals: Sequence[int] | Mapping[str, int] | np.ndarray) -> np.ndarray:
    if isinstance(signals, Mapping):
        missing = [a for a in ARM_NAMES if a not in signals]
        if missing:
            raise ValueError(f"signals lack arm(s) {missing}")
        vec = np.array([signals[a] for a in ARM_NAMES], dtype=np.float64)
    else:
        vec = np.asarray(signals, dtype=np.float64).reshape(-1)
    if vec.shape != (N_ARMS,) or not ((vec == 0.0) | (np.abs(vec) == 1.0)).all():
        raise ValueError(
            f"signals must be {N_ARMS} positions in {{-1, 0, 1}} (ARM_NAMES order), got {vec}"
        )
    return vec


class DecisionEngine:
    """Per-symbol feature and changepoint state, the verified models, the event log.

    Parameters
    ----------
    clients:
        ``{role: ModelClient}`` for the roles in :data:`MODEL_ROLES`; a role that is absent
        (or ``None``) always takes its fallback.
    config:
        :class:`EngineConfig`.
    events:
        Where decision and outcome events go (``None``: not written, e.g. a dry run).
    challengers:
        ``{role: ChallengerModel}``: the published challengers to shadow (``docs/bot.md``).
        Each is asked what the champion was asked on every decision; both answers go to
        ``shadow_events`` as one ``edgeflow.shadow/1`` event. No extra random draw and no
        effect on the size; one effect on the arm: under the budgeted exploration rule a
        bandit challenger's greedy arm joins the exploration set (explored at epsilon / s),
        so the logs can later score it (``docs/events.md``, "Budgeted exploration").
    shadow_events:
        Where shadow events go (a log of their own; ``None``: computed, not written).
    """

    def __init__(
        self,
        clients: Mapping[str, ModelClient | None],
        config: EngineConfig,
        events: EventLog | None = None,
        *,
        challengers: Mapping[str, ChallengerModel | None] | None = None,
        shadow_events: EventLog | None = None,
    ) -> None:
        unknown = set(clients) - set(MODEL_ROLES)
        if unknown:
            raise ValueError(f"unknown model role(s) {sorted(unknown)}; use {MODEL_ROLES}")
        unknown = set(challengers or {}) - set(MODEL_ROLES)
        if unknown:
            raise ValueError(f"unknown challenger role(s) {sorted(unknown)}; use {MODEL_ROLES}")
        self.challengers: dict[str, ChallengerModel] = {
            r: c for r, c in (challengers or {}).items() if c is not None
        }
        self.shadow_events = shadow_events
        self.clients: dict[str, ModelClient | None] = {r: clients.get(r) for r in MODEL_ROLES}
        self.config = config
        self.events = events
        self.rng = Streams(config.seed).child("engine").numpy("exploration")
        self._symbols: dict[str, _SymbolState] = {}
        self._default_arm_by_version: dict[str, int] = {}
        self._exploration_by_version: dict[str, tuple[tuple[int, ...], float] | None] = {}
        self._feature_refusals: dict[tuple[str, str], str | None] = {}
        self._default_arm = ARM_NAMES.index(config.default_arm)

    @classmethod
    def from_store(
        cls,
        store: Store,
        keyring: KeyRing,
        cache_dir: Path,
        config: EngineConfig,
        events: EventLog | None = None,
        *,
        roles: Sequence[str] = MODEL_ROLES,
        poll_interval: float = 30.0,
        shadow_events: EventLog | None = None,
    ) -> DecisionEngine:
        """One :class:`ModelClient` per role on ``store`` (cache in ``cache_dir/<role>``);
        with ``shadow_events``, also one :class:`ChallengerModel` per role, shadowed."""
        clients = {
            role: ModelClient(
                store, role, keyring, Path(cache_dir) / role, poll_interval=poll_interval
            )
            for role in roles
        }
        challengers = (
            {role: ChallengerModel(store, role, keyring) for role in roles}
            if shadow_events is not None
            else None
        )
        engine = cls(clients, config, events, challengers=challengers, shadow_events=shadow_events)
        engine.refresh()
        return engine

    # ----------------------------------------------------------------- models
    def refresh(self) -> dict[str, bool]:
        """Poll every model once (hot reload); ``{role: True if a newer version swapped in}``.

        Challengers are polled here too (a withdrawn or refused one stops being shadowed)."""
        for challenger in self.challengers.values():
            challenger.refresh()
        return {r: c.refresh() for r, c in self.clients.items() if c is not None}

    def start(self) -> None:
        """Poll in the background (each client's own thread, its ``poll_interval``)."""
        for c in self.clients.values():
            if c is not None:
                c.start()

    def stop(self) -> None:
        for c in self.clients.values():
            if c is not None:
                c.stop()

    def close(self) -> None:
        """Stop polling and close the event log's open file."""
        self.stop()
        if self.events is not None:
            self.events.close()

    @property
    def versions(self) -> dict[str, str | None]:
        """The version each role serves now (``None``: nothing verified yet)."""
        return {r: (c.version if c else None) for r, c in self.clients.items()}

    def _predict(
        self,
        role: str,
        feed: np.ndarray,
        models: dict[str, str],
        fallbacks: list[Fallback],
        *,
        quiet_if_unpublished: bool = False,
    ) -> dict[str, np.ndarray] | None:
        client = self.clients[role]
        if client is None:
            if not quiet_if_unpublished:
                fallbacks.append(Fallback(role, "not-configured"))
            return None
        refusal = self._feature_refusal(role, client)
        if refusal is not None:
            fallbacks.append(Fallback(role, refusal))
            return None
        try:
            pred = client.predict(feed)
        except Exception as exc:
            code = getattr(client.last_error, "code", None)
            if not (quiet_if_unpublished and code in (None, "pointer-missing")):
                fallbacks.append(Fallback(role, _reason(client, exc)))
            return None
        models[role] = pred.version
        return pred.outputs

    def _feature_refusal(self, role: str, client: ModelClient) -> str | None:
        """Why the version ``client`` serves cannot run here, or None: a model trained with
        cross-asset or exogenous features (its manifest's ``lineage.features``) needs inputs
        this engine does not compute yet, so it is refused with that reason instead of being
        fed the 43 (read once per version; a manifest without the record is a 43-feature
        model)."""
        version = client.version
        if version is None:
            return None
        key = (role, version)
        if key not in self._feature_refusals:
            reason = None
            try:
                vv = verify_version(client.store, client.model, version, client.keyring)
                record = json.loads(vv.manifest_bytes).get("lineage", {}).get("features")
                columns = record.get("columns", []) if isinstance(record, dict) else []
                extra = [c["name"] for c in columns if c.get("source") != "bars"]
                if extra:
                    shown = ", ".join(extra[:4]) + (", ..." if len(extra) > 4 else "")
                    reason = (
                        f"{role} {version} was trained on {len(columns)} features, "
                        f"{len(extra)} of them cross-asset or exogenous ({shown}); this engine "
                        "computes only the 43 own-bar features, so it does not serve it"
                    )
                    log.error("%s: refused: %s", role, reason)
            except Exception as exc:  # unreadable: served as before (the 43)
                log.warning("%s %s: feature record not readable: %s", role, version, exc)
            self._feature_refusals[key] = reason
        return self._feature_refusals[key]

    def _bandit_manifest(self, version: str) -> None:
        """Read a served bandit's default arm and exploration policy (once per version)."""
        client = self.clients["bandit"]
        index = self._default_arm
        policy = None
        try:
            assert client is not None
            vv = verify_version(client.store, "bandit", version, client.keyring)
            metrics = json.loads(vv.manifest_bytes)["metrics"]
            value = metrics.get("train/default_arm_index")
            if value is not None and 0 <= int(value) < N_ARMS:
                index = int(value)
            policy = ExplorationPolicy.from_metrics(metrics, N_ARMS)
        except Exception as exc:  # the config's default stays; the bandit itself still serves
            log.warning("bandit %s: manifest metrics not readable: %s", version, exc)
        self._default_arm_by_version[version] = index
        self._exploration_by_version[version] = policy

    def _bandit_default_arm(self, version: str) -> int:
        """The default arm named in a served bandit's manifest (read once per version)."""
        if version not in self._default_arm_by_version:
            self._bandit_manifest(version)
        return self._default_arm_by_version[version]

    def _bandit_exploration(self, version: str) -> tuple[tuple[int, ...], float] | None:
        """The exploration set and epsilon a served bandit's manifest publishes, or None."""
        if version not in self._exploration_by_version:
            self._bandit_manifest(version)
        return self._exploration_by_version[version]

    def _challenger_arm(self, x32: np.ndarray) -> int | None:
        """The shadowed bandit challenger's greedy arm on this bar, or None (none standing,
        or it fails here: then the decision explores the published set alone)."""
        chal = self.challengers.get("bandit")
        if chal is None or chal.version is None:
            return None
        try:
            out = chal.predict(x32) or {}
            values = np.asarray(out.get("arm_values", next(iter(out.values()))), np.float64)
            values = values.reshape(-1)
        except Exception as exc:
            log.warning("bandit challenger %s: no arm for exploration: %s", chal.version, exc)
            return None
        if values.shape != (N_ARMS,) or not np.isfinite(values).all():
            return None
        return int(np.argmax(values))

    def _distribution(
        self, values: np.ndarray, version: str, x32: np.ndarray
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """The action distribution over a served bandit's ``values`` and its log record."""
        cfg = self.config
        published = self._bandit_exploration(version) if cfg.exploration == RULE_BUDGETED else None
        if published is None:
            greedy = np.flatnonzero(values >= values.max())
            record = {
                "rule": RULE_EPSILON_GREEDY,
                "epsilon": cfg.epsilon,
                "greedy": [int(a) for a in greedy],
            }
            return action_distribution(values, cfg.epsilon), record
        arms, epsilon = published
        challenger = self._challenger_arm(x32)
        explore = list(arms) + (
            [challenger] if challenger is not None and challenger not in arms else []
        )
        return budgeted_distribution(values, explore, epsilon), exploration_record(
            values, explore, epsilon
        )

    # ----------------------------------------------------------------- bars
    def _state(self, symbol: str) -> _SymbolState:
        st = self._symbols.get(symbol)
        if st is None:
            c = self.config
            st = self._symbols[symbol] = _SymbolState(
                SymbolFeatureState(symbol),
                OnlineBocd(
                    c.hazard,
                    c.max_run_length,
                    window=c.window,
                    prior_var=c.prior_var,
                    kappa0=c.kappa0,
                    alpha0=c.alpha0,
                ),
            )
        return st

    def on_bar(
        self,
        symbol: str,
        ts: pd.Timestamp | datetime | str,
        high: float,
        low: float,
        close: float,
        volume: float,
        signals: Sequence[int] | Mapping[str, int] | np.ndarray,
    ) -> Decision | None:
        """Add one bar and decide on it; ``None`` during the symbol's feature warm-up.

        ``signals`` are the 12 arms' current positions (the bot's strategies, in
        ``ARM_NAMES`` order or by name); the engine picks one arm and sizes it. The decision
        event is written before this returns.
        """
        sig = _signals_vector(signals)
        st = self._state(symbol)
        stamp = pd.Timestamp(ts)
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")  # naive is UTC, as featurize reads it
        sec = stamp.value // 1_000_000_000
        x = st.features.update(sec, high, low, close, volume)
        lc = float(np.log(float(close)))
        cp = st.bocd.update(lc - st.last_lc)
        st.last_lc = lc
        if x is None:
            return None
        decision = self._decide(symbol, stamp.isoformat(), sec, x, cp, sig)
        if self.events is not None:
            event = decision.as_event(self.config.bot_id, self.config.event_details)
            self.events.write(event, sec)
        if self.challengers:
            self.shadow(decision, cp, sec)
        return decision

    # ----------------------------------------------------------------- shadow
    def shadow(self, decision: Decision, cp: float, sec: int) -> list[dict[str, Any]]:
        """Ask each standing challenger the question its champion answered for ``decision``
        and log both answers (``edgeflow.shadow/1``); returns the events.

        Pure reads: the decision is already made and logged, nothing here draws from the
        engine's random stream or changes what the bot trades. A challenger that fails on
        this bar is logged and skipped (a missing shadow decision is never scored).
        """
        out: list[dict[str, Any]] = []
        x32 = decision.features.astype(np.float32).reshape(1, _N_FEATURES)
        for role, chal in self.challengers.items():
            if chal.version is None:
                continue
            try:
                answers = self._shadow_answers(role, chal, decision, x32, cp)
            except Exception as exc:  # a faulty challenger is evidence against it, not a crash
                log.warning("%s challenger %s: no shadow decision: %s", role, chal.version, exc)
                continue
            event = shadow_event(
                decision_id=decision.event_id,
                bot_id=self.config.bot_id,
                ts=decision.ts,
                symbol=decision.symbol,
                model=role,
                arm=decision.arm,
                champion_version=decision.models.get(role),
                champion=answers[0],
                challenger_version=chal.version,
                challenger_sequence=chal.sequence,
                challenger=answers[1],
            )
            out.append(event)
            if self.shadow_events is not None:
                self.shadow_events.write(event, sec)
        return out

    def _shadow_answers(
        self, role: str, chal: ChallengerModel, d: Decision, x32: np.ndarray, cp: float
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(champion's answer, challenger's answer) for ``role`` on decision ``d``."""
        if role == "regime":
            out = chal.predict(x32) or {}
            probs = np.asarray(out.get("probabilities", next(iter(out.values()))), np.float64)
            probs = probs.reshape(-1)
            if probs.shape != (len(REGIMES),) or not np.isfinite(probs).all():
                raise ValueError(f"bad output shape {probs.shape}")
            return {"regime": d.regime}, {
                "regime": REGIMES[int(np.argmax(probs))],
                "probabilities": [float(p) for p in probs],
            }
        if role == "bandit":
            out = chal.predict(x32) or {}
            values = np.asarray(out.get("arm_values", next(iter(out.values()))), np.float64)
            values = values.reshape(-1)
            if values.shape != (N_ARMS,) or not np.isfinite(values).all():
                raise ValueError(f"bad arm values {values.shape}")
            dist = action_distribution(values, self.config.epsilon)
            champion_arm = int(np.argmax(d.action_distribution))
            return {"arm": ARM_NAMES[champion_arm]}, {
                "arm": ARM_NAMES[int(np.argmax(values))],
                "action_distribution": [float(p) for p in dist],
            }
        if role == "metalabel":
            meta_in = np.zeros((1, _N_FEATURES + N_ARMS), dtype=np.float32)
            meta_in[0, :_N_FEATURES] = x32[0]
            meta_in[0, _N_FEATURES + d.arm_index] = 1.0
            out = chal.predict(meta_in) or {}
            raw = out.get("p_win", out.get("probabilities", list(out.values())[-1]))
            p = np.asarray(raw, np.float64).reshape(-1)
            if not (p.size in (1, 2) and np.isfinite(p).all() and 0.0 <= p[-1] <= 1.0):
                raise ValueError(f"bad output {p.tolist()}")
            return {"p_win": d.p_win}, {"p_win": float(p[-1])}
        obs = np.empty((1, _N_FEATURES + 1), dtype=np.float32)
        obs[0, :_N_FEATURES] = x32[0]
        obs[0, _N_FEATURES] = float(d.signal)
        out = chal.predict(obs) or {}
        m = np.asarray(out.get("multiplier", next(iter(out.values()))), np.float64).reshape(-1)
        if m.size != 1 or not math.isfinite(float(m[0])):
            raise ValueError(f"bad multiplier {m.tolist()}")
        multiplier, _ = self._risk(float(m[0]), d.p_win, cp)
        return {"size_multiplier": d.size_multiplier}, {"size_multiplier": multiplier}

    def _regime(
        self, x32: np.ndarray, models: dict[str, str], fallbacks: list[Fallback]
    ) -> tuple[str | None, tuple[float, ...] | None]:
        """The regime's argmax and probabilities, or (None, None) on its fallback."""
        out = self._predict("regime", x32, models, fallbacks)
        if out is None:
            return None, None
        probs = np.asarray(out.get("probabilities", next(iter(out.values()))), np.float64)
        probs = probs.reshape(-1)
        if probs.shape != (len(REGIMES),) or not np.isfinite(probs).all():
            fallbacks.append(Fallback("regime", f"bad output shape {probs.shape}"))
            models.pop("regime")
            return None, None
        return REGIMES[int(np.argmax(probs))], tuple(float(p) for p in probs)

    def _risk(self, multiplier: float, p_win: float | None, cp: float) -> tuple[float, str]:
        """Clamp, meta-label veto, then the changepoint rule: (multiplier, action)."""
        cfg = self.config
        multiplier = min(max(multiplier, cfg.min_multiplier), cfg.max_multiplier)
        if p_win is not None and p_win < cfg.metalabel_threshold:
            multiplier = cfg.min_multiplier
        if cp >= cfg.exit_threshold:
            return cfg.min_multiplier, "exit"
        if cp >= cfg.reduce_threshold:
            return max(cfg.min_multiplier, multiplier * cfg.reduce_factor), "reduce"
        return multiplier, "none"

    def _decide(
        self, symbol: str, ts: str, sec: int, x: np.ndarray, cp: float, sig: np.ndarray
    ) -> Decision:
        cfg = self.config
        models: dict[str, str] = {}
        fallbacks: list[Fallback] = []
        x32 = x.astype(np.float32).reshape(1, _N_FEATURES)

        regime, regime_probs = self._regime(x32, models, fallbacks)

        out = self._predict("bandit", x32, models, fallbacks)
        dist: np.ndarray | None = None
        record: dict[str, Any] = {}
        if out is not None:
            values = np.asarray(out.get("arm_values", next(iter(out.values()))), np.float64)
            values = values.reshape(-1)
            if values.shape == (N_ARMS,) and np.isfinite(values).all():
                dist, record = self._distribution(values, models["bandit"], x32)
            else:
                fallbacks.append(Fallback("bandit", f"bad arm values {values.shape}"))
                models.pop("bandit")
        if dist is None:
            last = self.clients["bandit"].version if self.clients["bandit"] else None
            default = self._bandit_default_arm(last) if last else self._default_arm
            dist = action_distribution(one_hot(default, N_ARMS), cfg.epsilon)
            record = {"rule": RULE_EPSILON_GREEDY, "epsilon": cfg.epsilon, "greedy": [default]}
        arm, propensity = sample_arm(dist, self.rng)
        signal = float(sig[arm])

        p_win: float | None = None
        meta_in = np.zeros((1, _N_FEATURES + N_ARMS), dtype=np.float32)
        meta_in[0, :_N_FEATURES] = x32[0]
        meta_in[0, _N_FEATURES + arm] = 1.0
        out = self._predict("metalabel", meta_in, models, fallbacks, quiet_if_unpublished=True)
        if out is not None:
            raw = out.get("p_win", out.get("probabilities", list(out.values())[-1]))
            p = np.asarray(raw, np.float64).reshape(-1)
            if p.size in (1, 2) and np.isfinite(p).all() and 0.0 <= p[-1] <= 1.0:
                p_win = float(p[-1])  # [P(win)] or [P(loss), P(win)]
            else:
                fallbacks.append(Fallback("metalabel", f"bad output {p.tolist()}"))
                models.pop("metalabel")

        obs = np.empty((1, _N_FEATURES + 1), dtype=np.float32)
        obs[0, :_N_FEATURES] = x32[0]
        obs[0, _N_FEATURES] = signal
        multiplier = cfg.fallback_multiplier
        out = self._predict("sizer", obs, models, fallbacks)
        if out is not None:
            m = np.asarray(out.get("multiplier", next(iter(out.values()))), np.float64)
            m = m.reshape(-1)
            if m.size == 1 and math.isfinite(float(m[0])):
                multiplier = float(m[0])
            else:
                fallbacks.append(Fallback("sizer", f"bad multiplier {m.tolist()}"))
                models.pop("sizer")
        multiplier, action = self._risk(multiplier, p_win, cp)
        target = 0.0 if action == "exit" else signal * multiplier

        name = ARM_NAMES[arm]
        return Decision(
            event_id=event_id(cfg.bot_id, symbol, sec),
            ts=ts,
            symbol=symbol,
            arm=name,
            arm_index=arm,
            strategy_id=_STRATEGY_OF_ARM[name],
            propensity=propensity,
            action_distribution=tuple(float(p) for p in dist),
            regime=regime,
            regime_probabilities=regime_probs,
            changepoint_prob=float(cp),
            changepoint_action=action,
            p_win=p_win,
            signal=int(signal),
            size_multiplier=multiplier,
            target_position=target,
            models=models,
            fallbacks=tuple(fallbacks),
            features=x,
            exploration=record,
        )

    # ----------------------------------------------------------------- outcomes
    def record_outcome(
        self,
        decision_id: str,
        closed_at: pd.Timestamp | datetime | str,
        net_return: float,
        net_pnl: float,
        fees: float,
        holding_bars: int,
        exit_reason: str,
        currency: str | None = None,
    ) -> dict[str, Any]:
        """Write the outcome event of a closed trade; returns the event written."""
        record = outcome_record(
            decision_id=decision_id,
            bot_id=self.config.bot_id,
            closed_at=closed_at,
            net_return=net_return,
            net_pnl=net_pnl,
            currency=currency or self.config.currency,
            fees=fees,
            holding_bars=holding_bars,
            exit_reason=exit_reason,
        )
        if self.events is not None:
            self.events.write(record)
        return record
