"""A fresh workdir's Prefect database starts from the environment's migrated template."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flows.cli.runtime import prepare_environment, seed_prefect_database, template_path


@pytest.fixture()
def template(tmp_path: Path) -> Path:
    path = tmp_path / "template.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE alembic_version (version_num TEXT)")
        con.execute("INSERT INTO alembic_version VALUES ('head')")
    return path


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (
        "PREFECT_API_URL",
        "PREFECT_API_DATABASE_CONNECTION_URL",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    ):
        monkeypatch.delenv(key, raising=False)


def test_seeds_a_fresh_home_once_and_keeps_an_existing_database(
    tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear(monkeypatch)
    home = tmp_path / "home"
    assert seed_prefect_database(home, template) is True
    assert (home / "prefect.db").read_bytes() == template.read_bytes()
    assert [p.name for p in home.iterdir()] == ["prefect.db"]  # no temporary file left
    (home / "prefect.db").write_bytes(b"runs of this workdir")
    assert seed_prefect_database(home, template) is False  # never overwrites
    assert (home / "prefect.db").read_bytes() == b"runs of this workdir"


@pytest.mark.parametrize("key", ["PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL"])
def test_no_seed_when_another_server_or_database_is_configured(
    tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv(key, "http://127.0.0.1:4200/api")
    assert seed_prefect_database(tmp_path / "home", template) is False
    assert not (tmp_path / "home").exists()


def test_no_template_no_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    assert seed_prefect_database(tmp_path / "home", tmp_path / "missing.db") is False
    assert not (tmp_path / "home" / "prefect.db").exists()


def test_template_is_per_prefect_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    path = template_path(tmp_path)
    assert path.parent == tmp_path / "share" / "edgeflow"
    assert version("prefect") in path.name


def test_commands_without_a_flow_do_not_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("PREFECT_HOME", "PREFECT_LOCAL_STORAGE_PATH", "TMPDIR"):
        monkeypatch.delenv(key, raising=False)
    prepare_environment(tmp_path / "wd")
    assert not (tmp_path / "wd" / "prefect" / "prefect.db").exists()


# --------------------------------------------------------------------------- MLflow's store


@pytest.fixture(scope="module")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flows.cli.runtime import build_mlflow_template

    return build_mlflow_template(tmp_path_factory.mktemp("tpl") / "mlflow.db")


def test_a_seeded_mlflow_store_opens_as_a_migrated_one(
    tmp_path: Path, mlflow_template: Path
) -> None:
    from mlflow import MlflowClient

    from flows.cli.runtime import seed_mlflow_database

    db, root = tmp_path / "wd" / "mlflow.db", tmp_path / "wd" / "mlartifacts"
    assert seed_mlflow_database(db, root, mlflow_template) is True
    assert [p.name for p in db.parent.iterdir()] == ["mlflow.db"]  # no staging file left
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    (default,) = client.search_experiments()
    assert default.name == "Default"
    assert default.artifact_location == (root.resolve() / "0").as_uri()  # this workdir's
    run = client.create_run(client.create_experiment("x"))
    client.log_metric(run.info.run_id, "m", 1.0)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}


def test_an_existing_mlflow_store_is_never_touched(tmp_path: Path, mlflow_template: Path) -> None:
    from flows.cli.runtime import seed_mlflow_database

    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this workdir's runs")
    assert seed_mlflow_database(db, tmp_path / "a", mlflow_template) is False
    assert db.read_bytes() == b"this workdir's runs"
    assert seed_mlflow_database(tmp_path / "new.db", tmp_path / "a", tmp_path / "none") is False
    assert not (tmp_path / "new.db").exists()


def test_template_build_gets_the_runs_start_up_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set-up's template build starts Prefect's API too: it must wait as long as a run does
    (it died at Prefect's 20 s default under load). Read back through Prefect's own settings
    in a child with the build's environment, so a misspelt variable fails here."""
    import subprocess
    import sys

    from flows.cli.runtime import (
        STARTUP_TIMEOUT_SECONDS,
        STARTUP_TIMEOUT_SETTING,
        template_environment,
    )

    monkeypatch.delenv(STARTUP_TIMEOUT_SETTING, raising=False)
    env = template_environment(str(tmp_path))
    code = (
        "from prefect.settings import get_current_settings as s\n"
        "print(s().server.ephemeral.startup_timeout_seconds)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    assert float(out.stdout.strip()) == float(STARTUP_TIMEOUT_SECONDS)
    monkeypatch.setenv(STARTUP_TIMEOUT_SETTING, "300")  # a user's own value still wins
    assert template_environment(str(tmp_path))[STARTUP_TIMEOUT_SETTING] == "300"
