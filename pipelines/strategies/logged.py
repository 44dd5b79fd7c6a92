"""The logged-bandit view: one arm chosen per decision, with its propensity and reward.

A live bot does not see every arm's reward: its logging policy picks one arm per decision
and the trade log records that arm, the probability it had of being picked (the
propensity) and the reward that followed. Off-policy evaluation needs exactly that, so the
trainer replays the same process on historical bars, and real trade logs (JSON lines,
gzip) can be read in with the same fields.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pipelines.strategies.signals import ARM_NAMES, N_ARMS

LOG_COLUMNS: tuple[str, ...] = ("ts", "symbol", "arm", "arm_name", "propensity", "reward")


@dataclass(frozen=True)
class LoggingPolicy:
    """How the bot picks the arm it trades.

    ``uniform``: every arm with probability 1/K. ``epsilon_greedy``: with probability
    1 - epsilon the arm whose realised rewards were best over the last ``window`` decisions
    whose outcome was already known (a follow-the-leader rule), otherwise uniform.
    """

    kind: Literal["uniform", "epsilon_greedy"] = "uniform"
    epsilon: float = 0.3
    window: int = 48

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "epsilon_greedy"):
            raise ValueError(f"kind must be 'uniform' or 'epsilon_greedy', got {self.kind!r}")
        if not 0.0 < self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in (0, 1], got {self.epsilon}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")

    def action_probabilities(self, rewards: pd.DataFrame, horizon: int) -> np.ndarray:
        """[N, K] probabilities of each arm per decision (rows of one symbol, ts-sorted).

        The greedy rule only uses rewards whose horizon had closed by the decision bar
        (decision t sees rewards of decisions <= t - horizon), so it is causal.
        """
        n = len(rewards)
        probs = np.full((n, N_ARMS), 1.0 / N_ARMS)
        if self.kind == "uniform" or n == 0:
            return probs
        known = rewards.shift(horizon).rolling(self.window, min_periods=1).mean().to_numpy()
        has = np.isfinite(known).all(axis=1)
        leader = np.argmax(np.where(np.isfinite(known), known, -np.inf), axis=1)
        greedy = np.zeros((n, N_ARMS))
        greedy[np.arange(n), leader] = 1.0
        mixed = (1.0 - self.epsilon) * greedy + self.epsilon / N_ARMS
        probs[has] = mixed[has]
        return probs


def log_decisions(
    bars: pd.DataFrame,
    rewards: pd.DataFrame,
    policy: LoggingPolicy,
    horizon: int,
    seed: int,
) -> pd.DataFrame:
    """Replay the logging policy: one decision per bar with a complete reward row.

    Returns a frame with ``LOG_COLUMNS`` (``arm`` is the int index into ``ARM_NAMES``),
    indexed like the decision rows of ``bars`` and sorted by (symbol, ts). Draws come from
    one generator seeded by ``seed``, symbol by symbol in sorted order.
    """
    if not rewards.index.equals(bars.index):
        raise ValueError("rewards must be indexed like bars")
    rng = np.random.default_rng(seed)
    parts: list[pd.DataFrame] = []
    for symbol, group in bars.groupby("symbol", sort=True):
        group = group.sort_values("ts", kind="stable")
        rw = rewards.loc[group.index]
        probs = policy.action_probabilities(rw, horizon)
        complete = np.isfinite(rw.to_numpy()).all(axis=1)
        idx = np.flatnonzero(complete)
        u = rng.random(len(idx))
        cum = np.cumsum(probs[idx], axis=1)
        arm = np.minimum((u[:, None] > cum).sum(axis=1), N_ARMS - 1)
        parts.append(
            pd.DataFrame(
                {
                    "ts": group["ts"].to_numpy()[idx],
                    "symbol": symbol,
                    "arm": arm.astype(np.int16),
                    "arm_name": np.asarray(ARM_NAMES, dtype=object)[arm],
                    "propensity": probs[idx, arm],
                    "reward": rw.to_numpy()[idx, arm],
                },
                index=group.index[idx],
            )
        )
    if not parts:
        return pd.DataFrame(columns=list(LOG_COLUMNS))
    return pd.concat(parts)


class TradeLogError(ValueError):
    """A trade-log record that cannot be used; the message names the file and line."""


def _parse_record(line: str, where: str) -> dict[str, object]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TradeLogError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise TradeLogError(f"{where}: a record must be a JSON object")
    missing = [k for k in ("ts", "symbol", "arm", "propensity", "reward") if k not in rec]
    if missing:
        raise TradeLogError(f"{where}: missing field(s) {missing}")
    if rec["arm"] not in ARM_NAMES:
        raise TradeLogError(f"{where}: field 'arm': unknown arm {rec['arm']!r}")
    for key in ("propensity", "reward"):
        value = rec[key]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TradeLogError(f"{where}: field {key!r}: not a number ({value!r})")
        if not math.isfinite(value):
            raise TradeLogError(f"{where}: field {key!r}: not finite ({value!r})")
    if not 0.0 < float(rec["propensity"]) <= 1.0:
        raise TradeLogError(
            f"{where}: field 'propensity': must be in (0, 1], got {rec['propensity']}"
        )
    try:
        ts = pd.Timestamp(str(rec["ts"]))
    except ValueError:
        raise TradeLogError(f"{where}: field 'ts': not a timestamp ({rec['ts']!r})") from None
    if ts.tzinfo is None:
        raise TradeLogError(f"{where}: field 'ts': needs a UTC offset ({rec['ts']!r})")
    rec["ts"] = ts.tz_convert("UTC")
    return rec


def read_trade_log(path: Path) -> pd.DataFrame:
    """Read a bot's trade log (gzip JSON lines) into the logged-bandit frame.

    Each line holds ``ts``, ``symbol``, ``arm`` (an arm name), ``propensity`` in (0, 1] and
    a finite ``reward``; blank lines are skipped; any bad line raises ``TradeLogError``
    naming the file, line number and field. Rows come back sorted by (symbol, ts).
    """
    records: list[dict[str, object]] = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    records.append(_parse_record(line, f"{path}:{lineno}"))
    except (OSError, EOFError) as exc:
        raise TradeLogError(f"{path}: cannot read as gzip ({exc})") from None
    if not records:
        raise TradeLogError(f"{path}: no records")
    frame = pd.DataFrame.from_records(records)
    frame["arm_name"] = frame.pop("arm")
    frame["arm"] = frame["arm_name"].map({n: i for i, n in enumerate(ARM_NAMES)}).astype(np.int16)
    frame["propensity"] = frame["propensity"].astype(np.float64)
    frame["reward"] = frame["reward"].astype(np.float64)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame = frame.sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
    return frame[list(LOG_COLUMNS)]
