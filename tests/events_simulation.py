"""A simulated bot: decision and outcome logs with known propensities, from bars.

It runs the bot's side of the loop on historical bars: the 43 features per bar, a published
bandit's ``arm_values`` (a fixed random linear scorer: the point is a context-dependent
logging policy, not a good one), the epsilon-greedy action distribution of
``pipelines.events.exploration``, an arm sampled from it, and the trade's outcome ``horizon``
bars later with the arm's real net forward return (``pipelines.strategies``). Since every
arm's reward is computable from bars, the logging policy's true value on these contexts,
mean_i sum_a pi(a | x_i) r_a(x_i), is known exactly: the quantity OPE on the logs must
recover.

Files follow the contract: gzip JSON lines, one file per bot per interval, each file written
as several gzip members (appends). Outcomes land in the file of the interval their trade
closed in, so many arrive one file after their decision. :func:`corrupt_logs` then adds what
real logs carry: duplicated lines, bad lines of known kinds (with the field each one must be
quarantined under) and a gzip member whose end has not been written yet.
"""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from pipelines.events.contract import (
    DECISION_SCHEMA_ID,
    FEATURE_SET_VERSION,
    OUTCOME_SCHEMA_ID,
    STRATEGY_OF_ARM,
)
from pipelines.events.exploration import action_distribution, sample_arm
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.strategies.signals import ARM_NAMES, N_ARMS, arm_rewards, compute_signals


@dataclass(frozen=True)
class BotSpec:
    """How the simulated bot trades and logs."""

    bot_id: str = "bot-1"
    epsilon: float = 0.3
    horizon: int = 6
    cost_bps: float = 1.0
    slippage_bps: float = 0.5
    file_interval: str = "1D"
    members_per_file: int = 2
    notional: float = 10_000.0
    currency: str = "USD"
    log_features: bool = True
    log_distribution: bool = True
    value_scale: float = 0.3
    compresslevel: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in (0, 1] (every arm logged), got {self.epsilon}")
        if self.horizon < 1 or self.members_per_file < 1:
            raise ValueError("horizon and members_per_file must be >= 1")


@dataclass
class SimulatedLog:
    """The simulated bot's logs and the ground truth behind them.

    ``files`` maps a file name (``<bot>/<bot>_<interval start>.jsonl.gz``) to its gzip
    members in write order; ``truth`` has one row per decision (event id, ts, symbol, arm,
    propensity, reward, the logging policy's expected reward on that context).
    """

    files: dict[str, list[bytes]]
    truth: pd.DataFrame
    rewards: np.ndarray
    probs: np.ndarray
    true_logging_value: float
    decisions: list[dict[str, Any]] = field(repr=False, default_factory=list)
    outcomes: list[dict[str, Any]] = field(repr=False, default_factory=list)


def _iso(ts: pd.Series) -> list[str]:
    return list(ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))


def encode_member(records: list[dict[str, Any]] | list[bytes], compresslevel: int = 6) -> bytes:
    """One gzip member holding ``records`` as JSON lines (raw bytes lines are kept as is)."""
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    body = b"".join(line + b"\n" for line in lines)
    return gzip.compress(body, compresslevel=compresslevel, mtime=0)


