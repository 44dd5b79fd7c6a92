"""``edgeflow verify | models | rollback | publish | heartbeat``; the one place keys are read.

Secrets are read here, at the entry point, and handed to ``pipelines.registry`` as a
:class:`KeyRing`. Exit codes: 0 success, 1 verification failed, 2 user error (bad store,
missing keys, nothing to act on), 3 (``verify --require-anchor`` only) everything verified
but some ``LATEST`` could not be checked against a floor (unanchored).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipelines.registry import (
    BadKeyError,
    KeyRing,
    PointerMismatchError,
    RegistryError,
    ReplayError,
    Store,
    VerificationError,
    VerifiedVersion,
    check_against_history,
    heartbeat,
    list_models,
    list_versions,
    open_store,
    publish_model,
    read_pointer,
    rollback,
    verify_model,
    verify_version,
)
from pipelines.registry.keys import SIGNING_KEY_ENV, keyring_from_env

if TYPE_CHECKING:  # imported where used: pydantic and numpy would slow every --help
    from configs.settings import Settings
    from pipelines.registry.client import ClientState

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNANCHORED = 3


# --------------------------------------------------------------------------- CLI plumbing
class _UserError(Exception):
    pass


def _settings(config: str | None, workdir: Path | None = None) -> Settings:
    """The config, with ``--workdir`` applied (so the dev key is that workdir's)."""
    from configs.settings import ConfigError, load_config

    try:
        return load_config(config, overrides={"workdir": str(workdir)} if workdir else None)
    except ConfigError as exc:
        raise _UserError(str(exc)) from None


def _store(uri: str | None, cfg: Settings, *, must_exist: bool = True) -> Store:
    """The store to act on. A local store whose folder does not exist is one answer for every
    command that reads (exit 2, one line), before keys are looked for: an empty workdir and
    ``file:///nonexistent`` are the same mistake. ``publish`` creates the folder."""
    target = uri or cfg.registry.store or f"file://{Path(cfg.workdir).resolve() / 'store'}"
    try:
        st = open_store(target, endpoint_url=cfg.registry.s3_endpoint_url)
    except RegistryError as exc:
        raise _UserError(str(exc)) from None
    root = getattr(st, "root", None)
    if must_exist and isinstance(root, Path) and not root.is_dir():
        raise _UserError(f"{st.uri}: no such store (folder {root} does not exist)")
    return st


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


def _publisher_state(cfg: Settings) -> Path:
    """The publisher's own record of what it signed (``WorkdirLayout.publisher_state``, the
    same folder the training flow uses): a truncated or replayed store history never makes it
    reuse a sequence or sign a rollback."""
    from pipelines.workdir import WorkdirLayout

    return WorkdirLayout(Path(cfg.workdir)).publisher_state


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


StoreArg = Annotated[
    str | None, typer.Argument(help="file://PATH or s3://BUCKET/PREFIX (default: config).")
]
ConfigOpt = Annotated[
    str | None, typer.Option("--config", "-c", help="Config file or profile name.")
]
WorkdirOpt = Annotated[
    Path | None,
    typer.Option(
        "--workdir",
        "-w",
        help="Workdir whose store (default) and dev key to use (default: the config's).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@dataclass(frozen=True)
class _Anchor:
    """A sequence ``LATEST`` must not be below, and where it comes from."""

    sequence: int
    manifest_sha256: str | None
    source: str
    given: bool = True  # named on the command line (its message comes first)


def _models(st: Store, cfg: Settings) -> list[str]:
    """The models in the store and those this workdir's publisher signed for there: a model
    whose folder was deleted is checked (and fails by name) instead of vanishing."""
    from pipelines.registry.publisher_state import recorded_models

    return sorted(set(list_models(st)) | set(recorded_models(_publisher_state(cfg), st.uri)))


def _anchors(
    cfg: Settings,
    st: Store,
    name: str,
    ring: KeyRing,
    accepted: ClientState | None,
    state: Path | None,
    min_sequence: int | None,
) -> list[_Anchor]:
    """Every floor known for ``name``: a consumer's state file, ``--min-sequence`` and the
    pointer this workdir's publisher state says it made live (read and verified)."""
    from pipelines.registry.publisher_state import read_record, state_file

    out = []
    if accepted is not None:
        out.append(_Anchor(accepted.sequence, accepted.manifest_sha256, f"which {state} accepted"))
    if min_sequence is not None:
        out.append(_Anchor(min_sequence, None, "the --min-sequence floor"))
    folder = _publisher_state(cfg)
    try:
        record = read_record(folder, st.uri, name, ring)
    except RegistryError as exc:
        typer.secho(f"WARN  {name}: publisher state not used as a floor: {exc}", err=True)
        record = None
    if record is not None and record.pointer is not None:
        path = state_file(folder, st.uri, name)
        out.append(
            _Anchor(
                record.pointer.sequence,
                record.pointer.manifest_sha256,
                f"which this workdir's publisher state {path} made live",
                given=False,
            )
        )
    return out


def _verify_one(
    st: Store, name: str, ring: KeyRing, version: str | None, anchors: list[_Anchor]
) -> VerifiedVersion:
    """Verify one model: LATEST must not be older than the newest verified history entry
    beside it, nor than any anchor (a consumer's state, ``--min-sequence``, the publisher's
    record), nor reuse an anchor's sequence for another manifest."""
    strictest = max(anchors, key=lambda a: a.sequence) if anchors and version is None else None
    if strictest is not None:
        pointer = read_pointer(st, name, ring)[0]
        given = [a for a in anchors if a.given]
        for group in (given, [a for a in anchors if not a.given]):
            worst = max(group, key=lambda a: a.sequence, default=None)
            if worst is not None and pointer.sequence < worst.sequence:
                raise ReplayError(
                    f"{name}/LATEST has sequence {pointer.sequence}, older than sequence "
                    f"{worst.sequence}, {worst.source}: an old pointer was replayed"
                )
            if group is given:  # then the history beside LATEST, then the publisher's record
                check_against_history(st, name, ring, pointer)
    vv = verify_model(
        st,
        name,
        ring,
        version=version,
        min_sequence=strictest.sequence - 1 if strictest is not None else None,
        check_history=version is None,
    )
    for anchor in anchors if version is None else []:
        if (
            vv.sequence == anchor.sequence
            and anchor.manifest_sha256 is not None
            and vv.manifest_sha256 != anchor.manifest_sha256
        ):
            raise PointerMismatchError(
                f"{name}/LATEST reuses sequence {anchor.sequence}, {anchor.source}, for another "
                "manifest"
            )
    return vv


def _report_one(
    cfg: Settings,
    st: Store,
    name: str,
    ring: KeyRing,
    version: str | None,
    accepted: ClientState | None,
    state: Path | None,
    min_sequence: int | None,
    as_json: bool,
) -> dict[str, object]:
    """Verify one model and print its line (``OK``/``FAIL``, and ``WARN`` when unanchored);
    the row for ``--json``."""
    try:
        anchors = _anchors(cfg, st, name, ring, accepted, state, min_sequence)
        vv = _verify_one(st, name, ring, version, anchors)
    except (RegistryError, ValueError) as exc:
        code = getattr(exc, "code", "invalid")
        if not as_json:
            typer.secho(f"FAIL  {name}: [{code}] {exc}", fg=typer.colors.RED)
        return {"model": name, "ok": False, "code": code, "error": str(exc)}
    anchor = max(anchors, key=lambda a: a.sequence) if anchors and version is None else None
    row: dict[str, object] = {
        "model": name,
        "ok": True,
        "version": vv.version,
        "sequence": vv.sequence,
        "files": len(vv.files),
        "key_id": vv.manifest["key_id"],
        "algorithm": vv.manifest["algorithm"],
        "anchored": anchor is not None if version is None else None,
        "anchor": f"sequence {anchor.sequence}, {anchor.source}" if anchor else None,
    }
    if version is None and anchor is None:
        typer.secho(
            f"WARN  {name}: unanchored: sequence {vv.sequence} was not checked against a "
            "floor, so a replayed older LATEST whose newer history was deleted would look "
            "the same (pass --state or --min-sequence, or run in the publisher's workdir)",
            err=True,
            fg=typer.colors.YELLOW,
        )
    if not as_json:
        seq = f" sequence {vv.sequence}" if vv.sequence is not None else ""
        typer.secho(
            f"OK    {name} {vv.version}{seq}: {len(vv.files)} file(s), "
            f"key {vv.manifest['key_id']} ({vv.manifest['algorithm']})",
            fg=typer.colors.GREEN,
        )
    return row


def verify_cmd(
    store: StoreArg = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Verify this version, not LATEST.")
    ] = None,
    config: ConfigOpt = None,
    workdir: WorkdirOpt = None,
    as_json: JsonOpt = False,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="A consumer's state file (<cache>/state/<model>.json): report a LATEST "
            "older than what it accepted as a replay.",
        ),
    ] = None,
    min_sequence: Annotated[
        int | None,
        typer.Option(
            "--min-sequence",
            min=1,
            help="Report a LATEST with a lower sequence as a replay (a floor, as a bot's).",
        ),
    ] = None,
    require_anchor: Annotated[
        bool,
        typer.Option(
            "--require-anchor",
            help=f"Exit {EXIT_UNANCHORED} when a LATEST verified but had no floor to be "
            "checked against (no --state, no --min-sequence, no publisher state).",
        ),
    ] = False,
) -> None:
    """Check pointer, manifest signature, every file's sha256 and size, that the pointer
    has not expired and that no verified history entry is newer than LATEST (a replayed
    LATEST); with a floor (--state, --min-sequence or the workdir's publisher state) also
    that LATEST is not older than it. 0 only if all pass; without a floor a LATEST is
    reported unanchored (exit 3 with --require-anchor)."""
    from pipelines.registry.client import ClientStateError, read_client_state

    accepted = None
    try:
        cfg = _settings(config, workdir)
        st = _store(store, cfg)
        ring = _keys(cfg, signing=False)
        if state is not None:
            accepted = read_client_state(state)
            model = model or accepted.model
            if model != accepted.model:
                raise _UserError(f"{state} is the state of {accepted.model!r}, not {model!r}")
        models = [model] if model else _models(st, cfg)
    except (_UserError, RegistryError, ValueError) as exc:
        exit_code = EXIT_FAILED if isinstance(exc, ClientStateError) else EXIT_USAGE
        raise _fail(str(exc), exit_code) from None
    if not models:
        root = getattr(st, "root", None)
        if isinstance(root, Path) and not root.is_dir():
            raise _fail(f"{st.uri}: no such store (folder {root} does not exist)", EXIT_USAGE)
        raise _fail(f"{st.uri}: no models found", EXIT_FAILED)
    if version is not None and model is None:
        raise _fail("--version needs --model")
    failed = 0
    unanchored = 0
    rows: list[dict[str, object]] = []
    for name in models:
        row = _report_one(cfg, st, name, ring, version, accepted, state, min_sequence, as_json)
        rows.append(row)
        failed += not row["ok"]
        unanchored += row.get("anchored") is False
    total = len(models)
    if as_json:
        doc = {
            "store": st.uri,
            "verified": total - failed,
            "total": total,
            "unanchored": unanchored,
            "models": rows,
        }
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        tail = f"; {unanchored} unanchored (no floor)" if unanchored else ""
        typer.echo(f"{total - failed}/{total} model(s) verified in {st.uri}{tail}")
    if failed:
        raise typer.Exit(EXIT_FAILED)
    raise typer.Exit(EXIT_UNANCHORED if unanchored and require_anchor else EXIT_OK)


