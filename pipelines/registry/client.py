"""The verifying consumer: poll, verify everything, load, swap atomically, never regress.

``ModelClient`` is what a live Python bot embeds (a C# bot follows ``docs/manifest.md``).
It only ever serves bytes it verified itself, keeps serving the last good model when the
store is broken, refuses replayed pointers (the accepted sequence is persisted, fsynced, in
its own state file before a new model is served), remembers versions it found bad by
manifest hash, alerts on an expired pointer while it keeps serving, and keeps its last good
versions on local disk (re-verified on restart) so a restart while the store is corrupted
still serves.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.registry.errors import (
    ExternalDataError,
    FileHashMismatchError,
    FileSizeMismatchError,
    ManifestInvalidError,
    ModelUnloadableError,
    NoModelLoadedError,
    PathEscapeError,
    PointerExpiredError,
    PointerMismatchError,
    RegistryError,
    ReplayError,
    StoreError,
    UnsafeObjectError,
    VerificationError,
    VersionMismatchError,
)
from pipelines.registry.manifest import (
    MAX_ENVELOPE_BYTES,
    Pointer,
    canonical_json,
    check_model_name,
    format_time,
)
from pipelines.registry.onnx_check import parse_onnx, refuse_external_data
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import FileStore, Store
from pipelines.registry.verify import (
    MANIFEST,
    SIG,
    VerifiedVersion,
    check_fresh,
    list_versions,
    newer_history,
    read_pointer,
    verify_pointer_bytes,
    verify_version,
    version_prefix,
)

log = logging.getLogger(__name__)

ACCEPTED = "accepted.json"
STATE_DIR = "state"
MAX_STATE_BYTES = 4096
MAX_BAD_VERSIONS = 64
# content failures worth remembering by manifest hash (a transient store error is not one)
_BAD_CONTENT = (
    FileHashMismatchError,
    FileSizeMismatchError,
    PathEscapeError,
    ManifestInvalidError,
    VersionMismatchError,
    ExternalDataError,
    ModelUnloadableError,
    UnsafeObjectError,
)


class ClientStateError(VerificationError):
    """The consumer's state file cannot be read or parsed."""

    code = "state-invalid"


@dataclass(frozen=True)
class ClientState:
    """The last pointer a consumer accepted (what ``edgeflow verify --state`` reads)."""

    model: str
    version: str
    sequence: int
    manifest_sha256: str
    accepted_at: str


def state_path(cache_dir: Path, model: str) -> Path:
    return Path(cache_dir) / STATE_DIR / f"{check_model_name(model)}.json"


