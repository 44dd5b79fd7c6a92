"""``edgeflow verify | models | rollback | publish``, and the one place keys are read.

Secrets are read here, at the entry point, and handed to ``pipelines.registry`` as a
:class:`KeyRing`. Exit codes: 0 success, 1 verification failed, 2 user error (bad store,
missing keys, nothing to act on).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from configs.settings import ConfigError, Settings, load_config
from pipelines.registry import (
    BadKeyError,
    Ed25519Key,
    HmacKey,
    KeyRing,
    RegistryError,
    Store,
    VerificationError,
    list_models,
    list_versions,
    open_store,
    parse_hmac_keys,
    publish_model,
    read_pointer,
    rollback,
    verify_model,
    verify_version,
)

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
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
    ``allow_dev_key`` is false or ``cfg.environment == "production"``.
    """
    reg = cfg.registry
    production = cfg.environment == "production"
    keys: list[HmacKey | Ed25519Key] = []
    keys.extend(parse_hmac_keys(environ.get(HMAC_KEYS_ENV, "")))
    if reg.hmac_keys_file is not None:
        keys.extend(parse_hmac_keys(_read(reg.hmac_keys_file).decode("ascii", "replace")))
    if reg.ed25519_private_key_file is not None:
        keys.append(Ed25519Key.from_pem(reg.ed25519_key_id, _read(reg.ed25519_private_key_file)))
    for key_id, path in sorted(reg.ed25519_public_key_files.items()):
        if key_id != reg.ed25519_key_id or reg.ed25519_private_key_file is None:
            keys.append(Ed25519Key.from_pem(key_id, _read(path)))
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
        candidates = [k.key_id for k in keys if k.algorithm == reg.algorithm and k.can_sign]
        signing = candidates[0] if len(candidates) == 1 else None
    return KeyRing(keys, signing_key_id=signing)


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BadKeyError(f"cannot read key file {path}: {exc.strerror}") from None


# --------------------------------------------------------------------------- CLI plumbing
class _UserError(Exception):
    pass


def _settings(config: str | None) -> Settings:
    try:
        return load_config(config)
    except ConfigError as exc:
        raise _UserError(str(exc)) from None


def _store(uri: str | None, cfg: Settings) -> Store:
    target = uri or cfg.registry.store or f"file://{Path(cfg.workdir).resolve() / 'store'}"
    try:
        return open_store(target, endpoint_url=cfg.registry.s3_endpoint_url)
    except RegistryError as exc:
        raise _UserError(str(exc)) from None


def _keys(cfg: Settings, *, signing: bool) -> KeyRing:
    try:
        ring = keyring_from_env(
            os.environ, cfg, allow_dev_key=cfg.environment != "production", create_dev_key=signing
        )
    except (BadKeyError, RegistryError) as exc:
        raise _UserError(str(exc)) from None
    if signing and ring.signing_key_id is None:
        raise _UserError(
            f"no signing key chosen among {', '.join(ring.key_ids)}: set {SIGNING_KEY_ENV}"
        )
    return ring


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


StoreArg = Annotated[
    str | None, typer.Argument(help="file://PATH or s3://BUCKET/PREFIX (default: config).")
]
ConfigOpt = Annotated[
    str | None, typer.Option("--config", "-c", help="Config file or profile name.")
]


def verify_cmd(
    store: StoreArg = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Verify this version, not LATEST.")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Check pointer, manifest signature, every file's sha256 and size; 0 only if all pass."""
    try:
        cfg = _settings(config)
        st = _store(store, cfg)
        ring = _keys(cfg, signing=False)
        models = [model] if model else list_models(st)
    except (_UserError, RegistryError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if not models:
        raise _fail(f"{st.uri}: no models found", EXIT_FAILED)
    if version is not None and model is None:
        raise _fail("--version needs --model")
    failed = 0
    for name in models:
        try:
            vv = verify_model(st, name, ring, version=version)
        except (RegistryError, ValueError) as exc:
            failed += 1
            code = getattr(exc, "code", "invalid")
            typer.secho(f"FAIL  {name}: [{code}] {exc}", fg=typer.colors.RED)
            continue
        seq = f" sequence {vv.sequence}" if vv.sequence is not None else ""
        typer.secho(
            f"OK    {name} {vv.version}{seq}: {len(vv.files)} file(s), "
            f"key {vv.manifest['key_id']} ({vv.manifest['algorithm']})",
            fg=typer.colors.GREEN,
        )
    total = len(models)
    typer.echo(f"{total - failed}/{total} model(s) verified in {st.uri}")
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def models_cmd(store: StoreArg = None, config: ConfigOpt = None) -> None:
    """List models and their versions with status (live, ok, INVALID)."""
    try:
        cfg = _settings(config)
        st = _store(store, cfg)
        ring = _keys(cfg, signing=False)
        names = list_models(st)
    except (_UserError, RegistryError) as exc:
        raise _fail(str(exc)) from None
    if not names:
        typer.echo(f"{st.uri}: no models")
        return
    for name in names:
        try:
            pointer, _, _ = read_pointer(st, name, ring)
            live: str | None = pointer.version
            head = f"LATEST -> {pointer.version} (sequence {pointer.sequence})"
        except VerificationError as exc:
            live, head = None, f"LATEST INVALID [{exc.code}] {exc}"
        typer.echo(f"{name}: {head}")
        for v in reversed(list_versions(st, name)):
            try:
                vv = verify_version(st, name, v, ring)
                status = "live" if v == live else "ok"
                detail = vv.manifest.get("created_at", "")
            except VerificationError as exc:
                status, detail = "INVALID", f"[{exc.code}] {exc}"
            typer.echo(f"  {v}  {status:<7} {detail}")


def rollback_cmd(
    store: StoreArg = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model to roll back.")] = "",
    to: Annotated[
        str | None, typer.Option("--to", help="Target version (default: the previous one).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Publish a new signed pointer to an older, verified version."""
    if not model:
        raise _fail("--model is required")
    try:
        cfg = _settings(config)
        st = _store(store, cfg)
        ring = _keys(cfg, signing=True)
        done = rollback(st, model, ring, to=to)
    except VerificationError as exc:
        raise _fail(f"target does not verify: [{exc.code}] {exc}", EXIT_FAILED) from None
    except (_UserError, RegistryError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"{model}: LATEST -> {done.version} (sequence {done.sequence}, was {done.previous_version})"
    )


def publish_cmd(
    store: Annotated[str, typer.Argument(help="file://PATH or s3://BUCKET/PREFIX.")],
    files: Annotated[list[Path], typer.Argument(help="Files to publish.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name.")] = "",
    config: ConfigOpt = None,
) -> None:
    """Sign and publish FILE... as the next version of a model."""
    if not model:
        raise _fail("--model is required")
    try:
        cfg = _settings(config)
        st = _store(store, cfg)
        ring = _keys(cfg, signing=True)
        done = publish_model(st, model, files, ring, keep_last=cfg.registry.keep_last)
    except (_UserError, RegistryError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"published {model}/{done.version} (sequence {done.sequence}) to {st.uri}"
        + (f"; pruned {', '.join(done.pruned)}" if done.pruned else "")
    )


def register(app: typer.Typer) -> None:
    """Add ``verify``, ``models``, ``rollback`` and ``publish`` to the edgeflow CLI."""
    app.command("verify")(verify_cmd)
    app.command("models")(models_cmd)
    app.command("rollback")(rollback_cmd)
    app.command("publish")(publish_cmd)
