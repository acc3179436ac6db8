#!/usr/bin/env bash
# Runs a Python test of tests/server/ with the venv that scripts/test.sh prepares in the build
# folder (it holds the `openai` package), or the system's python3 without it.
#   run_python.sh BUILD_DIR SCRIPT ARGS...
build=$1
shift
py=python3
if [[ -x "$build/pyvenv/bin/python3" ]]; then py="$build/pyvenv/bin/python3"; fi
exec "$py" "$@"
