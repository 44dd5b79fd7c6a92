"""Cross-asset features: each symbol against the others (or a named benchmark symbol).

Formulas and the behaviour with one symbol are in ``docs/features.md`` ("Cross-asset
features"). In short: all symbols' log closes are laid on the union of their timestamps and
carried forward (a symbol without a bar at ``t`` keeps its last close, which is causal), and
``r`` is the one-row log return on that grid. Symbol ``s``'s reference return ``q`` is the
benchmark's return, or (no benchmark, or ``s`` is the benchmark) the mean return of the other
symbols that have one. Windows count rows of that grid and end at ``t``; their sums are
prefix-sum differences, so a row depends only on rows at or before it.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from configs.data import CrossAssetConfig

#: The cross-asset features in column order (the same for any number of symbols).
CROSS_ASSET_NAMES: Final[tuple[str, ...]] = (
    "xa_corr",
    "xa_beta",
    "xa_lead",
    "xa_lag",
    "xa_rs_24",
    "xa_rs_168",
    "xa_dispersion_24",
    "xa_missing",
)
_RS_WINDOWS: Final = (24, 168)
_DISPERSION_WINDOW: Final = 24
_MIN_PAIRS: Final = 10
_VAR_EPS: Final = 1e-18


def _ns(ts: pd.Series) -> np.ndarray:
    idx = pd.DatetimeIndex(ts)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return np.asarray(idx.as_unit("ns").asi8, dtype=np.int64)


def _ffill(a: np.ndarray) -> np.ndarray:
    """Carry each column's last finite value forward (NaN before its first one)."""
    rows = np.arange(a.shape[0])[:, None]
    idx = np.where(np.isfinite(a), rows, 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    return np.take_along_axis(a, idx, axis=0)


def _lag(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    if n < len(x):
        out[n:] = x[: len(x) - n]
    return out


def _wsum(x: np.ndarray, window: int) -> np.ndarray:
    """Sum over the last ``window`` rows (fewer at the start) via one prefix sum."""
    c = np.concatenate(([0.0], np.cumsum(x)))
    g = np.arange(1, len(x) + 1)
    return c[g] - c[np.maximum(g - window, 0)]


def _moments(
    x: np.ndarray, y: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pairs, cov, var x, var y) over the rows where both are finite (population form)."""
    m = np.isfinite(x) & np.isfinite(y)
    x0 = np.where(m, x, 0.0)
    y0 = np.where(m, y, 0.0)
    n = _wsum(m.astype(np.float64), window)
    safe = np.maximum(n, 1.0)
    mx = _wsum(x0, window) / safe
    my = _wsum(y0, window) / safe
    cov = _wsum(x0 * y0, window) / safe - mx * my
    vx = _wsum(x0 * x0, window) / safe - mx * mx
    vy = _wsum(y0 * y0, window) / safe - my * my
    return n, cov, np.maximum(vx, 0.0), np.maximum(vy, 0.0)


def _corr(x: np.ndarray, y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pairs, corr, beta of x on y); 0 where a variance is ~0."""
    n, cov, vx, vy = _moments(x, y, window)
    den = np.sqrt(vx * vy)
    corr = np.clip(np.divide(cov, den, out=np.zeros_like(cov), where=den > _VAR_EPS), -1.0, 1.0)
    beta = np.divide(cov, vy, out=np.zeros_like(cov), where=vy > _VAR_EPS)
    return n, corr, beta


def _reference(r: np.ndarray, s: int, bench: int | None) -> np.ndarray:
    """Symbol ``s``'s reference return per grid row (NaN where there is none)."""
    if bench is not None and bench != s:
        return r[:, bench].copy()
    others = np.delete(r, s, axis=1)
    if others.shape[1] == 0:
        return np.full(r.shape[0], np.nan)
    cnt = np.isfinite(others).sum(axis=1)
    total = np.nansum(others, axis=1)
    return np.divide(total, cnt, out=np.full(r.shape[0], np.nan), where=cnt > 0)


def _dispersion(lcf: np.ndarray, window: int) -> np.ndarray:
    """Cross-sectional population std of the symbols' ``window``-row log returns (0 if < 2)."""
    ret = lcf - np.vstack([np.full((min(window, len(lcf)), lcf.shape[1]), np.nan), lcf[:-window]])
    ok = np.isfinite(ret)
    cnt = ok.sum(axis=1)
    r0 = np.where(ok, ret, 0.0)
    mean = np.divide(r0.sum(axis=1), cnt, out=np.zeros(len(cnt)), where=cnt > 0)
    dev = np.where(ok, ret - mean[:, None], 0.0)
    var = np.divide((dev * dev).sum(axis=1), cnt, out=np.zeros(len(cnt)), where=cnt > 1)
    return np.sqrt(var)


def cross_asset_features(
    ts: pd.Series, symbol: pd.Series, close: np.ndarray, cfg: CrossAssetConfig
) -> dict[str, np.ndarray]:
    """The :data:`CROSS_ASSET_NAMES` features of each bar (rows in the input's order), float64.

    ``ts``, ``symbol`` and ``close`` are the bars' columns; (symbol, ts) must be unique.
    """
    t = _ns(ts)
    codes, syms = pd.factorize(symbol.astype("str"), sort=True)
    bench: int | None = None
    if cfg.benchmark is not None:
        if cfg.benchmark not in set(syms):
            raise ValueError(
                f"data.cross_asset.benchmark {cfg.benchmark!r} is not among the symbols "
                f"({', '.join(map(str, syms))})"
            )
        bench = int(np.flatnonzero(np.asarray(syms) == cfg.benchmark)[0])
    grid, gidx = np.unique(t, return_inverse=True)
    lc = np.full((len(grid), len(syms)), np.nan)
    lc[gidx, codes] = np.log(np.asarray(close, dtype=np.float64))
    lcf = _ffill(lc)
    r = np.vstack([np.full((1, len(syms)), np.nan), np.diff(lcf, axis=0)])
    w = cfg.window
    min_pairs = max(_MIN_PAIRS, w // 2)
    disp = _dispersion(lcf, _DISPERSION_WINDOW)
    feats = np.zeros((len(grid), len(syms), len(CROSS_ASSET_NAMES)))
    for s in range(len(syms)):
        x = r[:, s]
        q = _reference(r, s, bench)
        n, corr, beta = _corr(x, q, w)
        _, lead, _ = _corr(x, _lag(q, 1), w)
        _, lag_, _ = _corr(_lag(x, 1), q, w)
        missing = n < min_pairs
        cols = [corr, beta, lead, lag_]
        for win in _RS_WINDOWS:
            d = x - q
            ok = np.isfinite(d)
            rs = _wsum(np.where(ok, d, 0.0), win)
            rs[_wsum(ok.astype(np.float64), win) < win // 2] = 0.0
            cols.append(rs)
        for j, col in enumerate(cols):
            feats[:, s, j] = np.where(missing, 0.0, col)
        feats[:, s, len(cols)] = disp
        feats[:, s, len(cols) + 1] = missing.astype(np.float64)
    picked = feats[gidx, codes]
    return {name: np.ascontiguousarray(picked[:, j]) for j, name in enumerate(CROSS_ASSET_NAMES)}
