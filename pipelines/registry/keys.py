"""The key ring from the environment and config, and the local dev key.

Called only by entry points (the CLI, the flow's entry), which pass ``os.environ`` in:
nothing here reads the environment by itself. Secrets never reach a log line.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from configs.settings import Settings
from pipelines.registry.errors import BadKeyError
from pipelines.registry.signing import (
    ALGORITHMS,
    Algorithm,
    Ed25519Key,
    HmacKey,
    KeyRing,
    parse_hmac_keys,
)

log = logging.getLogger(__name__)

DEV_KEY_ID = "dev"
HMAC_KEYS_ENV = "EDGEFLOW_HMAC_KEYS"
SIGNING_KEY_ENV = "EDGEFLOW_SIGNING_KEY_ID"


def dev_key_path(workdir: Path) -> Path:
    return Path(workdir) / "keys" / "dev.key"


def _load_or_create_dev_key(workdir: Path, create: bool) -> list[HmacKey]:
    path = dev_key_path(workdir)
    if not path.exists():
        if not create:
            return []
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"{DEV_KEY_ID}:{secrets.token_hex(32)}\n")
        log.warning(
            "created a local DEV signing key at %s (mode 0600, key id %r); "
            "for local demos only - production refuses it",
            path,
            DEV_KEY_ID,
        )
    return parse_hmac_keys(path.read_text(encoding="ascii"))


def keyring_from_env(
    environ: Mapping[str, str],
    cfg: Settings,
    workdir: Path | None = None,
    allow_dev_key: bool = True,
    create_dev_key: bool = True,
) -> KeyRing:
    """Build the key ring from ``EDGEFLOW_HMAC_KEYS`` / ``EDGEFLOW_SIGNING_KEY_ID`` and config.

    Sources, all merged: ``EDGEFLOW_HMAC_KEYS="id:hex,..."``, ``registry.hmac_keys_file``,
    ``registry.ed25519_private_key_file`` and ``registry.ed25519_public_key_files``. With none
    of them, the dev key ``<workdir>/keys/dev.key`` is used (created 0600, logged) unless
    ``allow_dev_key`` is false or ``cfg.environment == "production"``. Production defaults
    to Ed25519 (see :func:`effective_algorithm`); with Ed25519 the ring refuses HMAC-signed
    documents. ``registry.revoked_key_ids`` are refused even while configured. No error
    message carries a value read from a key variable.
    """
    reg = cfg.registry
    production = cfg.environment == "production"
    algorithm = effective_algorithm(cfg)
    keys = _configured_keys(environ, cfg)
    if production and any(k.key_id == DEV_KEY_ID for k in keys):
        raise BadKeyError(f"environment=production refuses the key id {DEV_KEY_ID!r}")
    if not keys:
        if production:
            raise BadKeyError(
                f"no signing keys configured ({HMAC_KEYS_ENV}, registry.hmac_keys_file or "
                "registry.ed25519_*) and environment=production refuses the dev key"
            )
        if allow_dev_key:
            keys.extend(_load_or_create_dev_key(workdir or cfg.workdir, create_dev_key))
    if not keys:
        raise BadKeyError(f"no keys configured: set {HMAC_KEYS_ENV}=id:hex (32+ bytes)")
    signing = environ.get(SIGNING_KEY_ENV) or reg.signing_key_id
    if signing is None:
        candidates = [k.key_id for k in keys if k.algorithm == algorithm and k.can_sign]
        signing = candidates[0] if len(candidates) == 1 else None
    accept: tuple[Algorithm, ...] = ("ed25519",) if algorithm == "ed25519" else ALGORITHMS
    if not any(k.algorithm in accept for k in keys):
        raise BadKeyError(
            f"algorithm {algorithm} is required (environment={cfg.environment}) but no "
            "such key is configured: set registry.ed25519_private_key_file (publisher) or "
            "registry.ed25519_public_key_files (consumers)"
        )
    return KeyRing(
        keys,
        signing_key_id=signing,
        revoked=reg.revoked_key_ids,
        accept=accept,
        scopes=reg.key_scopes,
    )


def effective_algorithm(cfg: Settings) -> Algorithm:
    """``registry.algorithm``, or by default ed25519 in production and hmac-sha256 elsewhere."""
    if cfg.registry.algorithm is not None:
        return cfg.registry.algorithm
    return "ed25519" if cfg.environment == "production" else "hmac-sha256"


def _configured_keys(environ: Mapping[str, str], cfg: Settings) -> list[HmacKey | Ed25519Key]:
    reg = cfg.registry
    keys: list[HmacKey | Ed25519Key] = []
    try:
        keys.extend(parse_hmac_keys(environ.get(HMAC_KEYS_ENV, "")))
    except BadKeyError as exc:
        raise type(exc)(f"{HMAC_KEYS_ENV}: {exc}") from None
    if reg.hmac_keys_file is not None:
        try:
            keys.extend(parse_hmac_keys(_read(reg.hmac_keys_file).decode("ascii", "replace")))
        except BadKeyError as exc:
            raise type(exc)(f"{reg.hmac_keys_file}: {exc}") from None
    if reg.ed25519_private_key_file is not None:
        keys.append(Ed25519Key.from_pem(reg.ed25519_key_id, _read(reg.ed25519_private_key_file)))
    for key_id, path in sorted(reg.ed25519_public_key_files.items()):
        if key_id != reg.ed25519_key_id or reg.ed25519_private_key_file is None:
            keys.append(Ed25519Key.from_pem(key_id, _read(path)))
    return keys


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BadKeyError(f"cannot read key file {path}: {exc.strerror}") from None
