"""Keys and signatures: HMAC-SHA256 by key id (rotation) and Ed25519 (verify-only consumers).

A :class:`KeyRing` holds every key a process may verify with and names the one it signs with.
Key material is never logged, printed, pickled into artifacts or shown in ``repr``. What goes
into a manifest is only the key id, the algorithm and a *key check value* (a short,
non-reversible fingerprint) so a verifier can tell "signed with a different key" from
"modified after signing".
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pipelines.registry.errors import (
    BadKeyError,
    KeyTooShortError,
    RevokedKeyError,
    SignatureMalformedError,
    SignatureMismatchError,
    UnknownKeyIdError,
    WeakKeyError,
    WrongKeyError,
)

Algorithm = Literal["hmac-sha256", "ed25519"]
ALGORITHMS: tuple[Algorithm, ...] = ("hmac-sha256", "ed25519")
MIN_HMAC_KEY_BYTES = 32
KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KCV_LABEL = b"edgeflow-key-check-v1"
_SIG_HEX_LEN: dict[str, int] = {"hmac-sha256": 64, "ed25519": 128}
_LOWER_HEX = re.compile(r"[0-9a-f]*")
_KCV_RE = re.compile(r"[0-9a-f]{16}")
_SECRET_LIKE_ID = re.compile(r"[0-9a-fA-F]{32,}")
MIN_DISTINCT_KEY_BYTES = 8
MIN_UNPREDICTABLE_KEY_BYTES = 16
_REPEAT_WINDOW = 8
_STRIDE_WINDOW = 8


def _check_key_id(key_id: str) -> str:
    """A key id; the value is never echoed (a swapped ``id:secret`` would put a secret here)."""
    if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
        raise BadKeyError(
            "invalid key id: use 1-64 characters of letters, digits, '.', '_', '-' "
            "(value not shown)"
        )
    if _SECRET_LIKE_ID.fullmatch(key_id):
        raise BadKeyError(
            f"a key id of {len(key_id)} hex characters looks like a secret: are id and secret "
            "swapped? (value not shown)"
        )
    return key_id


def _predictable(secret: bytes, i: int) -> bool:
    """True when byte ``i`` follows from the bytes before it by a rule people use to make up
    a key: a repeat of one of the last ``_REPEAT_WINDOW`` bytes (runs, short repeated
    blocks, a few symbols reused), or the next term of an arithmetic progression at a stride
    of 1 to ``_STRIDE_WINDOW`` (counting 00 01 02 .., counting down, stepping by k,
    interleaved counters such as 00 ff 01 fe .., ASCII runs such as ``0123456789abc``)."""
    b = secret[i]
    if any(secret[i - p] == b for p in range(1, min(i, _REPEAT_WINDOW) + 1)):
        return True
    return any(
        (2 * secret[i - p] - secret[i - 2 * p]) % 256 == b
        for p in range(1, min(i // 2, _STRIDE_WINDOW) + 1)
    )


def unpredictable_bytes(secret: bytes) -> int:
    """How many bytes of ``secret`` no simple made-up-key rule predicts (see
    :func:`_predictable`); a random 32-byte key scores about 29 of 32."""
    return sum(1 for i in range(len(secret)) if not _predictable(secret, i))


def check_key_entropy(secret: bytes) -> None:
    """Refuse HMAC keys a person typed or a test made up, by class, not by example.

    Every manifest carries ``key_check``, an HMAC of a fixed label under the key: an offline
    oracle for guessing it. So a key must not come from a small family anyone would try
    first: few distinct byte values (``00..00``, ``abab..``), an exact repetition of a
    block of up to half the key (``deadbeef`` x 4, a 16-byte block twice), or a key whose
    bytes mostly follow from the ones before (counting ``00 01 02 .. 1f``, the spec's old
    test-vector key; stepping; ASCII runs). The last rule counts the bytes no such rule
    predicts and wants at least ``MIN_UNPREDICTABLE_KEY_BYTES`` of them (128 bits at 8 bits
    each): a random 32-byte key has about 29, and is refused with a probability below 1e-11.
    """
    hint = (
        "a placeholder, not a random key (generate one with `python -c 'import secrets; "
        "print(secrets.token_hex(32))'`)"
    )
    if len(set(secret)) < MIN_DISTINCT_KEY_BYTES:
        raise WeakKeyError(f"HMAC key has only {len(set(secret))} distinct byte values: {hint}")
    for period in range(1, len(secret) // 2 + 1):
        if all(secret[i] == secret[i % period] for i in range(len(secret))):
            raise WeakKeyError(f"HMAC key is a {period}-byte block repeated: {hint}")
    free = unpredictable_bytes(secret)
    if free < MIN_UNPREDICTABLE_KEY_BYTES:
        raise WeakKeyError(
            f"HMAC key has only {free} bytes that do not follow from the ones before them "
            f"(counting, stepping, repeating; at least {MIN_UNPREDICTABLE_KEY_BYTES} are "
            f"required): {hint}"
        )


def _no_pickle(what: str) -> TypeError:
    return TypeError(
        f"{what} cannot be pickled: key material must not travel inside pickles "
        "(build the key ring in each process from its configuration)"
    )


@dataclass(frozen=True)
class HmacKey:
    """A shared secret (signs and verifies). At least 32 bytes, or :class:`KeyTooShortError`."""

    key_id: str
    secret: bytes = field(repr=False)
    algorithm: Algorithm = field(default="hmac-sha256", init=False)

    def __post_init__(self) -> None:
        _check_key_id(self.key_id)
        if len(self.secret) < MIN_HMAC_KEY_BYTES:
            raise KeyTooShortError(
                f"HMAC key {self.key_id!r} is {len(self.secret)} bytes; "
                f"at least {MIN_HMAC_KEY_BYTES} are required"
            )
        check_key_entropy(self.secret)

    def __reduce__(self) -> Any:
        raise _no_pickle("an HMAC key")

    @property
    def can_sign(self) -> bool:
        return True

    def key_check(self) -> str:
        """16 hex chars that identify the key without revealing it."""
        return hmac.new(self.secret, _KCV_LABEL, hashlib.sha256).hexdigest()[:16]

    def sign(self, data: bytes) -> str:
        return hmac.new(self.secret, data, hashlib.sha256).hexdigest()

    def verify(self, data: bytes, signature: bytes) -> bool:
        expected = hmac.new(self.secret, data, hashlib.sha256).digest()
        return hmac.compare_digest(expected, signature)


@dataclass(frozen=True)
class Ed25519Key:
    """An Ed25519 key: a private key signs and verifies, a public key only verifies."""

    key_id: str
    public_key: Ed25519PublicKey = field(repr=False)
    private_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    algorithm: Algorithm = field(default="ed25519", init=False)

    def __post_init__(self) -> None:
        _check_key_id(self.key_id)

    @classmethod
    def from_private(cls, key_id: str, private_key: Ed25519PrivateKey) -> Ed25519Key:
        return cls(key_id=key_id, public_key=private_key.public_key(), private_key=private_key)

    @classmethod
    def from_pem(cls, key_id: str, pem: bytes) -> Ed25519Key:
        """A PEM private (PKCS#8) or public (SubjectPublicKeyInfo) Ed25519 key."""
        try:
            if b"PRIVATE KEY" in pem:
                priv = serialization.load_pem_private_key(pem, password=None)
                if not isinstance(priv, Ed25519PrivateKey):
                    raise BadKeyError(f"key {key_id!r}: PEM private key is not Ed25519")
                return cls.from_private(key_id, priv)
            pub = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise BadKeyError(f"key {key_id!r}: not a readable PEM Ed25519 key") from exc
        if not isinstance(pub, Ed25519PublicKey):
            raise BadKeyError(f"key {key_id!r}: PEM public key is not Ed25519")
        return cls(key_id=key_id, public_key=pub)

    def __reduce__(self) -> Any:
        if self.private_key is not None:
            raise _no_pickle("an Ed25519 private key")
        return (Ed25519Key.from_public_bytes, (self.key_id, self.public_bytes()))

    @classmethod
    def from_public_bytes(cls, key_id: str, raw: bytes) -> Ed25519Key:
        return cls(key_id=key_id, public_key=Ed25519PublicKey.from_public_bytes(raw))

    def public_only(self) -> Ed25519Key:
        """The same key without its private half, to hand to consumers."""
        return Ed25519Key(key_id=self.key_id, public_key=self.public_key)

    def public_bytes(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def can_sign(self) -> bool:
        return self.private_key is not None

    def key_check(self) -> str:
        return hashlib.sha256(_KCV_LABEL + self.public_bytes()).hexdigest()[:16]

    def sign(self, data: bytes) -> str:
        if self.private_key is None:
            raise BadKeyError(f"key {self.key_id!r} is a public key and cannot sign")
        return self.private_key.sign(data).hex()

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


SigningKey = HmacKey | Ed25519Key


@dataclass(frozen=True)
class Signer:
    """What a signer writes next to the bytes it signs: key id, algorithm, key check value."""

    key_id: str
    algorithm: Algorithm
    key_check: str


class KeyRing:
    """Keys by id for verification, and the id of the one used to sign.

    Parameters
    ----------
    keys:
        Every key this process trusts. Ids must be unique.
    signing_key_id:
        The key that signs; ``None`` for a verify-only ring (a consumer).
    revoked:
        Key ids refused even while configured (a compromised key, inside its validity).
    accept:
        Algorithms this ring verifies; ``("ed25519",)`` refuses HMAC-signed documents.
    scopes:
        Key id -> the models it may sign; a key without an entry may sign any model. A key
        leaked from one model's pipeline then cannot sign another model.
    """

    def __init__(
        self,
        keys: Iterable[SigningKey],
        signing_key_id: str | None = None,
        *,
        revoked: Iterable[str] = (),
        accept: Iterable[Algorithm] = ALGORITHMS,
        scopes: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self._keys: dict[str, SigningKey] = {}
        self.scopes = {k: frozenset(v) for k, v in (scopes or {}).items()}
        for key in keys:
            if key.key_id in self._keys:
                raise BadKeyError(f"duplicate key id {key.key_id!r}")
            self._keys[key.key_id] = key
        self.revoked = frozenset(revoked)
        self.accept: tuple[Algorithm, ...] = tuple(accept)
        if signing_key_id is not None:
            if signing_key_id not in self._keys:
                # never echo the value: an operator may have put the secret there
                raise BadKeyError(
                    f"the signing key id ({len(signing_key_id)} characters, value not shown) "
                    f"is not among the configured keys ({', '.join(sorted(self._keys)) or 'none'})"
                )
            key = self._keys[signing_key_id]
            if not key.can_sign:
                raise BadKeyError(f"signing key {signing_key_id!r} is a public key only")
            if signing_key_id in self.revoked:
                raise BadKeyError(f"signing key {signing_key_id!r} is revoked")
            if key.algorithm not in self.accept:
                raise BadKeyError(
                    f"signing key {signing_key_id!r} is {key.algorithm}, but only "
                    f"{', '.join(self.accept)} is accepted"
                )
        self.signing_key_id = signing_key_id

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={sorted(self._keys)!r}, signing_key_id={self.signing_key_id!r})"

    def __reduce__(self) -> Any:
        raise _no_pickle("a key ring")

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def get(self, key_id: str) -> SigningKey:
        try:
            return self._keys[key_id]
        except (KeyError, TypeError):
            raise UnknownKeyIdError(
                f"signed with key id {str(key_id)[:64]!r}, which this verifier does not hold "
                f"(known: {', '.join(sorted(self._keys)) or 'none'})"
            ) from None

    def public_only(self) -> KeyRing:
        """A verify-only ring: Ed25519 keys lose their private half, HMAC keys are dropped."""
        pubs = [k.public_only() for k in self._keys.values() if isinstance(k, Ed25519Key)]
        return KeyRing(pubs, revoked=self.revoked, accept=self.accept, scopes=self.scopes)

    def check_scope(self, key_id: str, model: str, what: str) -> None:
        """:class:`WrongKeyError` when ``key_id`` is scoped to other models than ``model``."""
        allowed = self.scopes.get(key_id)
        if allowed is not None and model not in allowed:
            raise WrongKeyError(
                f"{what}: key {key_id!r} may only sign {', '.join(sorted(allowed))}, not {model!r}"
            )

    def signer(self) -> Signer:
        """The fields a document embeds before it is signed."""
        if self.signing_key_id is None:
            raise BadKeyError("this key ring has no signing key (set EDGEFLOW_SIGNING_KEY_ID)")
        key = self._keys[self.signing_key_id]
        return Signer(key_id=key.key_id, algorithm=key.algorithm, key_check=key.key_check())

    def sign(self, data: bytes) -> bytes:
        """The ``.sig`` file content for ``data``: lowercase hex, no newline."""
        signer = self.signer()
        return self._keys[signer.key_id].sign(data).encode("ascii")

    def verify(
        self,
        data: bytes,
        sig_file: bytes,
        *,
        key_id: str,
        algorithm: str,
        key_check: str | None,
        what: str,
    ) -> None:
        """Raise a specific :class:`VerificationError` unless ``sig_file`` signs ``data``.

        ``key_id``, ``algorithm`` and ``key_check`` come from the (not yet trusted) document;
        the algorithm is taken from the held key, never from the document, so a document
        cannot downgrade Ed25519 to HMAC with a public key as the secret.
        """
        key = self.get(key_id)
        if key_id in self.revoked:
            raise RevokedKeyError(f"{what}: signed with revoked key id {key_id!r}")
        if algorithm != key.algorithm:
            raise WrongKeyError(
                f"{what}: claims algorithm {str(algorithm)[:32]!r} but key {key_id!r} "
                f"is {key.algorithm}"
            )
        if key.algorithm not in self.accept:
            raise WrongKeyError(
                f"{what}: signed with {key.algorithm}, but this verifier accepts only "
                f"{', '.join(self.accept)}"
            )
        n = _SIG_HEX_LEN[key.algorithm]
        text = sig_file.decode("ascii", "replace")
        if len(sig_file) != n or not _LOWER_HEX.fullmatch(text):
            raise SignatureMalformedError(
                f"{what}.sig is not {n} lowercase hex characters "
                f"(got {len(sig_file)} bytes): truncated or corrupted signature"
            )
        if key_check is not None and (
            not isinstance(key_check, str)
            or not _KCV_RE.fullmatch(key_check)
            or not hmac.compare_digest(key_check, key.key_check())
        ):
            raise WrongKeyError(
                f"{what}: signed with a different key than the one held as {key_id!r} "
                "(key check value differs)"
            )
        if not key.verify(data, bytes.fromhex(text)):
            raise SignatureMismatchError(
                f"{what}: signature does not match its bytes (modified after signing)"
            )


def parse_hmac_keys(spec: str) -> list[HmacKey]:
    """``"id:hex,id2:hex"`` (the ``EDGEFLOW_HMAC_KEYS`` format) into keys.

    Errors name the entry by position and never echo any part of it: a swapped id and
    secret would otherwise print the secret.
    """
    keys: list[HmacKey] = []
    for i, item in enumerate(p.strip() for p in spec.replace("\n", ",").split(",")):
        if not item or item.startswith("#"):
            continue
        key_id, sep, hexkey = item.partition(":")
        key_id = key_id.strip()
        if not sep:
            raise BadKeyError(f"HMAC key entry #{i + 1} is not 'id:hex' (value not shown)")
        try:
            _check_key_id(key_id)
        except BadKeyError as exc:
            raise BadKeyError(f"HMAC key entry #{i + 1}: {exc}") from None
        try:
            secret = bytes.fromhex(hexkey.strip())
        except ValueError:
            raise BadKeyError(
                f"HMAC key {key_id!r} (entry #{i + 1}): secret is not hex (value not shown)"
            ) from None
        keys.append(HmacKey(key_id, secret))
    return keys
