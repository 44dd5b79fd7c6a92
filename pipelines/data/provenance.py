"""What a workdir's bar store holds, so two sources never end up mixed in one store.

A bar store appends whatever it is given, keyed only on (symbol, ts). Two profiles sharing a
workdir (say a demo on one generator, then a run of another generator or of a user's CSV
files) would otherwise leave the store holding a mix of both, and the next training would
learn from bars no single source produced. So the store records its source in
``_source.json`` beside the watermarks, and :func:`claim_store` refuses a run whose source is
a different one, with one line that says what the store holds and what to do.

A source's fingerprint has two parts:

* ``identity``: what must be equal for new bars to belong with the stored ones. For the
  generator that is the seed, the symbols, the start, the interval and the regime dynamics,
  but not ``n_bars``: the generator is prefix-stable in ``n_bars``, so a longer run of the
  same generator is an incremental append. For files it is the resolved path (a file or a
  folder; files that grow keep appending); for S3 the URI and endpoint; for the package
  samples the set of names.
* ``details``: recorded for people (profile, ``n_bars``, each file's name, size and sha256),
  never compared.

Pure apart from reading the source files for their hashes and writing ``_source.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configs.data import DataConfig
from pipelines.data.errors import DataError
from pipelines.data.sources import file_kind
from pipelines.data.store import watermarks

logger = logging.getLogger(__name__)

#: The record, next to the store's ``_watermarks.json``.
PROVENANCE_FILE = "_source.json"
_FORMAT = 1


class SourceMismatchError(DataError):
    """A run's source differs from the one whose bars the store already holds."""


@dataclass(frozen=True)
class SourceFingerprint:
    """Which source a set of bars came from (see the module docstring)."""

    kind: str
    identity: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)

    def same_source(self, other: SourceFingerprint) -> bool:
        """True when bars of ``other`` may be appended to bars of ``self``."""
        return self.kind == other.kind and _canon(self.identity) == _canon(other.identity)

    def describe(self) -> str:
        """Short human text, e.g. ``synthetic(seed=7, n_bars=20000, symbols=SYN1,SYN2)``."""
        ident, det = self.identity, self.details
        if self.kind == "synthetic":
            parts = [
                f"seed={ident['seed']}",
                f"n_bars={det.get('n_bars', '?')}",
                f"symbols={','.join(ident['symbols'])}",
                f"start={ident['start']}",
                f"interval={ident['interval']}",
            ]
        elif self.kind == "files":
            parts = [str(ident["path"])]
            parts += [f"data.files.{k}={v}" for k, v in sorted(ident.get("options", {}).items())]
            if "files" in det:
                parts.append(f"{len(det['files'])} file(s)")
        elif self.kind == "s3":
            parts = [str(ident["uri"])]
            parts += [f"data.files.{k}={v}" for k, v in sorted(ident.get("options", {}).items())]
        else:
            parts = [",".join(ident["names"])]
        profile = det.get("profile")
        return f"{self.kind}({', '.join(parts)})" + (f" of profile {profile!r}" if profile else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the ``_source.json`` record)."""
        return {
            "format": _FORMAT,
            "kind": self.kind,
            "identity": self.identity,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceFingerprint:
        """Inverse of :meth:`to_dict`."""
        return cls(kind=str(data["kind"]), identity=data["identity"], details=data["details"])


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_set(path: Path) -> list[dict[str, Any]]:
    """Name, size and sha256 of every data file the files source would read."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and file_kind(f.name) is not None)
    else:
        files = []
    return [{"name": f.name, "size": f.stat().st_size, "sha256": _sha256(f)} for f in files]