def read_client_state(path: Path) -> ClientState:
    """Parse a state file; :class:`ClientStateError` naming the file for anything malformed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ClientStateError(f"{path}: no state file") from None
    except OSError as exc:
        raise ClientStateError(f"{path}: cannot open: {exc.strerror}") from None
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ClientStateError(f"{path}: not a regular file")
        raw = os.read(fd, MAX_STATE_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_STATE_BYTES:
        raise ClientStateError(f"{path}: larger than {MAX_STATE_BYTES} bytes")
    try:
        doc = json.loads(raw.decode("utf-8"))
        state = ClientState(
            model=str(doc["model"]),
            version=str(doc["version"]),
            sequence=int(doc["sequence"]),
            manifest_sha256=str(doc["manifest_sha256"]),
            accepted_at=str(doc["accepted_at"]),
        )
    except (ValueError, KeyError, TypeError, RecursionError, UnicodeDecodeError) as exc:
        raise ClientStateError(f"{path}: not a valid state file ({type(exc).__name__})") from None
    if isinstance(doc["sequence"], bool) or state.sequence < 1:
        raise ClientStateError(f"{path}: field 'sequence' is not a positive integer")
    return state


def write_client_state(path: Path, state: ClientState) -> None:
    """Temp file, fsync, rename, fsync the folder: the sequence survives a crash or power cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = canonical_json(
        {
            "model": state.model,
            "version": state.version,
            "sequence": state.sequence,
            "manifest_sha256": state.manifest_sha256,
            "accepted_at": state.accepted_at,
        }
    )
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        tmp.unlink(missing_ok=True)


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
    pointer: Pointer | None = None


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
        How many verified versions to keep on local disk (at least 1: the serving one).
    intra_op_threads:
        onnxruntime intra-op threads per session.
    max_pointer_age:
        A client that serves nothing yet refuses a pointer signed longer ago than this.
    min_sequence:
        Bootstrap floor for trust on first use: the client never accepts (nor serves from
        its cache) a pointer whose sequence is below this, with or without a state file.
        Deploy a bot with the sequence ``LATEST`` had when its config was written (``edgeflow
        models`` shows it) and a replayed older pointer cannot become its first model.
    check_history:
        When ``LATEST`` is not the pointer being served, look at the signed pointer history
        beside it (one listing of ``<model>/pointers/``, or a read of the next slot where
        listing is not allowed). A verified entry newer than ``LATEST`` (an older envelope
        copied over ``LATEST`` while the newer history stayed, or a publish interrupted
        before ``LATEST`` moved) is what the client then goes by, with every check below:
        it is the pointer the next publish or heartbeat makes ``LATEST``. Deleted history
        cannot be seen this way; ``min_sequence`` and the state file bound that.
    clock:
        Current UTC time (tests pass a fixed one).
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
        max_pointer_age: timedelta | None = None,
        clock: Callable[[], datetime] | None = None,
        min_sequence: int | None = None,
        check_history: bool = True,
    ) -> None:
        if min_sequence is not None and (isinstance(min_sequence, bool) or min_sequence < 1):
            raise ValueError("min_sequence must be a positive integer")
        if keep_cached < 1:
            raise ValueError("keep_cached must be at least 1 (the serving version)")
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
        self.max_pointer_age = max_pointer_age
        self.min_sequence = min_sequence
        self.check_history = check_history
        self.clock = clock or (lambda: datetime.now(UTC))
        self.cache_error: Exception | None = None
        self._accepted_sha256: str | None = None
        self._bad: OrderedDict[str, VerificationError] = OrderedDict()
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

    @property
    def state_file(self) -> Path:
        return state_path(self.cache_dir, self.model)

    def freshness_error(self) -> PointerExpiredError | None:
        """The alert for an expired served pointer (a frozen store), else None."""
        s = self._serving
        if s is None or s.pointer is None:
            return None
        try:
            check_fresh(s.pointer, self.clock())
        except PointerExpiredError as exc:
            return exc
        return None

    @property
    def bad_versions(self) -> dict[str, str]:
        """Manifest sha256 -> error code of versions found bad (not downloaded again)."""
        return {k: v.code for k, v in self._bad.items()}

    # ----------------------------------------------------------------- loading
    def _session(self, vv: VerifiedVersion) -> _Serving:
        import onnxruntime as ort

        name = vv.primary_file()
        blob = vv.files[name]
        what = f"{vv.model}/{vv.version}/{name}"
        refuse_external_data(parse_onnx(blob, what), what)  # weights outside what we verified
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = 1
        try:
            sess = ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelUnloadableError(f"{what}: onnxruntime cannot load it: {exc}") from None
        inputs = sess.get_inputs()
        return _Serving(
            version=vv.version,
            sequence=vv.sequence or 0,
            manifest_sha256=vv.manifest_sha256,
            session=sess,
            input_names=tuple(i.name for i in inputs),
            input_types=tuple(i.type for i in inputs),
            pointer=vv.pointer,
        )

    def _swap(self, serving: _Serving) -> None:
        previous = self._serving
        self._serving = serving  # a single reference assignment: atomic for readers
        self._last_sequence = serving.sequence
        self._accepted_sha256 = serving.manifest_sha256
        log.info(
            "%s: serving %s (sequence %d, was %s)",
            self.model,
            serving.version,
            serving.sequence,
            previous.version if previous else None,
        )

    def _load_cached(self) -> None:
        """Restore the accepted sequence (state file), then the cached model if it verifies.

        The sequence does not depend on the cached model: a deleted or damaged cache never
        re-opens the door to a replayed pointer.
        """
        self._cache_checked = True
        try:
            st = read_client_state(self.state_file)
            if st.model == self.model:
                self._last_sequence = st.sequence
                self._accepted_sha256 = st.manifest_sha256
        except ClientStateError as exc:
            if self.state_file.exists() or self.state_file.is_symlink():
                self.last_error = exc
                log.error("%s: %s; falling back to the cached pointer's sequence", self.model, exc)
        cache = FileStore(self.cache_dir)
        accepted_key = f"{self.model}/{ACCEPTED}"
        if not cache.exists(accepted_key):
            return
        try:
            doc = json.loads(cache.read(accepted_key, max_bytes=2 * MAX_ENVELOPE_BYTES))
            pdata = str(doc["pointer"]).encode("utf-8")
            psig = str(doc["sig"]).encode("ascii") if doc.get("sig") else None
            pointer = verify_pointer_bytes(pdata, psig, self.model, self.keyring)
            if self._last_sequence is None or pointer.sequence > self._last_sequence:
                self._last_sequence = pointer.sequence
            if pointer.sequence < self._last_sequence:
                return  # an older cached model than the accepted state: do not serve it
            if self.min_sequence is not None and pointer.sequence < self.min_sequence:
                return  # older than the configured bootstrap floor: do not serve it
            vv = verify_version(
                cache,
                self.model,
                pointer.version,
                self.keyring,
                expected_manifest_sha256=pointer.manifest_sha256,
            )
            vv = _with_sequence(vv, pointer.sequence, pointer=pointer)
            self._swap(self._session(vv))
            log.info("%s: restored %s from local cache %s", self.model, vv.version, self.cache_dir)
        except Exception as exc:
            self.last_error = exc
            log.warning(
                "%s: local cache %s unusable, ignoring it: %s", self.model, self.cache_dir, exc
            )

    def _persist_state(self, vv: VerifiedVersion) -> None:
        assert vv.sequence is not None
        write_client_state(
            self.state_file,
            ClientState(
                model=self.model,
                version=vv.version,
                sequence=vv.sequence,
                manifest_sha256=vv.manifest_sha256,
                accepted_at=format_time(self.clock()),
            ),
        )

    def _save_cache(self, vv: VerifiedVersion) -> None:
        cache = FileStore(self.cache_dir)
        prefix = version_prefix(self.model, vv.version)
        for name, blob in vv.files.items():
            cache.write(f"{prefix}/{name}", blob)
        cache.write(f"{prefix}/{MANIFEST}", vv.manifest_bytes)
        cache.write(f"{prefix}/{MANIFEST}{SIG}", vv.manifest_sig)
        if vv.pointer_bytes is None:
            raise ValueError("only a version verified through its pointer can be cached")
        accepted = {
            "pointer": vv.pointer_bytes.decode("utf-8"),
            "sig": vv.pointer_sig.decode("ascii") if vv.pointer_sig else None,
        }
        cache.write(f"{self.model}/{ACCEPTED}", canonical_json(accepted))
        versions = list_versions(cache, self.model)
        keep = {v for v in versions if v != vv.version}
        keep = (
            set(sorted(keep, key=versions.index)[-(self.keep_cached - 1) :])
            if (self.keep_cached > 1)
            else set()
        )
        keep.add(vv.version)
        for old in versions:
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

    def _already_serving(self, pointer: Pointer, current: _Serving | None) -> bool:
        """True when ``pointer`` is the one being served; :class:`ReplayError` (or
        :class:`PointerMismatchError`) when it is below the bootstrap floor or not above
        the last accepted sequence."""
        last = self._last_sequence
        if self.min_sequence is not None and pointer.sequence < self.min_sequence:
            raise ReplayError(
                f"{self.model}/LATEST has sequence {pointer.sequence}, below the configured "
                f"minimum {self.min_sequence}: refusing a replayed pointer"
            )
        if last is None or pointer.sequence > last:
            return False
        if (
            current is not None
            and pointer.sequence == current.sequence
            and pointer.manifest_sha256 == current.manifest_sha256
        ):
            stale = self.freshness_error()
            self.last_error = stale  # expired: keep serving, but say so
            if stale is not None:
                log.error("%s: keeping %s, but %s", self.model, current.version, stale)
            return True
        if (
            pointer.sequence == last
            and current is None
            and pointer.manifest_sha256 == self._accepted_sha256
        ):
            return False  # restart without a usable cache: the accepted pointer itself is fine
        if pointer.sequence == last:
            raise PointerMismatchError(
                f"{self.model}/LATEST reuses sequence {last} for another manifest"
            )
        raise ReplayError(
            f"{self.model}/LATEST has sequence {pointer.sequence}, not above the last "
            f"accepted {last}: refusing a replayed pointer"
        )

    def _refresh(self) -> bool:
        pointer, pdata, psig = read_pointer(self.store, self.model, self.keyring)
        current = self._serving
        now = self.clock()
        served = current is not None and (pointer.sequence, pointer.manifest_sha256) == (
            current.sequence,
            current.manifest_sha256,
        )
        alert: ReplayError | None = None
        if self.check_history and not served:  # a new LATEST: is it the newest signed one?
            newer = newer_history(self.store, self.model, self.keyring, pointer.sequence)
            if newer is not None:
                alert = ReplayError(
                    f"{self.model}/LATEST has sequence {pointer.sequence} ({pointer.version}) "
                    f"but the signed history holds sequence {newer.pointer.sequence} "
                    f"({newer.pointer.version}): going by the history entry (LATEST was "
                    "replaced by an older pointer, or a publish stopped before LATEST moved)"
                )
                log.warning("%s", alert)
                pointer, pdata, psig = newer
        if self._already_serving(pointer, current):
            self.last_error = self.last_error or alert  # an expired pointer's alert first
            return False
        check_fresh(pointer, now, self.max_pointer_age if current is None else None)
        if (
            current is not None
            and pointer.manifest_sha256 == current.manifest_sha256
            and pointer.version == current.version
        ):
            self._accept_same_version(current, pointer, pdata, psig)
            self.last_error = alert
            return False
        known_bad = self._bad.get(pointer.manifest_sha256)
        if known_bad is not None:
            raise type(known_bad)(f"{known_bad} (remembered; not downloaded again)")
        try:
            vv = verify_version(
                self.store,
                self.model,
                pointer.version,
                self.keyring,
                expected_manifest_sha256=pointer.manifest_sha256,
            )
            vv = _with_sequence(vv, pointer.sequence, pdata, psig, pointer)
            serving = self._session(vv)
        except _BAD_CONTENT as exc:
            self._remember_bad(pointer.manifest_sha256, exc)
            raise
        try:
            self._persist_state(vv)
        except OSError as exc:
            raise StoreError(
                f"{self.model}: cannot persist the accepted sequence to {self.state_file} "
                f"({exc.strerror}); not switching to {vv.version}"
            ) from None
        try:
            self._save_cache(vv)
            self.cache_error = None
        except (OSError, RegistryError) as exc:
            self.cache_error = exc
            log.error("%s: could not cache %s locally: %s", self.model, vv.version, exc)
        self._swap(serving)
        self.last_error = alert  # serving the newest signed pointer, but LATEST was older
        return True

    def _accept_same_version(
        self, current: _Serving, pointer: Pointer, pdata: bytes, psig: bytes | None
    ) -> None:
        """A heartbeat (or a re-signed pointer) to the version already served: accept the new
        sequence and expiry without downloading or reloading the same verified bytes."""
        try:
            write_client_state(
                self.state_file,
                ClientState(
                    model=self.model,
                    version=pointer.version,
                    sequence=pointer.sequence,
                    manifest_sha256=pointer.manifest_sha256,
                    accepted_at=format_time(self.clock()),
                ),
            )
        except OSError as exc:
            raise StoreError(
                f"{self.model}: cannot persist the accepted sequence to {self.state_file} "
                f"({exc.strerror})"
            ) from None
        try:
            accepted = {
                "pointer": pdata.decode("utf-8"),
                "sig": psig.decode("ascii") if psig else None,
            }
            FileStore(self.cache_dir).write(f"{self.model}/{ACCEPTED}", canonical_json(accepted))
        except (OSError, RegistryError) as exc:
            self.cache_error = exc
        from dataclasses import replace

        self._swap(replace(current, sequence=pointer.sequence, pointer=pointer))
        self.last_error = None

    def _remember_bad(self, manifest_sha256: str, exc: VerificationError) -> None:
        self._bad[manifest_sha256] = exc
        while len(self._bad) > MAX_BAD_VERSIONS:
            self._bad.popitem(last=False)

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
    vv: VerifiedVersion,
    sequence: int,
    pdata: bytes | None = None,
    psig: bytes | None = None,
    pointer: Pointer | None = None,
) -> VerifiedVersion:
    from dataclasses import replace

    return replace(
        vv,
        sequence=sequence,
        pointer_bytes=pdata if pdata is not None else vv.pointer_bytes,
        pointer_sig=psig if psig is not None else vv.pointer_sig,
        pointer=pointer if pointer is not None else vv.pointer,
    )