def _model_listing(st: Store, name: str, ring: KeyRing) -> tuple[dict[str, object], list[str]]:
    """One model of ``edgeflow models``: its JSON entry and its text lines."""
    entry: dict[str, object] = {"model": name}
    try:
        pointer, _, _ = read_pointer(st, name, ring)
        live: str | None = pointer.version
        head = f"LATEST -> {pointer.version} (sequence {pointer.sequence})"
        entry.update(live=pointer.version, sequence=pointer.sequence, replayed=False)
        try:
            check_against_history(st, name, ring, pointer)
        except ReplayError as exc:
            head = f"{head} REPLAYED [{exc.code}] {exc}; not a min_sequence to configure"
            entry.update(replayed=True, pointer_error=f"[{exc.code}] {exc}")
    except VerificationError as exc:
        live, head = None, f"LATEST INVALID [{exc.code}] {exc}"
        entry.update(live=None, pointer_error=f"[{exc.code}] {exc}")
    lines = [f"{name}: {head}"]
    versions: list[dict[str, object]] = []
    for v in reversed(list_versions(st, name)):
        try:
            vv = verify_version(st, name, v, ring)
            status = "live" if v == live else "ok"
            detail = vv.manifest.get("created_at", "")
        except VerificationError as exc:
            status, detail = "INVALID", f"[{exc.code}] {exc}"
        versions.append({"version": v, "status": status, "detail": detail})
        lines.append(f"  {v}  {status:<7} {detail}")
    entry["versions"] = versions
    return entry, lines


