"""Prefect's local API for one CLI process, started before the training code is imported.

With no ``PREFECT_API_URL`` Prefect starts a temporary API itself (``SubprocessASGIServer``),
but importing that class imports the whole server package into the flow's process (FastAPI
routes, SQLAlchemy models, Alembic, Docket): +67 MB of peak RSS and ~1.5 s of CPU on the
2-core machine (docs/performance.md), only to spawn a subprocess. Here the same subprocess
is spawned the way Prefect's own launchers spawn it (``uvicorn --factory
prefect.server.api.server:create_app``, UI off, ephemeral services), its URL goes into
``PREFECT_API_URL`` for this process and its children, and it stops when the process exits.
The flow's runs are real runs in the workdir's database, visible in ``prefect server start``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

#: Uvicorn's message when the chosen port was taken between choosing and binding it.
_PORT_TAKEN = "address already in use"


@dataclass
class LocalApi:
    """One API server subprocess on 127.0.0.1; ``wait`` blocks until it answers."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]  # the server's environment, for a restart on another port
    log_offset: int = 0  # where this start's output begins in the (appended) log
    started: float = field(default_factory=time.perf_counter)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def wait(self, timeout: float) -> float:
        """Block until ``/health`` answers 200; return the seconds since the start.

        A server that exits or does not answer in ``timeout`` raises with its log's tail.
        """
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(self._failure(f"exited with code {self.process.returncode}"))
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/health").status_code == 200:
                        return time.perf_counter() - self.started
                time.sleep(0.05)
        raise RuntimeError(self._failure(f"did not answer within {timeout:.0f} s"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        """What this start of the server wrote to its log (earlier starts' lines excluded)."""
        if not self.log.is_file():
            return ""
        with self.log.open("rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def port_was_taken(self) -> bool:
        """Whether this start exited because its port was taken before it could bind it.

        Searched in the whole of this start's output: under load the server's shutdown
        tracebacks can follow uvicorn's one-line bind error by several kilobytes.
        """
        return self.process.poll() is not None and _PORT_TAKEN in self.output().lower()

    def _failure(self, what: str) -> str:
        tail = self.output()[-2000:]
        return f"Prefect's local API on {self.url} {what}; its log ({self.log}):\n{tail}"


def start_local_api(home: Path) -> LocalApi | None:
    """Start the local API if Prefect would start one for this process; else None.

    None when an API URL is configured (env, profile) or ephemeral mode is off: then the
    flow talks to that server, or fails as Prefect would. ``home`` (``PREFECT_HOME``)
    receives the server's log. On success ``PREFECT_API_URL`` is set and Prefect's settings
    re-read, so every client of this process (and its child processes) uses this server.
    """
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return None
    home.mkdir(parents=True, exist_ok=True)
    log = home / "local-api.log"
    env = {
        **os.environ,
        **settings.to_environment_variables(exclude_unset=True),
        # what SubprocessASGIServer sets: no UI, the services an ephemeral server runs
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    api = _spawn(env, log)
    atexit.register(api.stop)
    os.environ["PREFECT_API_URL"] = api.url
    refresh_global_settings_context()
    return api


@contextlib.contextmanager
def serving(api: LocalApi | None) -> Iterator[None]:
    """Wait for ``api``, then run the block against it without flow-run heartbeats.

    Heartbeats let a long-lived server mark the runs of a vanished process Crashed; this
    server lives and dies with the process, so they would only cost time: the engine joins
    its heartbeat thread at the end of every flow and subflow run, and that thread sleeps in
    one-second steps (an empty flow run: 1,087 ms with them, 88 ms without). A configured server
    (``api`` None) keeps Prefect's settings as they are.
    """
    if api is None:
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    wait_for_api(api)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def wait_for_api(api: LocalApi | None) -> None:
    """Wait for a server ``start_local_api`` started; retry once on a port taken meanwhile."""
    if api is None:
        return
    from prefect.settings import get_current_settings

    timeout = float(get_current_settings().server.ephemeral.startup_timeout_seconds)
    try:
        api.wait(timeout)
    except RuntimeError:
        if not api.port_was_taken():
            raise
        retry = _spawn(api.env, api.log)
        api.port, api.process, api.started = retry.port, retry.process, retry.started
        os.environ["PREFECT_API_URL"] = api.url
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
        api.wait(timeout)


def _spawn(env: dict[str, str], log: Path) -> LocalApi:
    port = _free_port()
    env = {**env}
    env.pop("PREFECT_API_URL", None)  # the server itself is not a client of another
    import prefect

    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(prefect.__file__).parent.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    with log.open("ab") as out:
        offset = out.tell()
        # Its own session: a terminal's Ctrl-C goes to the whole foreground process group, and
        # a server killed by it under the running flow left the CLI retrying a dead API for
        # minutes (exit 1, the flow run stuck Running). The CLI stops it itself on the way out.
        process = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(),
            start_new_session=True,
        )
    return LocalApi(port, process, log, env, offset)


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before exec on Linux: ask for SIGTERM when the spawning thread
    dies, so a killed CLI (``kill -9``, the OOM killer) leaves no orphaned server. Resolved
    here, in the parent, so the child only makes the call. Elsewhere atexit's stop is all."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1  # linux/prctl.h

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_death_signal


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_local_api() -> AbstractContextManager[None]:
    """Start Prefect's local API now, as a subprocess; the returned context waits for it and
    runs the flows inside against it (:func:`serving`), then says where the run
    can be looked at once it has ended (:func:`api_note`).

    The subprocess comes up on the other core while this process imports the training code
    (torch, SB3, LightGBM, MLflow); on a fresh workdir its database is the migrated template.
    Nothing starts when a server is configured (``PREFECT_API_URL``) or ephemeral mode is off.
    """
    import typer

    home = Path(os.environ["PREFECT_HOME"])
    api = start_local_api(home)

    @contextlib.contextmanager
    def serve_then_note() -> Iterator[None]:
        with serving(api):
            yield
        typer.echo(api_note(None if api is None else api.url, home, os.environ), err=True)

    return serve_then_note()


def api_note(local_url: str | None, home: Path, environ: Mapping[str, str]) -> str:
    """One line after a flow: Prefect's "View at" link names this run's temporary API (no UI)
    that stops with the process, so say so and how to browse the run; or, with a configured
    server, where the run is."""
    if local_url is None:
        server = environ.get("PREFECT_UI_URL") or environ.get("PREFECT_API_URL", "")
        where = server.removesuffix("/").removesuffix("/api") or "the configured Prefect server"
        return f"note: this run is in the Prefect server at {where}"
    base = local_url.removesuffix("/api")
    return (
        f"note: the 'View at {base}/...' link above was this run's temporary Prefect API, "
        f"stopped now that the run has ended; the run is kept in {home / 'prefect.db'}: "
        f"run `PREFECT_HOME={home} {Path(sys.executable).with_name('prefect')} server start` "
        "and open http://127.0.0.1:4200"
    )
