# Sourced by the Python test drivers: `ensure_venv REQUIREMENTS` makes .venv
# at the repository root when missing, and installs REQUIREMENTS (exact pins,
# wheels only) only when that file changed since its last install.
ensure_venv() {
    local requirements=$1 venv=.venv
    local stamp="$venv/.$(basename "$(dirname "$requirements")")-requirements.sha256"
    if [[ ! -x "$venv/bin/python" ]]; then
        python3 -m venv "$venv"
    fi
    local wanted
    wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            --only-binary=:all: -r "$requirements"
        echo "$wanted" >"$stamp"
    fi
}
