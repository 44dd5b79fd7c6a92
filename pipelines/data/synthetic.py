"""Seeded regime-switching bar generator: the embedded default source.

Each symbol has its own seed streams (regime chain, returns, jumps, volume, wicks), each drawn
sequentially, so the series is prefix-stable: asking for more bars extends, never rewrites,
what was generated before. That is what lets incremental collection be tested on it.
The true regime is kept in ``regime`` for evaluation; it is never a feature.

Price dynamics per regime (``RegimeParams``), in log price ``L``, with innovations
``u_t = vol * z_t + jump_t``:

* random-walk regimes (``half_life=None``: TREND_UP, TREND_DOWN, PANIC by default):
  ``L_t = L_{t-1} + drift + u_t``;
* mean-reverting regimes (``half_life`` set: RANGE by default): the log price is an
  Ornstein-Uhlenbeck / AR(1) process around an *anchor*, the log price just before the regime
  segment began, which moves only by ``drift`` per bar (0 for RANGE):
  ``L_t = anchor + drift * k + x_t``, ``x_t = phi * x_{t-1} + u_t``, ``x = 0`` before the
  segment's first bar, ``phi = 0.5 ** (1 / half_life)``. A stretch away from the anchor decays
  by half in ``half_life`` bars, so ranging markets revert in *level* (what Bollinger, z-score
  and RSI rules fade) rather than only giving back the last bar's move, and the deviation stays
  bounded (stationary std ``vol / sqrt(1 - phi**2)``, about 1.2 % for RANGE's vol 0.004 and
  half-life 12) while the per-bar volatility stays about ``vol``. Jumps inside a range revert
  too. Half-life 12 (within the 10-30 bars typical of hourly ranges) was chosen on seeds other
  than the demo's: in RANGE the Bollinger arm then earns about +10 bps per 6-bar decision
  while the trend arms lose 14-24 bps (the old MA(1) "reversion": +8 vs -5), and trend arms
  still win in TREND_UP / TREND_DOWN.

PANIC's drift (-0.1 %/bar plus jumps averaging -2 %) makes a typical panic episode (about 67
bars) fall some 10-15 %: a sell-off, not the near-wipe-out of the earlier -0.3 %/bar and -3 %.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from scipy.special import ndtri, stdtrit

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


def _reverting_log_returns(
    innovations: np.ndarray, regime: np.ndarray, phi_by_regime: np.ndarray
) -> np.ndarray:
    """Log returns with each mean-reverting segment's level an AR(1) around its anchor.

    Bars of random-walk regimes (``phi`` = 1) return their innovation unchanged. For each
    maximal run of one reverting regime, the deviation ``x`` from the anchor is the AR(1)
    filter of the run's innovations started from 0, and the returns are its first
    differences. The filter is causal and restarts at every segment, so a prefix of the
    series gives the same returns as the full series (prefix stability).
    """
    out = innovations.copy()
    n = len(regime)
    if n == 0:
        return out
    starts = np.flatnonzero(np.diff(regime.astype(np.int64), prepend=-1) != 0)
    ends = np.append(starts[1:], n)
    for start, end in zip(starts, ends, strict=True):
        phi = float(phi_by_regime[regime[start]])
        if phi >= 1.0:
            continue
        x = lfilter([1.0], [1.0, -phi], innovations[start:end])
        out[start:end] = np.diff(x, prepend=0.0)
    return out


def _student_t(u: np.ndarray, df: float) -> np.ndarray:
    """Uniforms to unit-variance Student-t draws (inverse CDF, one uniform per draw)."""
    t = stdtrit(df, np.clip(u, 1e-12, 1 - 1e-12))
    return np.asarray(t * np.sqrt((df - 2.0) / df), dtype=np.float64)


def _garch_shocks(
    z: np.ndarray,
    jump: np.ndarray,
    omega: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    sigma_max: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) shocks ``e_t = sigma_t z_t + jump_t`` and their conditional vol ``sigma_t``.

    ``sigma_t^2 = omega_t + alpha_t e_{t-1}^2 + beta_t sigma_{t-1}^2`` with the parameters of
    bar ``t``'s regime, so variance carries over a regime switch and drifts to the new
    regime's long-run level instead of jumping to it: the level alone does not name the
    regime, its clustering does. ``sigma_t`` is capped at ``sigma_max[t]`` when given: with
    Student-t innovations a rare run of large draws can otherwise compound into 30-40 %
    hourly bars (the fourth moment of a GARCH-t(5) with alpha 0.12 is infinite). The
    recursion starts at the first regime's long-run variance and is causal, so a prefix of
    the series gets the same shocks (prefix stability).
    """
    n = len(z)
    e = np.empty(n)
    sig = np.empty(n)
    if n == 0:
        return e, sig
    h = float(omega[0] / (1.0 - alpha[0] - beta[0]))
    zz, jj, om, al, be = z.tolist(), jump.tolist(), omega.tolist(), alpha.tolist(), beta.tolist()
    cap = (np.full(n, np.inf) if sigma_max is None else sigma_max**2).tolist()
    h = min(h, cap[0])
    prev = 0.0
    for t in range(n):  # sequential by nature; ~1 s per million bars
        if t:
            h = min(om[t] + al[t] * prev * prev + be[t] * h, cap[t])
        s_t = h**0.5
        prev = s_t * zz[t] + jj[t]
        e[t] = prev
        sig[t] = s_t
    return e, sig


