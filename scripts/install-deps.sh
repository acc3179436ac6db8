#!/usr/bin/env bash
# Installs the Debian 12 packages llm8 builds with, only those missing. Safe to re-run.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libopenblas-dev libpcre2-dev
      nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
      python3-venv)
if [[ "${LLM8_COVERAGE:-0}" == 1 ]]; then pkgs+=(gcovr); fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "llm8: installing ${missing[*]}" >&2
    SUDO=""
    if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
