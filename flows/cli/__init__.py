"""The ``edgeflow`` command line: run the pipeline, check health, and manage the model store.

Start-up matters: a person types ``edgeflow --help`` and expects an answer at once, so the
package imports only typer and the standard library. Settings, pandas, Prefect, MLflow and the
model code are imported inside the commands that need them, and Prefect's environment
(``PREFECT_HOME`` under the workdir) is set just before the first flow import. Commands that
need no flow (verify, models, rollback, publish, heartbeat, health, config, runs) never
start Prefect.

- :mod:`flows.cli.app`: the Typer app, its dispatch and exit codes (``main``, the entry point).
- :mod:`flows.cli.options`: the shared options and the one config build.
- :mod:`flows.cli.preflight`: the checks that refuse bad input before Prefect starts.
- :mod:`flows.cli.commands`: the commands by area (pipeline, registry, runs, config, health).
- :mod:`flows.cli.runtime` and :mod:`flows.cli.local_api`: the process set-up, the Prefect and
  MLflow templates (``python -m flows.cli.runtime``) and Prefect's local API.
"""

from flows.cli.app import main

__all__ = ["main"]