def source_fingerprint(
    cfg: DataConfig, seed: int, profile: str | None = None, *, hash_files: bool = True
) -> SourceFingerprint:
    """The fingerprint of ``cfg.source`` as configured (the seed matters only for synthetic).

    ``hash_files=False`` skips the per-file details (names, sizes, sha256), which are never
    compared: enough for a quick check before a run starts.
    """
    details: dict[str, Any] = {"profile": profile} if profile else {}
    if cfg.source == "synthetic":
        syn = cfg.synthetic
        identity: dict[str, Any] = {
            "seed": seed,
            "symbols": list(syn.symbols),
            "start": syn.start.isoformat(),
            "interval": syn.interval,
            "regimes": {k: v.model_dump(mode="json") for k, v in sorted(syn.regimes.items())},
        }
        if syn.drift.enabled:  # a drift world is other bars; the stationary identity is unchanged
            identity["drift"] = syn.drift.model_dump(mode="json")
        details["n_bars"] = syn.n_bars
    elif cfg.source == "files":
        if cfg.path is None:
            raise DataError("config", "data.path must be set when data.source is 'files'")
        resolved = Path(cfg.path).expanduser().resolve()
        identity = {"path": str(resolved), **_import_options(cfg)}
        if hash_files:
            details["files"] = _file_set(resolved)
    elif cfg.source == "s3":
        identity = {"uri": cfg.s3_uri, "endpoint_url": cfg.s3_endpoint_url, **_import_options(cfg)}
    else:
        identity = {"names": sorted(cfg.sample)}
    if cfg.exogenous:  # only when configured: a run without them records what it always did
        details["exogenous"] = _exogenous_record(cfg, hash_files)
    return SourceFingerprint(kind=cfg.source, identity=identity, details=details)


def _exogenous_record(cfg: DataConfig, hash_files: bool) -> list[dict[str, Any]]:
    """Each configured exogenous series (its settings, and each file's name, size and sha256).

    Recorded in ``details``, not compared: the bar store holds bars only, and the series are
    read afresh by every run, so adding or changing one never refuses a workdir.
    """
    out = []
    for spec in cfg.exogenous:
        entry = spec.model_dump(mode="json", exclude_none=True)
        if spec.path is not None:
            resolved = Path(spec.path).expanduser().resolve()
            entry["path"] = str(resolved)
            if hash_files:
                entry["files"] = _file_set(resolved)
        out.append(entry)
    return out


def _import_options(cfg: DataConfig) -> dict[str, Any]:
    """How the files are read (``data.files``: separator, decimal, epoch unit, timezone,
    close column), as far as it differs from the defaults: the same files read another way
    are other bars (an adjusted close is another price series), so changing one on a workdir
    is refused. Defaults are left out, so stores recorded before options counted still match.
    """
    defaults = type(cfg.files)().model_dump(mode="json")
    given = cfg.files.model_dump(mode="json")
    changed = {k: v for k, v in given.items() if v != defaults.get(k)}
    return {"options": changed} if changed else {}


def read_provenance(store_root: Path | str) -> SourceFingerprint | None:
    """The recorded source of a bar store, or ``None`` when it has no record."""
    path = Path(store_root) / PROVENANCE_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != _FORMAT:
        raise ValueError(f"{path}: unsupported provenance format {data.get('format')!r}")
    return SourceFingerprint.from_dict(data)


def _write(store_root: Path, fp: SourceFingerprint) -> None:
    store_root.mkdir(parents=True, exist_ok=True)
    path = store_root / PROVENANCE_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(fp.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def claim_store(
    store_root: Path | str,
    fp: SourceFingerprint,
    *,
    workdir: Path | str | None = None,
    record: bool = True,
) -> SourceFingerprint | None:
    """Check that ``fp`` may append to the store at ``store_root`` and record it.

    An empty store (no committed bars) is claimed by any source. A store holding bars of the
    same source is updated (its details follow the latest run). A store holding bars of another
    source raises :class:`SourceMismatchError` naming both; nothing is written then. A store
    with bars but no record (made before records existed) is adopted by this source, with a
    warning, since what it holds can no longer be told.

    ``record=False`` only checks (the CLI does, before starting a flow). Returns the previous
    record (``None`` when there was none).
    """
    root = Path(store_root)
    previous = read_provenance(root)
    has_bars = root.exists() and bool(watermarks(root))
    if has_bars and previous is not None and not previous.same_source(fp):
        where = f"workdir {workdir}" if workdir is not None else f"bar store {root}"
        raise SourceMismatchError(
            str(root / PROVENANCE_FILE),
            f"{where} holds bars from {previous.describe()}; this run's source is "
            f"{fp.describe()}: use another --workdir or `edgeflow reset-data`",
        )
    if not record:
        return previous
    if has_bars and previous is None:
        logger.warning(
            "%s holds bars but no record of their source; recording %s", root, fp.describe()
        )
    _write(root, fp)
    return previous
