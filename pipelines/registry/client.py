"""The verifying consumer: poll, verify everything, load, swap atomically, never regress.

``ModelClient`` is what a live Python bot embeds (a C# bot follows ``docs/manifest.md``).
It only ever serves bytes it verified itself, keeps serving the last good model when the
store is broken, refuses replayed pointers, and keeps its last good versions on local disk
(re-verified on restart) so a restart while the store is corrupted still serves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.registry.errors import (
    NoModelLoadedError,
    PointerMismatchError,
    RegistryError,
    ReplayError,
)
from pipelines.registry.manifest import canonical_json, check_model_name
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import FileStore, Store
from pipelines.registry.verify import (
    MANIFEST,
    SIG,
    VerifiedVersion,
    list_versions,
    read_pointer,
    verify_pointer_bytes,
    verify_version,
    version_prefix,
)

log = logging.getLogger(__name__)

ACCEPTED = "accepted.json"
_ORT_FLOAT = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


@dataclass(frozen=True)
class Prediction:
    """Model outputs by name, and which version and pointer sequence produced them."""

    outputs: dict[str, np.ndarray]
    version: str
    sequence: int


@dataclass(frozen=True)
class _Serving:
    version: str
    sequence: int
    manifest_sha256: str
    session: Any = field(repr=False)
    input_names: tuple[str, ...]
    input_types: tuple[str, ...]


class ModelClient:
    """Serve the newest verified version of one model from a store.

    Parameters
    ----------
    store, model, keyring:
        Where to poll, which model, and the (possibly verify-only) keys to trust.
    cache_dir:
        Local folder for the last good versions (same layout as a file store) and the last
        accepted pointer; it is re-verified on start, never trusted blindly.
    poll_interval:
        Seconds between polls of the background thread started by :meth:`start`.
    keep_cached:
        How many verified versions to keep on local disk.
    intra_op_threads:
        onnxruntime intra-op threads per session.
    """

    def __init__(
        self,
        store: Store,
        model: str,
        keyring: KeyRing,
        cache_dir: Path,
        *,
        poll_interval: float = 30.0,
        keep_cached: int = 3,
        intra_op_threads: int = 1,
    ) -> None:
        self.store = store
        self.model = check_model_name(model)
        self.keyring = keyring
        self.cache_dir = Path(cache_dir)
        self.poll_interval = poll_interval
        self.keep_cached = keep_cached
        self.intra_op_threads = intra_op_threads
        self.last_error: RegistryError | Exception | None = None
        self._serving: _Serving | None = None
        self._last_sequence: int | None = None
        self._cache_checked = False
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- state
    @property
    def version(self) -> str | None:
        s = self._serving
        return s.version if s else None

    @property
    def sequence(self) -> int | None:
        """The last pointer sequence accepted (a lower or equal one is refused)."""
        return self._last_sequence

    # ----------------------------------------------------------------- loading
    def _session(self, vv: VerifiedVersion) -> _Serving:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(
            vv.files[vv.primary_file()], sess_options=opts, providers=["CPUExecutionProvider"]
        )
        inputs = sess.get_inputs()
        return _Serving(
            version=vv.version,
            sequence=vv.sequence or 0,
            manifest_sha256=vv.manifest_sha256,
            session=sess,
            input_names=tuple(i.name for i in inputs),
            input_types=tuple(i.type for i in inputs),
        )

    def _swap(self, serving: _Serving) -> None:
        previous = self._serving
        self._serving = serving  # a single reference assignment: atomic for readers
        self._last_sequence = serving.sequence
        log.info(
            "%s: serving %s (sequence %d, was %s)",
            self.model,
            serving.version,
            serving.sequence,
            previous.version if previous else None,
        )

    def _load_cached(self) -> None:
        self._cache_checked = True
        cache = FileStore(self.cache_dir)
        accepted_key = f"{self.model}/{ACCEPTED}"
        if not cache.exists(accepted_key):
            return
        try:
            import json

            doc = json.loads(cache.read(accepted_key))
            pdata = str(doc["pointer"]).encode("utf-8")
            psig = str(doc["sig"]).encode("ascii")
            pointer = verify_pointer_bytes(pdata, psig, self.model, self.keyring)
            vv = verify_version(
                cache,
                self.model,
                pointer.version,
                self.keyring,
                expected_manifest_sha256=pointer.manifest_sha256,
            )
            vv = _with_sequence(vv, pointer.sequence)
            self._swap(self._session(vv))
            log.info("%s: restored %s from local cache %s", self.model, vv.version, self.cache_dir)
        except Exception as exc:
            self.last_error = exc
            log.warning(
                "%s: local cache %s unusable, ignoring it: %s", self.model, self.cache_dir, exc
            )

    def _save_cache(self, vv: VerifiedVersion) -> None:
        cache = FileStore(self.cache_dir)
        prefix = version_prefix(self.model, vv.version)
        for name, blob in vv.files.items():
            cache.write(f"{prefix}/{name}", blob)
        cache.write(f"{prefix}/{MANIFEST}", vv.manifest_bytes)
        cache.write(f"{prefix}/{MANIFEST}{SIG}", vv.manifest_sig)
        if vv.pointer_bytes is None or vv.pointer_sig is None:
            raise ValueError("only a version verified through its pointer can be cached")
        accepted = {"pointer": vv.pointer_bytes.decode("utf-8"), "sig": vv.pointer_sig.decode()}
        cache.write(f"{self.model}/{ACCEPTED}", canonical_json(accepted))
        keep = set(list_versions(cache, self.model)[-max(self.keep_cached - 1, 0) :]) | {vv.version}
        for old in list_versions(cache, self.model):
            if old not in keep:
                for key in cache.list_keys(version_prefix(self.model, old)):
                    cache.delete(key)

    # ----------------------------------------------------------------- polling
    def refresh(self) -> bool:
        """Poll once. True when a newer verified version was swapped in.

        Any failure (store down, bad signature, replay, unloadable model) is logged and kept
        in ``last_error``; the current model keeps serving.
        """
        with self._refresh_lock:
            if not self._cache_checked:
                self._load_cached()
            try:
                return self._refresh()
            except Exception as exc:
                self.last_error = exc
                log.warning(
                    "%s: keeping %s: %s: %s",
                    self.model,
                    self.version,
                    getattr(exc, "code", type(exc).__name__),
                    exc,
                )
                return False

    def _refresh(self) -> bool:
        pointer, pdata, psig = read_pointer(self.store, self.model, self.keyring)
        current = self._serving
        last = self._last_sequence
        if last is not None and pointer.sequence <= last:
            if (
                current is not None
                and pointer.sequence == current.sequence
                and pointer.manifest_sha256 == current.manifest_sha256
            ):
                self.last_error = None
                return False
            if pointer.sequence == last:
                raise PointerMismatchError(
                    f"{self.model}/LATEST reuses sequence {last} for another manifest"
                )
            raise ReplayError(
                f"{self.model}/LATEST has sequence {pointer.sequence}, not above the last "
                f"accepted {last}: refusing a replayed pointer"
            )
        vv = verify_version(
            self.store,
            self.model,
            pointer.version,
            self.keyring,
            expected_manifest_sha256=pointer.manifest_sha256,
        )
        vv = _with_sequence(vv, pointer.sequence, pdata, psig)
        serving = self._session(vv)
        try:
            self._save_cache(vv)
        except OSError as exc:
            log.warning("%s: could not cache %s locally: %s", self.model, vv.version, exc)
        self._swap(serving)
        self.last_error = None
        return True

    def start(self) -> None:
        """Poll in a daemon thread every ``poll_interval`` seconds (first poll immediately)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"ModelClient-{self.model}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.poll_interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # ----------------------------------------------------------------- serving
    def predict(self, features: np.ndarray | Mapping[str, np.ndarray]) -> Prediction:
        """Run the serving model. An array feeds the first input (a 1-D row becomes [1, n]).

        Thread-safe: the session is taken once, so a concurrent swap never mixes versions.
        """
        serving = self._serving
        if serving is None:
            raise NoModelLoadedError(
                f"{self.model}: no verified model loaded yet"
                + (f" (last error: {self.last_error})" if self.last_error else "")
            )
        if isinstance(features, Mapping):
            feeds = {k: np.asarray(v) for k, v in features.items()}
        else:
            arr = np.asarray(features)
            if arr.ndim == 1:
                arr = arr[None, :]
            dtype = _ORT_FLOAT.get(serving.input_types[0])
            feeds = {serving.input_names[0]: arr.astype(dtype) if dtype else arr}
        outs = serving.session.run(None, feeds)
        names = [o.name for o in serving.session.get_outputs()]
        return Prediction(dict(zip(names, outs, strict=True)), serving.version, serving.sequence)


def _with_sequence(
    vv: VerifiedVersion, sequence: int, pdata: bytes | None = None, psig: bytes | None = None
) -> VerifiedVersion:
    from dataclasses import replace

    return replace(
        vv,
        sequence=sequence,
        pointer_bytes=pdata if pdata is not None else vv.pointer_bytes,
        pointer_sig=psig if psig is not None else vv.pointer_sig,
    )
