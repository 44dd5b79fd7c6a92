"""Shared fixtures: isolated Prefect/MLflow homes, a real S3 server and one Prefect API on
127.0.0.1; the ``slow`` tier and the xdist groups (see ``pytest_collection_modifyitems``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Point the libraries' stray state at a throwaway folder before any of them is imported.
_HOME = Path(tempfile.mkdtemp(prefix="edgeflow-tests-"))
os.environ.setdefault("PREFECT_HOME", str(_HOME / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# Start from the environment's migrated Prefect template (if built) as every workdir does.
from flows.cli.runtime import seed_prefect_database  # noqa: E402

seed_prefect_database(Path(os.environ["PREFECT_HOME"]))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real HTTP S3 endpoint (moto's server mode) on loopback, stopped after the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _sigint_handler_restored(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with the SIGINT handler the previous one found. Under xdist a worker runs
    the tests in another order than a plain run, and a test that left its own handler installed
    made the Ctrl-C tests of a later one fail (no KeyboardInterrupt). The leak is reported as a
    warning with the test's id, and undone."""
    import signal
    import threading
    import warnings

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        warnings.warn(
            f"{request.node.nodeid} left SIGINT handled by {after!r}; restored", stacklevel=1
        )
        signal.signal(signal.SIGINT, before)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One Prefect API for the session (Prefect's own test harness, started once per process:
    it takes 10-15 s to start, so the flow tests share it rather than start one per module)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture()
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh versioned bucket per test; returns its name."""
    import re

    import boto3

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") or "bucket"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    suffix = 0
    bucket = name
    while bucket in existing:
        suffix += 1
        bucket = f"{name}-{suffix}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


# --------------------------------------------------------------------------- tiers and groups

#: The slowest tests (each takes 5 s or more on an idle 2-core box, or starts a real server or a
#: whole run): ``make test-fast`` leaves them out with ``-m "not slow"``; ``make test`` and CI run
#: them. Entries are node-id prefixes (a folder, a module, or a module::test without its
#: parameters); tests decorated ``@pytest.mark.slow`` and every test that uses the Prefect API
#: (``prefect_api``: a real server and whole flows) need no entry.
SLOW = (
    "tests/e2e/",
    "tests/integration/",
    "tests/models/test_registry_contract.py",
    "tests/regime/test_regime_conformal.py",
    "tests/bot/test_bot_replay.py::test_three_cycles_reload_and_report",
    "tests/unit/test_runtime_prefect_template.py::test_an_existing_mlflow_store_is_never_touched",
    "tests/unit/test_runtime_prefect_template.py::test_a_seeded_mlflow_store_opens_as_a_migrated_one",
    "tests/unit/test_runtime_prefect_template.py::test_template_build_gets_the_runs_start_up_timeout",
    "tests/unit/test_runtime_tmpdir.py::test_tempfiles_and_sb3_logs_follow_the_workdir_after_set_up",
    "tests/features/test_features_isolated.py::test_the_child_dies_with_a_killed_parent",
    "tests/features/test_features_isolated.py::test_the_child_runs_the_parents_checkout_even_when",
    "tests/features/test_features_isolated.py::test_the_training_flow_never_imports_numba",
    "tests/cli/test_cli_precheck.py::test_a_port_taken_meanwhile_restarts_the_server_on_another",
    "tests/cli/test_cli_precheck.py::test_local_api_started_early_is_the_one_the_flow_uses",
    "tests/cli/test_cli_precheck.py::test_a_killed_cli_leaves_no_server_behind",
    "tests/cli/test_cli_subprocess.py::test_cli_health_and_models_leave_the_cwd_alone",
    "tests/registry/test_registry_hardening.py::test_random_kills_leave_no_torn_pointer",
    "tests/report/test_report_browser.py::test_report_screenshot_shows_the_page",
)

#: The modules that take longest (each 1-4 minutes of one worker, `--durations` of a two-worker
#: run), longest first: collected first so that no worker starts one near the end.
LONGEST_FIRST = (
    "tests/integration/test_prefect_server.py",
    "tests/e2e/test_e2e_replay.py",
    "tests/e2e/test_e2e_cloud_state.py",
    "tests/e2e/test_e2e_reproducible.py",
    "tests/registry/test_registry_round_two.py",
    "tests/e2e/test_e2e_training_flow.py",
    "tests/export/test_export_reproducible.py",
    "tests/e2e/test_e2e_cli.py",
)

#: Session fixtures too costly to start on both xdist workers: every test that uses one runs in
#: that fixture's group (one worker), with the module-scoped fixtures of its modules.
SHARED_SESSION = {"prefect_api": "prefect-api", "report_page": "report-page"}


def _group(item: pytest.Item) -> str | None:
    """The xdist group a test needs so that its shared fixtures are built once, or None."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for name in info.names_closure:
        if name in SHARED_SESSION:
            return SHARED_SESSION[name]
    for name in info.names_closure:
        defs = info.name2fixturedefs.get(name, ())
        if defs and defs[-1].scope in ("module", "class", "package"):
            return item.nodeid.split("::", 1)[0]
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the ``slow`` tier, and put the tests that share costly setup in one xdist group.

    Under ``pytest -n 2 --dist loadgroup`` (``make test``) tests without a group are spread one
    by one, so a module- or class-scoped fixture (a trained model, a generated world) would be
    built on both workers. The tests that use one run in their module's group instead, and the
    users of a costly session fixture (``SHARED_SESSION``) in its group, together with every
    module they share setup with. An explicit ``@pytest.mark.xdist_group`` wins. Without xdist
    the marks change nothing.
    """
    slow = pytest.mark.slow
    by_module: dict[str, str] = {}
    grouped: list[tuple[pytest.Item, str]] = []
    for item in items:
        nodeid = item.nodeid.split("[", 1)[0]
        uses_api = "prefect_api" in getattr(item, "fixturenames", ())
        if (nodeid.startswith(SLOW) or uses_api) and item.get_closest_marker("slow") is None:
            item.add_marker(slow)
        if item.get_closest_marker("xdist_group") is not None:
            continue
        group = _group(item)
        if group is None:
            continue
        module = item.nodeid.split("::", 1)[0]
        # a module whose tests use a shared session fixture goes whole into that group
        if group in SHARED_SESSION.values() or module not in by_module:
            by_module[module] = group
        grouped.append((item, module))
    for item, module in grouped:
        item.add_marker(pytest.mark.xdist_group(by_module[module]))
    # Longest first: xdist hands tests out in collection order, so a several-minute module
    # collected last keeps one worker busy while the other idles. Whole modules move (their
    # module fixtures stay contiguous); the order inside a module and of the rest is kept.
    rank = {m: i for i, m in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: rank.get(it.nodeid.split("::", 1)[0], len(rank)))
