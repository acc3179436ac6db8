#!/usr/bin/env bash
# Builds llm8 and runs every test. Tests that need ../shared/data skip with a message when it
# is absent; CUDA tests skip with a message on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
BUILD_DIR=${BUILD_DIR:-build}
# The server tests drive llm8-server with the official `openai` Python package: a venv in the
# build folder (tests/server/run_python.sh uses it). Without PyPI the openai-client test skips
# with a message; the bad-input test needs only the standard library.
venv="$BUILD_DIR/pyvenv"
if ! "$venv/bin/python3" -c "import openai, httpx" 2>/dev/null; then
    if python3 -m venv "$venv" &&
        "$venv/bin/python3" -m pip install -q --disable-pip-version-check --timeout 30 \
            --retries 2 "openai>=1.0" "httpx>=0.23"; then
        echo "llm8: installed openai and httpx into $venv" >&2
    else
        echo "llm8: cannot install the Python package openai into $venv (is PyPI reachable?);" \
             "the test server_openai_client will be skipped" >&2
    fi
fi
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" --timeout 1800
