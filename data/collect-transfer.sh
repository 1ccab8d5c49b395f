#!/usr/bin/env bash
# Regenerates the transfer build's collected samples (resumable: rerun to continue).
#   bash data/collect-transfer.sh       # from the repository root; ~1-2 h on 2 shared CPU cores
# Questions: every family of howhard.tasks, each question in a style drawn for it (seed 0);
# 32 samples per question, at most 48 new tokens (the pilot: a 32-token cap cut off 1 in 3
# samples and turned correct multi-step answers into failures, 0.189 -> 0.175 overall).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 VLLM_HOST_IP=127.0.0.1
$py -m howhard.tasks questions --build transfer --out data/questions
$py -m howhard collect --input data/questions/transfer.jsonl --out data/runs/transfer \
    --backend vllm --scorer howhard.tasks:TaskScorer --temperature 0.7 --max-tokens 48 \
    --samples 32 --concurrency 16 --no-progress
# Canonical answer + tokens per sample (small enough to commit; samples.jsonl is not).
$py -m howhard.tasks answers data/runs/transfer
# The general short-answer verifier against every family's own verifier, sample by sample.
$py -m howhard.tasks agree data/runs/transfer --out data/runs/transfer/agreement.json