def models_cmd(
    store: StoreArg = None,
    config: ConfigOpt = None,
    workdir: WorkdirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List models and their versions with status (live, ok, INVALID).

    ``LATEST`` is compared with the verified history beside it, as ``verify`` does: an older
    envelope copied over it verifies on its own, and the sequence printed here is what an
    operator configures as a bot's ``min_sequence``, so a replayed one is flagged
    (``REPLAYED``, exit 1), never printed as if it were live."""
    try:
        cfg = _settings(config, workdir)
        st = _store(store, cfg)
        ring = _keys(cfg, signing=False)
        names = list_models(st)
    except (_UserError, RegistryError) as exc:
        raise _fail(str(exc)) from None
    # The slots that never published here: the bot plays its built-in fallback for them, and
    # a user who finds a model missing from the listing is told so rather than left to guess.
    from flows.cli.app import MODEL_TITLES

    absent = [m for m in MODEL_TITLES if m not in names]
    absent_line = (
        f"never published to this store: {', '.join(absent)} (the bot runs on its defaults for "
        "them; `edgeflow runs` says why each run blocked them)"
    )
    if not names and not as_json:
        typer.echo(f"{st.uri}: no models")
        typer.echo(absent_line)
        return
    doc: list[dict[str, object]] = []
    for name in names:
        entry, lines = _model_listing(st, name, ring)
        doc.append(entry)
        if not as_json:
            typer.echo("\n".join(lines))
    replayed = sum(bool(e.get("replayed")) for e in doc)
    if as_json:
        out = {"store": st.uri, "models": doc, "never_published": absent}
        typer.echo(json.dumps(out, indent=2, default=str))
    elif absent:
        typer.echo(absent_line)
    if replayed:
        typer.echo(
            f"{replayed} model(s) with a LATEST older than the verified history beside it: "
            "run edgeflow verify; the next publish or heartbeat replaces it",
            err=True,
        )
        raise typer.Exit(1)


#: An operator's answer when no pointer verifies (LATEST and its history deleted).
StartSequenceOpt = Annotated[
    int | None,
    typer.Option(
        "--start-sequence",
        min=1,
        help="Operator: the sequence to sign when no pointer verifies (LATEST and its "
        "history deleted); above the highest one any bot accepted.",
    ),
]


def rollback_cmd(
    store: StoreArg = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model to roll back.")] = "",
    to: Annotated[
        str | None,
        typer.Option("--to", help="Target version (default: the live one's previous_version)."),
    ] = None,
    below_floor: Annotated[
        bool,
        typer.Option(
            "--below-floor", help="Confirm a target below the last operator-approved version."
        ),
    ] = False,
    start_sequence: StartSequenceOpt = None,
    config: ConfigOpt = None,
    workdir: WorkdirOpt = None,
) -> None:
    """Operator command: a new signed pointer to an older, verified version (the new floor)."""
    if not model:
        raise _fail("--model is required")
    try:
        cfg = _settings(config, workdir)
        st = _store(store, cfg)
        ring = _keys(cfg, signing=True)
        done = rollback(
            st,
            model,
            ring,
            to=to,
            below_floor=below_floor,
            ttl=timedelta(hours=cfg.registry.pointer_ttl_hours),
            state_dir=_publisher_state(cfg),
            start_sequence=start_sequence,
        )
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
    workdir: WorkdirOpt = None,
    approve: Annotated[
        bool, typer.Option("--approve", help="Record it as the approved rollback floor.")
    ] = False,
    start_sequence: StartSequenceOpt = None,
) -> None:
    """Sign and publish FILE... as the next version of a model."""
    if not model:
        raise _fail("--model is required")
    try:
        cfg = _settings(config, workdir)
        st = _store(store, cfg, must_exist=False)
        ring = _keys(cfg, signing=True)
        done = publish_model(
            st,
            model,
            files,
            ring,
            keep_last=cfg.registry.keep_last,
            ttl=timedelta(hours=cfg.registry.pointer_ttl_hours),
            approve=approve,
            state_dir=_publisher_state(cfg),
            start_sequence=start_sequence,
        )
    except (_UserError, RegistryError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"published {model}/{done.version} (sequence {done.sequence}) to {st.uri}"
        + (f"; pruned {', '.join(done.pruned)}" if done.pruned else "")
    )


def heartbeat_cmd(
    store: StoreArg = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Only this model (default: all).")
    ] = None,
    config: ConfigOpt = None,
    workdir: WorkdirOpt = None,
    renew_expired: Annotated[
        bool,
        typer.Option("--renew-expired", help="Operator: also renew pointers that have expired."),
    ] = False,
) -> None:
    """Re-sign a fresh pointer to each model's current, fully verified version."""
    try:
        cfg = _settings(config, workdir)
        st = _store(store, cfg)
        ring = _keys(cfg, signing=True)
        models = [model] if model else _models(st, cfg)
    except (_UserError, RegistryError, ValueError) as exc:
        raise _fail(str(exc)) from None
    failed = 0
    for name in models:
        try:
            done = heartbeat(
                st,
                name,
                ring,
                ttl=timedelta(hours=cfg.registry.pointer_ttl_hours),
                renew_expired=renew_expired,
                state_dir=_publisher_state(cfg),
            )
        except (RegistryError, ValueError) as exc:
            failed += 1
            typer.secho(f"FAIL  {name}: [{getattr(exc, 'code', 'invalid')}] {exc}", err=True)
            continue
        typer.echo(
            f"{name}: {done.version} re-signed (sequence {done.sequence}) until {done.expires}"
        )
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add ``verify``, ``models``, ``rollback``, ``publish`` and ``heartbeat`` to the CLI."""
    app.command("verify")(verify_cmd)
    app.command("models")(models_cmd)
    app.command("rollback")(rollback_cmd)
    app.command("publish")(publish_cmd)
    app.command("heartbeat")(heartbeat_cmd)
