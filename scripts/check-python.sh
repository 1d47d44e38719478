#!/usr/bin/env bash
# The first step of `make test` (and of every script that makes .venv):
# the Python tests run in a virtual environment, and on Debian and Ubuntu
# `python3 -m venv` needs the python3-venv package (ensurepip), which a
# fresh machine lacks. Say so in one line before anything is built.
# VENV_DIR (default .venv) is where scripts/venv.sh keeps it; once it is
# there, python3-venv has done its job.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV_DIR:-.venv}

if [[ -x "$venv/bin/python" ]]; then
    exit 0
fi
if ! command -v python3 >/dev/null; then
    echo "make test needs python3 (Debian/Ubuntu: apt-get install python3 python3-venv)" >&2
    exit 2
fi
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "make test needs python3's venv module with ensurepip, which is missing: apt-get install python3-venv (as root), then run it again" >&2
    exit 2
fi