def simulate_bot(bars: pd.DataFrame, spec: BotSpec) -> SimulatedLog:
    """Run the bot on ``bars`` (the bar contract, one or more symbols); see the module doc."""
    rng = np.random.default_rng(spec.seed)
    fs = featurize(bars).frame
    rewards = arm_rewards(
        bars, compute_signals(bars), spec.horizon, spec.cost_bps, spec.slippage_bps
    )
    keyed = pd.concat([bars[["ts", "symbol"]], rewards], axis=1)
    ctx = fs.merge(keyed, on=["ts", "symbol"], how="inner", validate="one_to_one")
    full = ctx[list(ARM_NAMES)].to_numpy(dtype=np.float64)
    ctx = ctx[np.isfinite(full).all(axis=1)].sort_values(["ts", "symbol"], ignore_index=True)
    full = ctx[list(ARM_NAMES)].to_numpy(dtype=np.float64)
    X = ctx[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    n = len(ctx)
    if n == 0:
        raise ValueError("no bar has both features and a complete reward window")
    z = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    weights = rng.normal(size=(X.shape[1], N_ARMS)) * spec.value_scale / np.sqrt(X.shape[1])
    arm_values = (z @ weights).astype(np.float32)
    probs = action_distribution(arm_values, spec.epsilon)
    arm = sample_arm(probs, rng.random(n))
    prop = probs[np.arange(n), arm]
    reward = full[np.arange(n), arm]
    step = pd.Series(bars["ts"]).sort_values().diff().dropna()
    bar = step[step > pd.Timedelta(0)].min() if len(step) else pd.Timedelta("1h")
    closed = ctx["ts"] + spec.horizon * bar
    size = np.round(rng.uniform(0.5, 1.5, n), 4)
    regimes = np.asarray(["TREND_UP", "TREND_DOWN", "RANGE", "PANIC"])[rng.integers(0, 4, n)]
    cp = np.round(rng.uniform(0.0, 0.2, n), 6)
    ts_text, closed_text = _iso(ctx["ts"]), _iso(closed)
    decisions: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    xs = X.astype(np.float64).tolist()
    ps = probs.tolist()
    symbols = ctx["symbol"].astype(str).tolist()
    prop_l, size_l, cp_l, reward_l = prop.tolist(), size.tolist(), cp.tolist(), reward.tolist()
    regime_l = regimes.tolist()
    for i in range(n):
        did = f"{spec.bot_id}-d{i:08d}"
        a = ARM_NAMES[arm[i]]
        dec: dict[str, Any] = {
            "schema": DECISION_SCHEMA_ID,
            "event_id": did,
            "ts": ts_text[i],
            "bot_id": spec.bot_id,
            "symbol": symbols[i],
            "strategy_id": STRATEGY_OF_ARM[a],
            "arm": a,
            "feature_set": FEATURE_SET_VERSION,
            "propensity": prop_l[i],
            "models": {"bandit": "v000001", "regime": "v000001", "sizer": "v000001"},
            "size_multiplier": size_l[i],
            "regime": regime_l[i],
            "changepoint_prob": cp_l[i],
        }
        if spec.log_features:
            dec["features"] = xs[i]
        if spec.log_distribution:
            dec["action_distribution"] = ps[i]
        decisions.append(dec)
        pnl = reward_l[i] * size_l[i] * spec.notional
        outcomes.append(
            {
                "schema": OUTCOME_SCHEMA_ID,
                "event_id": f"{spec.bot_id}-o{i:08d}",
                "decision_id": did,
                "bot_id": spec.bot_id,
                "closed_at": closed_text[i],
                "net_return": reward_l[i],
                "net_pnl": round(pnl, 6),
                "currency": spec.currency,
                "fees": round(spec.notional * size_l[i] * spec.cost_bps / 1e4 * 2, 6),
                "holding_bars": spec.horizon,
                "exit_reason": "time_exit",
            }
        )
    # one file per bot per interval: a decision in the file of its ts, an outcome in the file
    # of its close; lines in event-time order, each file split into gzip members (appends)
    when = pd.concat([ctx["ts"], closed], ignore_index=True)
    bucket = when.dt.floor(spec.file_interval)
    order = np.lexsort((np.arange(2 * n), when.to_numpy()))
    events = decisions + outcomes
    files: dict[str, list[bytes]] = {}
    names = bucket.dt.strftime(f"{spec.bot_id}/{spec.bot_id}_%Y%m%dT%H%M.jsonl.gz").to_numpy()
    grouped: dict[str, list[dict[str, Any]]] = {}
    for j in order:
        grouped.setdefault(str(names[j]), []).append(events[j])
    for name in sorted(grouped):
        recs = grouped[name]
        parts = np.array_split(np.arange(len(recs)), min(spec.members_per_file, len(recs)))
        files[name] = [
            encode_member([recs[k] for k in p], spec.compresslevel) for p in parts if len(p)
        ]
    value = np.sum(probs * full, axis=1)
    truth = pd.DataFrame(
        {
            "event_id": [d["event_id"] for d in decisions],
            "ts": ctx["ts"],
            "symbol": ctx["symbol"],
            "arm": arm,
            "propensity": prop,
            "reward": reward,
            "policy_value": value,
        }
    )
    return SimulatedLog(files, truth, full, probs, float(value.mean()), decisions, outcomes)


#: The bad-line kinds :func:`corrupt_logs` writes, and the field each must be quarantined under.
BAD_LINE_KINDS: tuple[tuple[str, str], ...] = (
    ("cut_json", "<line>"),
    ("zero_propensity", "propensity"),
    ("no_ts", "ts"),
    ("strategy_mismatch", "strategy_id"),
    ("short_features", "features"),
    ("naive_ts", "ts"),
    ("negative_holding", "holding_bars"),
    ("unknown_schema", "schema"),
    ("bad_distribution", "action_distribution"),
    ("string_pnl", "net_pnl"),
)


def _bad_line(kind: str, dec: dict[str, Any], out: dict[str, Any], tag: str) -> bytes:
    d = dict(dec, event_id=f"bad-{tag}")
    o = dict(out, event_id=f"bad-{tag}")
    if kind == "cut_json":
        text = orjson.dumps(d)
        return text[: len(text) // 2]
    if kind == "zero_propensity":
        d["propensity"] = 0.0
    elif kind == "no_ts":
        del d["ts"]
    elif kind == "strategy_mismatch":
        d["strategy_id"] = "S7"
    elif kind == "short_features":
        d["features"] = list(d.get("features") or [0.0] * 43)[:42]
    elif kind == "naive_ts":
        d["ts"] = d["ts"].rstrip("Z")
    elif kind == "negative_holding":
        return orjson.dumps(dict(o, holding_bars=-1))
    elif kind == "unknown_schema":
        d["schema"] = "edgeflow.decision/9"
    elif kind == "bad_distribution":
        d["action_distribution"] = [1.0 / N_ARMS] * (N_ARMS - 1) + [0.5]
    elif kind == "string_pnl":
        return orjson.dumps(dict(o, net_pnl="12.5"))
    else:
        raise ValueError(f"unknown bad-line kind {kind!r}")
    return orjson.dumps(d)


@dataclass
class CorruptedLogs:
    """Logs with known defects, and exactly what ingestion must report about them."""

    files: dict[str, list[bytes]]
    tail_file: str
    tail_member: bytes
    tail_event_ids: list[str]
    expected_quarantine: Counter[str]
    n_duplicates: int


def corrupt_logs(
    log: SimulatedLog, n_bad: int, n_duplicates: int, n_tail: int, seed: int
) -> CorruptedLogs:
    """Add ``n_bad`` bad lines (cycling over :data:`BAD_LINE_KINDS`), ``n_duplicates``
    repeated lines of real events (each in a member after the original's) and, at the end of
    the last file, a gzip member with the last ``n_tail`` outcomes, held back from their
    files, whose bytes ``tail_member`` a writer cuts in half until it completes it.
    """
    rng = np.random.default_rng(seed)
    files = {k: list(v) for k, v in log.files.items()}
    names = sorted(files)
    if n_tail:
        held = {o["event_id"] for o in log.outcomes[-n_tail:]}
        left = set(held)
        for name in reversed(names):  # the latest outcomes are in the latest files
            members = []
            for m in files[name]:
                lines = [ln for ln in gzip.decompress(m).split(b"\n") if ln]
                keep = [ln for ln in lines if orjson.loads(ln).get("event_id") not in held]
                if len(keep) != len(lines):
                    left -= {orjson.loads(ln)["event_id"] for ln in lines} & held
                    m = encode_member(keep) if keep else b""
                if m:
                    members.append(m)
            files[name] = members
            if not left:
                break
        files = {k: v for k, v in files.items() if v}
        names = sorted(files)
    expected: Counter[str] = Counter()
    n = len(log.decisions)
    for b in range(n_bad):
        kind, fld = BAD_LINE_KINDS[b % len(BAD_LINE_KINDS)]
        i = int(rng.integers(0, n))
        name = names[int(rng.integers(0, len(names)))]
        files[name].append(
            encode_member([_bad_line(kind, log.decisions[i], log.outcomes[i], str(b))])
        )
        expected[fld] += 1
    for _ in range(n_duplicates):
        i = int(rng.integers(0, n - n_tail))
        rec = log.decisions[i] if rng.random() < 0.5 else log.outcomes[i]
        files[names[-1]].append(encode_member([rec]))
    tail_ids = [o["event_id"] for o in log.outcomes[-n_tail:]] if n_tail else []
    tail = encode_member(log.outcomes[-n_tail:]) if n_tail else b""
    return CorruptedLogs(files, names[-1], tail, tail_ids, expected, n_duplicates)


def write_files(
    files: dict[str, list[bytes]], root: Path, extra: dict[str, bytes] | None = None
) -> list[Path]:
    """Write each file's members (plus ``extra`` bytes appended to named files) under ``root``."""
    out = []
    for name, members in files.items():
        path = Path(root) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(members) + (extra or {}).get(name, b""))
        out.append(path)
    return out


def put_files(
    client: Any,
    bucket: str,
    prefix: str,
    files: dict[str, list[bytes]],
    extra: dict[str, bytes] | None = None,
) -> list[str]:
    """Upload each file (members + ``extra``) to ``s3://bucket/prefix/<name>``."""
    keys = []
    for name, members in files.items():
        key = f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name
        client.put_object(
            Bucket=bucket, Key=key, Body=b"".join(members) + (extra or {}).get(name, b"")
        )
        keys.append(key)
    return keys
