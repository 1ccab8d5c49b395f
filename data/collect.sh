#!/usr/bin/env bash
# Regenerates the benchmark's collected samples (resumable: rerun to continue an interrupted run).
#   bash data/collect.sh            # from the repository root; ~35 min on 2 CPU cores
# Train and val share one dataset (their split is metadata.split); test has its own, with 32
# samples per question. Questions: `python -m howhard.tasks questions --out data/questions`
# (seed 0, 900/300/300).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 VLLM_HOST_IP=127.0.0.1
common=(--backend vllm --scorer howhard.tasks:TaskScorer --temperature 0.7 --max-tokens 32
        --concurrency 16 --no-progress)
$py -m howhard collect --input data/questions/train.jsonl --out data/runs/trainval --samples 16 "${common[@]}"
$py -m howhard collect --input data/questions/val.jsonl --out data/runs/trainval --samples 16 "${common[@]}"
$py -m howhard collect --input data/questions/test.jsonl --out data/runs/test --samples 32 "${common[@]}"
