"""Signed publishing and the verifying consumer (see ``docs/manifest.md``).

The flow calls :func:`open_store`, :func:`publish_model` and :func:`verify_model`; the live
bot embeds :class:`ModelClient`. Keys arrive as a :class:`KeyRing` built by the entry point.
"""

from typing import TYPE_CHECKING, Any

from pipelines.registry.errors import (
    BadKeyError,
    ConcurrentPublishError,
    ExternalDataError,
    FileHashMismatchError,
    FileMissingError,
    FileSizeMismatchError,
    KeyTooShortError,
    ManifestInvalidError,
    ModelUnloadableError,
    NoModelLoadedError,
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    PathEscapeError,
    PointerExpiredError,
    PointerInvalidError,
    PointerMismatchError,
    PointerMissingError,
    PreconditionFailedError,
    PublishError,
    RegistryError,
    ReplayError,
    RevokedKeyError,
    SignatureMalformedError,
    SignatureMismatchError,
    SignatureMissingError,
    StoreError,
    UnknownKeyIdError,
    UnsafeObjectError,
    VerificationError,
    VersionMismatchError,
    WeakKeyError,
    WrongKeyError,
)
from pipelines.registry.manifest import canonical_json
from pipelines.registry.publish import (
    PublishedVersion,
    describe_onnx,
    heartbeat,
    prune,
    publish_model,
    rollback,
)
from pipelines.registry.signing import Ed25519Key, HmacKey, KeyRing, parse_hmac_keys
from pipelines.registry.store import FileStore, MemoryStore, S3Store, Store, open_store
from pipelines.registry.verify import (
    VerifiedVersion,
    check_against_history,
    check_fresh,
    list_models,
    list_versions,
    read_pointer,
    verify_model,
    verify_version,
)

if TYPE_CHECKING:
    from pipelines.registry.client import (
        ClientState,
        ClientStateError,
        ModelClient,
        Prediction,
        read_client_state,
        state_path,
    )

#: The consumer side loads numpy and onnxruntime; imported on first use, so the store
#: commands (and their ``--help``) start without them.
_CLIENT_NAMES = frozenset(
    {
        "ClientState",
        "ClientStateError",
        "ModelClient",
        "Prediction",
        "read_client_state",
        "state_path",
    }
)


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from pipelines.registry import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BadKeyError",
    "ClientState",
    "ClientStateError",
    "ConcurrentPublishError",
    "Ed25519Key",
    "ExternalDataError",
    "FileHashMismatchError",
    "FileMissingError",
    "FileSizeMismatchError",
    "FileStore",
    "HmacKey",
    "KeyRing",
    "KeyTooShortError",
    "ManifestInvalidError",
    "MemoryStore",
    "ModelClient",
    "ModelUnloadableError",
    "NoModelLoadedError",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "ObjectTooLargeError",
    "PathEscapeError",
    "PointerExpiredError",
    "PointerInvalidError",
    "PointerMismatchError",
    "PointerMissingError",
    "PreconditionFailedError",
    "Prediction",
    "PublishError",
    "PublishedVersion",
    "RegistryError",
    "ReplayError",
    "RevokedKeyError",
    "S3Store",
    "SignatureMalformedError",
    "SignatureMismatchError",
    "SignatureMissingError",
    "Store",
    "StoreError",
    "UnknownKeyIdError",
    "UnsafeObjectError",
    "VerificationError",
    "VerifiedVersion",
    "VersionMismatchError",
    "WeakKeyError",
    "WrongKeyError",
    "canonical_json",
    "check_against_history",
    "check_fresh",
    "describe_onnx",
    "heartbeat",
    "list_models",
    "list_versions",
    "open_store",
    "parse_hmac_keys",
    "prune",
    "publish_model",
    "read_client_state",
    "read_pointer",
    "rollback",
    "state_path",
    "verify_model",
    "verify_version",
]
