#!/usr/bin/env bash
# Line coverage of src/ by the test suite (gcovr), in build-cov/coverage.txt and .html.
set -euo pipefail
cd "$(dirname "$0")/.."
LLM8_COVERAGE=1 bash scripts/install-deps.sh
BUILD_DIR=build-cov bash scripts/build.sh -DLLM8_COVERAGE=ON -DCMAKE_BUILD_TYPE=Debug -DLLM8_CUDA=OFF
(cd build-cov && ctest -j "$(nproc)" --timeout 3600 || true)
gcovr --root . --filter 'src/' --exclude 'src/cuda/' --object-directory build-cov \
      --txt build-cov/coverage.txt --html build-cov/coverage.html --print-summary
