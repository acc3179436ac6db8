#!/usr/bin/env bash
# Builds llm8 and generates text with the embedded stories260K model (greedy, 64 tokens).
# Any arguments replace the defaults, e.g. scripts/run.sh -m model.gguf -p "Hello" -n 32
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
bash scripts/build.sh >&2
if (($#)); then
    exec "$BUILD_DIR/tools/cli/llm8-cli" "$@"
else
    exec "$BUILD_DIR/tools/cli/llm8-cli" -p "Once upon a time" -n 64 --temp 0
fi
