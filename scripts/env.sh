# Shared by scripts/demo.sh and scripts/test.sh (sourced, not run).
# section, as_root, apt_install, python_env: .venv with the locked packages.

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
