# Shared set-up for scripts/cluster, scripts/test and scripts/bench: sourced, not run.
# Creates .venv and installs the project when missing or when pyproject.toml/requirements.lock
# changed, and installs Debian packages on demand. Safe to run again: it does nothing twice.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*" >&2; }

ensure_venv() {
    local stamp="$VENV/.installed" want
    want="$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating virtualenv in .venv"
        "$PYTHON" -m venv "$VENV"
    fi
    log "installing the project and its pinned dependencies"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$ROOT/requirements.lock" -e "$ROOT[dev]"
    echo "$want" >"$stamp"
}

# ensure_apt PROGRAM:PACKAGE ... installs each package whose program is not on PATH.
ensure_apt() {
    local missing=() pair program package
    for pair in "$@"; do
        program="${pair%%:*}"
        package="${pair#*:}"
        if ! command -v "$program" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$program" ]]; then
            missing+=("$package")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { log "need root or sudo to install: ${missing[*]}"; exit 1; }
        sudo=(sudo)
    fi
    log "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

export PATH="$VENV/bin:$PATH:/usr/sbin"
