# Sourced by the Python test drivers, from the repository root.
# `run_pytest SUITE [ARGS]` runs pytest on tests/SUITE in .venv, after
# `ensure_venv tests/SUITE/requirements.txt`: it makes .venv when missing, and
# installs the requirements (exact pins, wheels only) only when that file
# changed since its last install.
ensure_venv() {
    local requirements=$1 venv=.venv
    local stamp="$venv/.$(basename "$(dirname "$requirements")")-requirements.sha256"
    if [[ ! -x "$venv/bin/python" ]]; then
        # One line saying what to install, rather than venv's traceback.
        scripts/check-python.sh
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

run_pytest() {
    local suite=$1
    shift
    ensure_venv "tests/$suite/requirements.txt"
    # No __pycache__ or .pytest_cache in the working tree.
    export PYTHONDONTWRITEBYTECODE=1
    exec .venv/bin/python -m pytest -q -p no:cacheprovider "tests/$suite" "$@"
}
