#!/usr/bin/env bash
# From collected samples to the report: answers, routing pair, features, probes, evaluation.
#   bash data/pipeline.sh            # after data/collect.sh; from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 VLLM_HOST_IP=127.0.0.1
# Canonical answer + tokens per sample (what self-consistency votes on), small enough to commit.
$py -m howhard.tasks answers data/runs/trainval data/runs/test
# Strong routing procedure: self-consistency over 8 samples (8 units), exact from the samples.
$py -m howhard.tasks vote data/runs/trainval --k 8 --out data/runs/trainval-sc8
# Last-token hidden state of every prompt at layer 15 of 30 (SmolLM2-135M-Instruct, float16);
# layer 15 was chosen over the last layer on val (λ probe CE 0.474 vs 0.491).
$py -m howhard features --dataset data/runs/trainval --layer 15 --no-progress
$py -m howhard features --dataset data/runs/test --layer 15 --no-progress
# The probe-train build: every train/val question with 64 samples and 4,621 new questions of
# the same families (64 samples each), sampled on a GPU (see data/README.md); then its features.
#   python scripts/probe_train_data.py job --work WORK
#   python3 scripts/probe_train_data.py sample --work WORK --gguf FILE     # on a GPU machine
#   python scripts/probe_train_data.py build --work WORK --out data/runs/probe-train
$py -m howhard features --dataset data/runs/probe-train --layer 15 --no-progress
# λ probe: trained on the build's train rows, early-stopped and temperature-calibrated on val.
$py -m howhard train --dataset data/runs/probe-train --out data/probes/lambda --head lambda \
    --split-column split --calibration temperature --max-budget 16 --quiet
# Its marginals map (probe logit -> served marginals), fitted on cross-fitted logits: each
# family scored by a probe trained without it (13 probes, seconds to a minute each).
$py scripts/fit_marginals_map.py --checkpoint data/probes/lambda --dataset data/runs/probe-train
# Routing preference probe P(strong > weak), same split.
$py -m howhard train --dataset data/runs/trainval-sc8 --weak data/runs/trainval \
    --features data/runs/trainval/features --out data/probes/preference --head preference \
    --split-column split --quiet
# The report on the test split (never used for any choice above).
$py -m howhard evaluate --data data --out results
# Served = evaluated: the default policy through the scheduler, leave-family-out beside
# in-distribution, plus the shift test (results/served.md).
$py -m howhard evaluate --data data --out results --leave-group-out --group-column family \
    --seeds 3 --budgets 1-16 --shift permuted,inverted
# ... and on the transfer build, which the probe never saw (results/served-unseen.md).
$py -m howhard features --dataset data/runs/transfer --layer 15 --no-progress
$py -m howhard evaluate --data data --out results --leave-group-out --group-column family \
    --unseen runs/transfer --seeds 3 --budgets 1-16
# Ship the λ probe with the package (howhard demo serves it).
$py -m howhard.tasks ship data/probes/lambda howhard/assets/lambda-probe
