#!/usr/bin/env bash
# Runs the Tessera demo in a workspace folder (default: demo-workspace), on DuckDB: generates the
# demo company's files, runs the pipeline and exports the unified datasets.
# Installs the Python packages of requirements.lock into .venv first when needed.
#   ./scripts/demo.sh [WORKSPACE]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

python_env

section "Running the demo"
exec .venv/bin/tessera demo "${1:-demo-workspace}"
