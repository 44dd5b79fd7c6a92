"""The 43 own-bar features plus the optional exogenous and cross-asset ones.

``featurize_extended(bars)`` with nothing configured is ``featurize(bars)`` itself (the same
object, byte for byte). With exogenous series or cross-asset features configured, their
columns are appended after the 43, in the order :func:`extended_feature_names` gives; the 43
keep their names, order and values, and :attr:`FeatureSet.X` stays the 43 own-bar features, so
a consumer that selects ``FEATURE_NAMES`` is unaffected. :func:`feature_manifest` names every
column with its source.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from configs.data import CrossAssetConfig
from pipelines.data.exogenous import ExogenousData
from pipelines.features.cross_asset import CROSS_ASSET_NAMES, cross_asset_features
from pipelines.features.exogenous import exogenous_feature_names, join_exogenous
from pipelines.features.featureset import FeatureSet
from pipelines.features.names import FEATURE_NAMES

#: Bumped when a formula of any feature changes: a model trained on one version must not be
#: fed features of another (the manifest records it beside every column's name and source).
FEATURE_SET_VERSION = 1


def extended_feature_names(
    exogenous: Sequence[ExogenousData] = (), cross_asset: CrossAssetConfig | None = None
) -> tuple[str, ...]:
    """Every feature column in order: the 43, then cross-asset, then exogenous."""
    xa = CROSS_ASSET_NAMES if cross_asset is not None and cross_asset.enabled else ()
    return (*FEATURE_NAMES, *xa, *exogenous_feature_names(exogenous))


def feature_manifest(
    exogenous: Sequence[ExogenousData] = (), cross_asset: CrossAssetConfig | None = None
) -> list[dict[str, Any]]:
    """One entry per feature column, in order: name and source (``bars``, ``cross_asset`` or
    ``exogenous:<series>`` with its origin and publication lag)."""
    out: list[dict[str, Any]] = [{"name": n, "source": "bars"} for n in FEATURE_NAMES]
    if cross_asset is not None and cross_asset.enabled:
        params = {"window": cross_asset.window, "benchmark": cross_asset.benchmark}
        out += [{"name": n, "source": "cross_asset", **params} for n in CROSS_ASSET_NAMES]
    for s in exogenous:
        meta = {"source": f"exogenous:{s.name}", "origin": s.origin, "lag": str(s.lag)}
        out += [{"name": n, **meta} for n in exogenous_feature_names([s])]
    return out


def feature_set_record(
    exogenous: Sequence[ExogenousData] = (), cross_asset: CrossAssetConfig | None = None
) -> dict[str, Any]:
    """What a model's manifest records about its inputs: :data:`FEATURE_SET_VERSION`, a
    content id (sha256 of the column list with each source and its parameters, 16 hex) that
    differs whenever the columns, their order or their sources do, and the list itself."""
    columns = feature_manifest(exogenous, cross_asset)
    blob = json.dumps(
        {"version": FEATURE_SET_VERSION, "columns": columns}, sort_keys=True, default=str
    )
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return {"version": FEATURE_SET_VERSION, "id": digest, "columns": columns}


def featurize_extended(
    bars: pd.DataFrame,
    exogenous: Sequence[ExogenousData] = (),
    cross_asset: CrossAssetConfig | None = None,
) -> FeatureSet:
    """``featurize(bars)`` with the configured extra columns appended (float32, finite)."""
    from pipelines.features.compute import featurize  # numba: only where the 43 are computed

    return extend_features(featurize(bars), bars, exogenous, cross_asset)


def extend_features(
    fs: FeatureSet,
    bars: pd.DataFrame,
    exogenous: Sequence[ExogenousData] = (),
    cross_asset: CrossAssetConfig | None = None,
) -> FeatureSet:
    """``fs = featurize(bars)`` with the configured extra columns appended: the training flow
    featurizes the 43 in a child process (numba stays out of the trainer) and appends these,
    plain numpy and pandas, in its own. Nothing configured returns ``fs`` itself.

    Cross-asset features are computed on every bar (warm-up rows included, so the windows are
    full where the 43 are), then kept for the rows ``featurize`` keeps.
    """
    xa_on = cross_asset is not None and cross_asset.enabled
    if not exogenous and not xa_on:
        return fs
    frame = fs.frame
    extra: dict[str, np.ndarray] = {}
    if xa_on:
        assert cross_asset is not None
        full = cross_asset_features(
            bars["ts"], bars["symbol"], bars["close"].to_numpy(np.float64), cross_asset
        )
        keys = pd.DataFrame(
            {"ts": _utc(bars["ts"]), "symbol": bars["symbol"].astype("str").to_numpy()}
        )
        keys["_pos"] = np.arange(len(bars))
        wanted = pd.DataFrame({"ts": _utc(frame["ts"]), "symbol": frame["symbol"].to_numpy()})
        pos = wanted.merge(keys, on=["ts", "symbol"], how="left", validate="1:1")["_pos"]
        rows = pos.to_numpy(dtype=np.int64)
        extra.update({name: values[rows] for name, values in full.items()})
    extra.update(join_exogenous(frame["ts"], exogenous))
    names = extended_feature_names(exogenous, cross_asset)[len(FEATURE_NAMES) :]
    block = pd.DataFrame({n: extra[n].astype(np.float32) for n in names}, index=frame.index)
    bad = ~np.isfinite(block.to_numpy())
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise ValueError(f"feature {names[col]!r} is not finite at row {row}")
    return FeatureSet(frame=pd.concat([frame, block], axis=1), warmup_dropped=fs.warmup_dropped)


def _utc(ts: pd.Series) -> pd.Series:
    idx = pd.DatetimeIndex(ts)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return pd.Series(idx.as_unit("ns"))
