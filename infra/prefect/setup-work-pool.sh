#!/usr/bin/env bash
# One-time setup of the process work pool the deployments in prefect.yaml use, then a worker.
# Needs PREFECT_API_URL pointing at a Prefect server (infra/docker-compose.yml starts one).
# For Kubernetes, create the pool with `--type kubernetes` instead and run the worker in the
# cluster (`prefect worker start --pool edgeflow-k8s --type kubernetes`); deployments then set
# `work_pool.name: edgeflow-k8s` and a job_variables.image built from this repo.
set -euo pipefail
cd "$(dirname "$0")/../.."
export EDGEFLOW_REPO_DIR="${EDGEFLOW_REPO_DIR:-$PWD}"
# Without an API URL (environment or Prefect profile) the CLI would deploy to a throwaway
# ephemeral server and nothing would ever be scheduled.
config="$(.venv/bin/prefect config view 2>/dev/null || true)"
if ! grep -q '^PREFECT_API_URL=' <<<"$config"; then
  echo "PREFECT_API_URL is not set: point it at a Prefect server (e.g. http://127.0.0.1:4200/api)" >&2
  exit 1
fi
.venv/bin/prefect work-pool create edgeflow-process --type process --overwrite
.venv/bin/prefect --no-prompt deploy --all
exec .venv/bin/prefect worker start --pool edgeflow-process
