#!/usr/bin/env bash
# Runs the whole test suite, Spark and PostgreSQL tests included, on a Debian 12 machine.
# Installs what is missing first: PostgreSQL and Java from Debian, the Python packages of
# requirements.lock into .venv. Extra arguments go to pytest, e.g.:
#   ./scripts/test.sh tests/store -x
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n== %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    section "Installing system packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

python_env() {
    # Creates .venv and installs the locked packages; skipped when the lock and pyproject did not
    # change since the last install.
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    if [ ! -x .venv/bin/python ]; then
        section "Creating .venv"
        python3 -m venv .venv
    fi
    local stamp=.venv/.tessera-installed
    local want
    want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        section "Installing Python packages (requirements.lock)"
        local log=.venv/pip-install.log
        if ! { .venv/bin/python -m pip install --disable-pip-version-check -r requirements.lock \
               && .venv/bin/python -m pip install --disable-pip-version-check --no-deps -e . ; } >"$log" 2>&1; then
            tail -n 40 "$log"
            echo "pip install failed: the whole output is in $log" >&2
            exit 1
        fi
        echo "$want" > "$stamp"
    fi
}

missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing+=(postgresql); fi
if ! command -v java >/dev/null 2>&1; then
    missing+=(openjdk-17-jre-headless)
    as_root mkdir -p /usr/share/man/man1  # the JRE's post-install links its man pages there
fi
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

python_env

section "Running tests"
export TESSERA_TEST_SPARK=1 TESSERA_TEST_POSTGRES=1
exec .venv/bin/python -m pytest -q "$@"
