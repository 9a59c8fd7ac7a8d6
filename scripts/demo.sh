#!/usr/bin/env bash
# Runs the Tessera demo in a workspace folder (default: demo-workspace), on DuckDB: generates the
# demo company's files, runs the pipeline and exports the unified datasets, then serves the web
# app on it (http://127.0.0.1:8080/, or TESSERA_PORT) with a demo admin whose password is printed
# (and kept in WORKSPACE/demo-login.txt). Set TESSERA_DEMO_SERVE=0 to stop before serving.
# Installs the Python packages of requirements.lock into .venv first when needed.
#   ./scripts/demo.sh [WORKSPACE]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

python_env

workspace="${1:-demo-workspace}"
port="${TESSERA_PORT:-8080}"

section "Running the demo"
.venv/bin/tessera demo "$workspace"

login_file="$workspace/demo-login.txt"
if [ ! -f "$login_file" ]; then
    password="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')"
    printf '%s\n' "$password" | .venv/bin/tessera -w "$workspace" users create-admin --email demo@example.com --password-stdin
    (umask 077 && printf 'demo@example.com %s\n' "$password" > "$login_file")
fi
read -r email password < "$login_file"

if [ "${TESSERA_DEMO_SERVE:-1}" = "0" ]; then
    echo "Serve it: .venv/bin/tessera -w $workspace serve, then sign in as $email with the password $password"
    exit 0
fi
section "Serving the web app (Ctrl+C stops it)"
echo "Open http://127.0.0.1:$port/ and sign in as $email with the password: $password"
echo "(kept in $login_file)"
exec .venv/bin/tessera -w "$workspace" serve --port "$port"
