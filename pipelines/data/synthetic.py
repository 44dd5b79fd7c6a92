"""Seeded regime-switching bar generator: the embedded default source.

Each symbol has its own seed streams (regime chain, returns, jumps, volume, wicks), each drawn
sequentially, so the series is prefix-stable: asking for more bars extends, never rewrites,
what was generated before. That is what lets incremental collection be tested on it.
The true regime is kept in ``regime`` for evaluation; it is never a feature.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
from scipy.special import ndtri

from configs.data import RegimeParams, SyntheticConfig
from pipelines.data.schema import REGIMES, TRUE_REGIME_COLUMN


def _transition_matrix(params: list[RegimeParams]) -> np.ndarray:
    """Sticky chain: stay with p_stay, otherwise move uniformly to another regime."""
    k = len(params)
    m = np.zeros((k, k))
    for i, p in enumerate(params):
        m[i, :] = (1.0 - p.stay) / (k - 1)
        m[i, i] = p.stay
    return m


def _std_normal(u: np.ndarray) -> np.ndarray:
    """Uniforms to standard normals (inverse CDF), keeping one uniform per draw."""
    return np.asarray(ndtri(np.clip(u, 1e-12, 1 - 1e-12)))


def _regime_path(n: int, trans: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    state = int(rng.integers(len(trans)))  # drawn before the n uniforms: prefix-stable in n
    u = rng.random(n)
    cum = np.cumsum(trans, axis=1)
    out = np.empty(n, dtype=np.int8)
    for t in range(n):  # a Markov chain is sequential; 1M steps take well under a second
        out[t] = state
        state = min(int(np.searchsorted(cum[state], u[t], side="right")), len(trans) - 1)
    return out


def generate_symbol(symbol: str, cfg: SyntheticConfig, seed: int) -> pd.DataFrame:
    """Bars for one symbol; columns are the bar contract plus ``regime`` (int8 index)."""
    n = cfg.n_bars
    params = [cfg.regimes[name] for name in REGIMES]
    root = np.random.SeedSequence([seed, zlib.crc32(symbol.encode())])
    streams = (np.random.default_rng(s) for s in root.spawn(6))
    g_regime, g_ret, g_jump, g_vol, g_wick, g_base = streams
    # One draw per stream, row-major, so the first n rows never depend on n.

    regime = _regime_path(n, _transition_matrix(params), g_regime)
    drift = np.array([p.drift for p in params])[regime]
    vol = np.array([p.vol for p in params])[regime]
    theta = np.array([p.mean_reversion for p in params])[regime]
    eps = g_ret.standard_normal(n) * vol
    prev_eps = np.concatenate([[0.0], eps[:-1]])
    jump_draw = g_jump.random((n, 2))
    jump_u, jump_z = jump_draw[:, 0], _std_normal(jump_draw[:, 1])
    jump = np.where(
        jump_u < np.array([p.jump_prob for p in params])[regime],
        np.array([p.jump_mean for p in params])[regime]
        + jump_z * np.array([p.jump_std for p in params])[regime],
        0.0,
    )
    log_ret = drift + eps - theta * prev_eps + jump

    p0 = float(g_base.uniform(50, 200))
    base_volume = float(g_base.uniform(5e3, 5e4))
    close = p0 * np.exp(np.cumsum(log_ret))
    wick = g_wick.standard_normal((n, 3))
    open_ = np.concatenate([[p0], close[:-1]]) * np.exp(wick[:, 0] * vol * 0.1)
    wick_hi = np.abs(wick[:, 1]) * vol * 0.6
    wick_lo = np.abs(wick[:, 2]) * vol * 0.6
    high = np.maximum(open_, close) * np.exp(wick_hi)
    low = np.minimum(open_, close) * np.exp(-wick_lo)
    level = np.array([p.volume for p in params])[regime]
    volume = base_volume * level * np.exp(g_vol.standard_normal(n) * 0.3 - 0.045)

    ts = pd.date_range(pd.Timestamp(cfg.start).tz_convert("UTC"), periods=n, freq=cfg.interval)
    return pd.DataFrame(
        {
            "ts": ts,
            "symbol": symbol,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            TRUE_REGIME_COLUMN: regime,
        }
    )


def generate_bars(cfg: SyntheticConfig, seed: int) -> pd.DataFrame:
    """All configured symbols, sorted by (symbol, ts)."""
    frames = [generate_symbol(s, cfg, seed) for s in cfg.symbols]
    return pd.concat(frames, ignore_index=True).sort_values(["symbol", "ts"], ignore_index=True)
