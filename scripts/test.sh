#!/usr/bin/env bash
# Runs the whole test suite, Spark, PostgreSQL and browser tests included, on a Debian 12 machine.
# Installs what is missing first: PostgreSQL, MariaDB, Java and Chromium from Debian, the Python packages of
# requirements.lock into .venv. Extra arguments go to pytest, e.g.:
#   ./scripts/test.sh tests/store -x
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/env.sh

missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing+=(postgresql); fi
if ! command -v mariadbd >/dev/null 2>&1; then missing+=(mariadb-server); fi
if ! command -v java >/dev/null 2>&1; then
    missing+=(openjdk-17-jre-headless)
    as_root mkdir -p /usr/share/man/man1  # the JRE's post-install links its man pages there
fi
if ! command -v chromium >/dev/null 2>&1; then missing+=(chromium); fi  # the web app's browser tests
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

python_env

section "Running tests"
export TESSERA_TEST_SPARK=1 TESSERA_TEST_POSTGRES=1 TESSERA_TEST_MARIADB=1 TESSERA_TEST_BROWSER=1
exec .venv/bin/python -m pytest -q "$@"
