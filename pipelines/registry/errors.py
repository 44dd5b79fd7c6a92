"""Every way a registry operation can fail, each with its own class and stable ``code``.

Consumers (the CLI, ``ModelClient``, a C# bot reading ``docs/manifest.md``) branch on the
code, so a tampered file and a wrong key are never reported as the same thing.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every registry error; ``code`` is a short stable identifier.

    ``etag``: set by a store on an object it refused to read (symlink, FIFO, too large), so
    a publisher can still replace that object with a compare-and-swap.
    """

    code = "registry-error"
    etag: str | None = None


class StoreError(RegistryError):
    """The store could not be reached or refused an operation."""

    code = "store-error"


class ObjectNotFoundError(StoreError):
    """An object that should exist is not in the store."""

    code = "not-found"


class ObjectExistsError(StoreError):
    """A write-once object already exists (published artifacts are never overwritten)."""

    code = "exists"


class PreconditionFailedError(StoreError):
    """A conditional write lost: the object changed since it was read (compare-and-swap)."""

    code = "precondition-failed"


class BadKeyError(RegistryError, ValueError):
    """A key that cannot be used (malformed, duplicate id, wrong kind)."""

    code = "bad-key"


class KeyTooShortError(BadKeyError):
    """An HMAC key shorter than 32 bytes: refused at load time, never used."""

    code = "key-too-short"


class WeakKeyError(BadKeyError):
    """An HMAC key that looks like a placeholder (all-zero, one repeated byte or block)."""

    code = "weak-key"


class PublishError(RegistryError):
    """A publish or rollback that cannot proceed."""

    code = "publish-error"


class ConcurrentPublishError(PublishError):
    """Another publisher moved the pointer or claimed the sequence first; nothing was lost."""

    code = "concurrent-publish"


class VerificationError(RegistryError):
    """An artifact that must not be trusted; subclasses say exactly why."""

    code = "verification-failed"


class PointerMissingError(VerificationError):
    """No ``LATEST`` pointer: nothing has been published for this model."""

    code = "pointer-missing"


class PointerInvalidError(VerificationError):
    """``LATEST`` is not a valid pointer document (bad JSON, fields or model)."""

    code = "pointer-invalid"


class SignatureMissingError(VerificationError):
    """A ``.sig`` file is missing."""

    code = "signature-missing"


class SignatureMalformedError(VerificationError):
    """A ``.sig`` file is not exactly the expected lowercase hex (truncated, padded, garbage)."""

    code = "signature-malformed"


class UnknownKeyIdError(VerificationError):
    """The document names a key id this verifier does not hold."""

    code = "unknown-key-id"


class WrongKeyError(VerificationError):
    """The document was signed with a different key than the one held under its key id."""

    code = "wrong-key"


class SignatureMismatchError(VerificationError):
    """The signature does not match the bytes: the document was modified after signing."""

    code = "signature-mismatch"


class ManifestInvalidError(VerificationError):
    """The manifest is not a valid ``edgeflow.manifest/1`` document."""

    code = "manifest-invalid"


class PointerMismatchError(VerificationError):
    """The pointer's ``manifest_sha256`` does not match the manifest stored for its version."""

    code = "pointer-mismatch"


class VersionMismatchError(VerificationError):
    """A manifest that names another model or version than the folder it is stored in."""

    code = "version-mismatch"


class PathEscapeError(VerificationError):
    """A manifest file path that is absolute, has ``..`` or otherwise leaves its version folder."""

    code = "path-escape"


class FileMissingError(VerificationError):
    """A file the manifest lists is not in the store."""

    code = "file-missing"


class FileSizeMismatchError(VerificationError):
    """A file whose size differs from the manifest (truncated or padded)."""

    code = "size-mismatch"


class FileHashMismatchError(VerificationError):
    """A file whose sha256 differs from the manifest (modified bytes)."""

    code = "hash-mismatch"


class ReplayError(VerificationError):
    """A pointer whose ``sequence`` is not above the last one accepted (an old pointer replayed)."""

    code = "replay"


class ObjectTooLargeError(VerificationError):
    """An object larger than its documented limit (refused while reading, not after)."""

    code = "too-large"


class UnsafeObjectError(VerificationError):
    """A symlink, FIFO, device or other non-regular file where a stored object should be."""

    code = "unsafe-object"


class RevokedKeyError(VerificationError):
    """A document signed with a key id that is listed as revoked."""

    code = "revoked-key"


class PointerExpiredError(VerificationError):
    """A pointer past its ``expires`` (or older than the consumer's maximum age): stale store."""

    code = "expired"


class ExternalDataError(VerificationError):
    """An ONNX model whose tensors live in external files (resolved outside what was verified)."""

    code = "external-data"


class ModelUnloadableError(VerificationError):
    """Verified bytes that no consumer can load (no model file, not a valid ONNX model)."""

    code = "unloadable"


class NoModelLoadedError(RegistryError):
    """``predict`` was called before any verified model could be loaded."""

    code = "no-model"