def _bar_frame(
    symbol: str,
    cfg: SyntheticConfig,
    log_ret: np.ndarray,
    sigma: np.ndarray,
    g_wick: np.random.Generator,
    g_vol: np.random.Generator,
    g_base: np.random.Generator,
    ref_vol: float,
) -> pd.DataFrame:
    """OHLCV bars from log returns and conditional vol; volume follows vol, not the regime.

    ``log volume = log base + elasticity * log(sigma_t / ref_vol) + AR(1) noise``: busy
    markets trade more (the volume-volatility relation of real bars), with one mapping for
    every regime so volume carries no label of its own. ``ref_vol`` is a constant of the
    config (not of the series), so volume stays prefix-stable.
    """
    n = len(log_ret)
    p0 = float(g_base.uniform(50, 200))
    base_volume = float(g_base.uniform(5e3, 5e4))
    close = p0 * np.exp(np.cumsum(log_ret))
    wick = g_wick.standard_normal((n, 3))
    open_ = np.concatenate([[p0], close[:-1]]) * np.exp(wick[:, 0] * sigma * 0.1)
    wick_hi = np.abs(wick[:, 1]) * sigma * 0.6
    wick_lo = np.abs(wick[:, 2]) * sigma * 0.6
    high = np.maximum(open_, close) * np.exp(wick_hi)
    low = np.minimum(open_, close) * np.exp(-wick_lo)
    rho = cfg.volume_persistence
    noise = lfilter([np.sqrt(1.0 - rho**2)], [1.0, -rho], g_vol.standard_normal(n))
    log_vol = cfg.volume_vol_elasticity * np.log(sigma / ref_vol) + cfg.volume_noise * noise
    volume = base_volume * np.exp(log_vol - 0.5 * cfg.volume_noise**2)
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
        }
    )


def _reference_vol(cfg: SyntheticConfig) -> float:
    """The volume mapping's scale: the geometric mean of the regimes' long-run vols."""
    return float(np.exp(np.mean([np.log(p.vol) for p in cfg.regimes.values()])))


