#!/usr/bin/env bash
# Builds llm8 and runs every test. Tests that need ../shared/data skip with a message when it
# is absent; CUDA tests skip with a message on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 1800