def _swapped(t: np.ndarray, cfg: SyntheticConfig) -> np.ndarray:
    """Whether bar ``t`` lies in a swapped period of the drift schedule (always False when
    drift is off). Depends on the bar's position only, so the series stays prefix-stable."""
    if not cfg.drift.enabled:
        return np.zeros(len(t), dtype=bool)
    return (t // cfg.drift.period_bars) % 2 == 1


def _dynamics_code(regime: np.ndarray, cfg: SyntheticConfig) -> np.ndarray:
    """Which mean-reversion rule a bar follows: its regime index, plus ``len(REGIMES)`` in a
    swapped drift period. A regime run that crosses a period boundary is two segments, each
    reverting around its own anchor."""
    swapped = _swapped(np.arange(len(regime)), cfg)
    return regime.astype(np.int64) + len(REGIMES) * swapped.astype(np.int64)


def _phi_by_dynamics(params: list[RegimeParams], cfg: SyntheticConfig) -> np.ndarray:
    """AR(1) coefficient of each dynamics code: the regimes' own half-lives, then (swapped
    periods) the trend regimes reverting with ``drift.trend_half_life`` and RANGE walking."""

    def phi(half_life: float | None) -> float:
        return 1.0 if half_life is None else 0.5 ** (1.0 / half_life)

    own = [phi(p.half_life) for p in params]
    trend = cfg.drift.trend_half_life
    swapped = [
        phi(trend) if name in ("TREND_UP", "TREND_DOWN") else 1.0 if name == "RANGE" else own[i]
        for i, name in enumerate(REGIMES)
    ]
    return np.asarray(own + swapped, dtype=np.float64)


def generate_symbol(symbol: str, cfg: SyntheticConfig, seed: int) -> pd.DataFrame:
    """Bars for one symbol; columns are the bar contract plus ``regime`` (int8 index)."""
    n = cfg.n_bars
    params = [cfg.regimes[name] for name in REGIMES]
    root = np.random.SeedSequence([seed, zlib.crc32(symbol.encode())])
    streams = (np.random.default_rng(s) for s in root.spawn(6))
    g_regime, g_ret, g_jump, g_vol, g_wick, g_base = streams
    # One draw per stream, row-major, so the first n rows never depend on n.

    regime = _regime_path(n, _transition_matrix(params), g_regime)
    dynamics = _dynamics_code(regime, cfg)

    def per_bar(values: list[float]) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)[regime]

    drift = per_bar([p.drift for p in params])
    alpha = per_bar([p.garch_alpha for p in params])
    beta = per_bar([p.garch_beta for p in params])
    omega = per_bar([p.vol**2 * (1.0 - p.garch_alpha - p.garch_beta) for p in params])
    phi = _phi_by_dynamics(params, cfg)
    z = _student_t(g_ret.random(n), cfg.tail_df)
    jump_draw = g_jump.random((n, 2))
    jump_u, jump_z = jump_draw[:, 0], _std_normal(jump_draw[:, 1])
    jump = np.where(
        jump_u < per_bar([p.jump_prob for p in params]),
        per_bar([p.jump_mean for p in params]) + jump_z * per_bar([p.jump_std for p in params]),
        0.0,
    )
    sigma_max = cfg.vol_cap * per_bar([p.vol for p in params])
    shocks, sigma = _garch_shocks(z, jump, omega, alpha, beta, sigma_max)
    log_ret = drift + _reverting_log_returns(shocks, dynamics, phi)
    frame = _bar_frame(symbol, cfg, log_ret, sigma, g_wick, g_vol, g_base, _reference_vol(cfg))
    frame[TRUE_REGIME_COLUMN] = regime
    return frame


def generate_bars(cfg: SyntheticConfig, seed: int) -> pd.DataFrame:
    """All configured symbols, sorted by (symbol, ts)."""
    frames = [generate_symbol(s, cfg, seed) for s in cfg.symbols]
    return pd.concat(frames, ignore_index=True).sort_values(["symbol", "ts"], ignore_index=True)


def generate_null_symbol(symbol: str, cfg: SyntheticConfig, seed: int) -> pd.DataFrame:
    """One symbol of the null world: GARCH(1,1)-t log returns, zero drift, no regimes."""
    n = cfg.n_bars
    nul = cfg.null
    # A different root than generate_symbol's, so a null series is not a twin of a regime one.
    root = np.random.SeedSequence([seed, zlib.crc32(symbol.encode()), 0x4E554C4C])
    g_ret, g_vol, g_wick, g_base = (np.random.default_rng(s) for s in root.spawn(4))
    z = _student_t(g_ret.random(n), cfg.tail_df)
    const = np.ones(n)
    omega = const * nul.vol**2 * (1.0 - nul.garch_alpha - nul.garch_beta)
    shocks, sigma = _garch_shocks(
        z,
        np.zeros(n),
        omega,
        const * nul.garch_alpha,
        const * nul.garch_beta,
        const * cfg.vol_cap * nul.vol,
    )
    return _bar_frame(symbol, cfg, shocks, sigma, g_wick, g_vol, g_base, nul.vol)


def generate_null_bars(cfg: SyntheticConfig, seed: int) -> pd.DataFrame:
    """The null world for placebo tests: same bar contract, nothing to learn.

    Every symbol is a GARCH(1,1) process with unit-variance Student-t innovations
    (``cfg.tail_df``) and no drift, no regime switching and no mean reversion: returns are
    a martingale difference, so no strategy, sizer or classifier has a real edge, and any
    gate that publishes on it is a false publish. Volume follows conditional vol as in
    :func:`generate_bars`. There is no ``regime`` column (there is no truth to learn), so
    labelling code takes its real-data path. Sorted by (symbol, ts); seeded and prefix-stable.
    """
    frames = [generate_null_symbol(s, cfg, seed) for s in cfg.symbols]
    return pd.concat(frames, ignore_index=True).sort_values(["symbol", "ts"], ignore_index=True)
