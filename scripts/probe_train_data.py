"""More training data for the λ probe, sampled on a GPU: ``data/runs/probe-train``.

The probe learns from noisy labels (16 samples per question) on 900 questions, and both limit
how well it ranks questions (`data/README.md`, "The probe-train build"). This script gives it
64 samples for every train/val question and 4,621 new questions of the families whose
generators still have unseen questions, from the same model and sampling parameters:

    python scripts/probe_train_data.py job --work WORK        # prompts -> token ids (CPU)
    python3 scripts/probe_train_data.py sample --work WORK --gguf FILE   # needs a GPU
    python scripts/probe_train_data.py build --work WORK --out data/runs/probe-train
    .venv/bin/python -m howhard features --dataset data/runs/probe-train --layer 15

``job`` renders every prompt exactly as the backends do (``howhard.backends._prompts``) and
picks the new questions: generator seeds 7 and 11, none whose prompt is in train, val or test.
``sample`` needs only torch, transformers and gguf (it never imports howhard, so it runs on a
bare GPU machine): it dequantises the embedded model's GGUF to bf16 as ``howhard.models`` does
and draws samples with transformers at T = 0.7, top-p 1, no top-k, at most 32 new tokens,
stopping at EOS — the collection's parameters (`data/runs/trainval/manifest.json`). The
committed build's rounds were drawn in two GPU jobs with this sampling code (rounds 0 and 1,
then 2 to 4; GPU sampling is not bit-reproducible): 5.6 min of sampling for 533k samples on one
H200. ``build`` decodes and scores every sample with its family's verifier (``howhard.tasks``)
and keeps the first 64 samples of each question in collection order (a train/val question: its
16 vLLM samples, then the GPU ones).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 64  # kept per question by `build`
MAX_TOKENS = 32
PER_FAMILY = 500  # new questions per family and generator pass
# (set, samples, torch seed) in the order they were drawn; `build` keeps the first 64 per question.
ROUNDS = (("seen", 64, 2), ("new", 32, 1), ("seen", 64, 3), ("new", 64, 4), ("more", 64, 5))
ROOMY = ("comparison", "count_items", "word_problem", "subtraction")  # >1,500 distinct each


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _questions(seed: int) -> list[dict[str, Any]]:
    from howhard.tasks.suite import build_splits, write_jsonl

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "q.jsonl"
        write_jsonl(build_splits((12000, 0, 0), seed=seed)["train"], path, split="train")
        return _read_jsonl(path)


def select(data: Path) -> dict[str, list[dict[str, Any]]]:
    """The build's questions: ``seen`` (train/val rows with their collected rewards), ``new``
    (every family, seed 7) and ``more`` (the roomy families, seeds 7 then 11)."""
    seen_rows = _read_jsonl(data / "runs/trainval/requests.jsonl")
    taken = {
        row["prompt"]
        for split in ("train", "val", "test")
        for row in _read_jsonl(data / f"questions/{split}.jsonl")
    }
    sets: dict[str, list[dict[str, Any]]] = {"seen": seen_rows, "new": [], "more": []}
    generated: dict[int, list[dict[str, Any]]] = {}  # each seed's 12,000 questions, built once
    for name, seeds, families in (("new", (7,), None), ("more", (7, 11), ROOMY)):
        count: dict[str, int] = {}
        for seed in seeds:
            if seed not in generated:
                generated[seed] = _questions(seed)
            for q in generated[seed]:
                family = q["metadata"]["family"]
                if families is not None and family not in families:
                    continue
                if q["prompt"] in taken or count.get(family, 0) >= PER_FAMILY:
                    continue
                taken.add(q["prompt"])
                count[family] = count.get(family, 0) + 1
                q["metadata"]["source"] = f"generator seed {seed}"
                sets[name].append(q)
        print(f"{name}: {len(sets[name])} questions {count}")
    return sets


def job(work: Path) -> None:
    """Token ids of every prompt to sample, and the questions they belong to."""
    import transformers

    from howhard.backends._prompts import prompt_ids
    from howhard.models import default_model_path

    tokenizer = transformers.AutoTokenizer.from_pretrained(default_model_path())
    sets = select(ROOT / "data")
    work.mkdir(parents=True, exist_ok=True)
    payload = {
        "pad": int(tokenizer.pad_token_id),
        "eos": int(tokenizer.eos_token_id),
        "sets": {
            name: {
                "questions": rows,
                "ids": [prompt_ids(tokenizer, r["prompt"], chat=True) for r in rows],
            }
            for name, rows in sets.items()
        },
    }
    (work / "job.json").write_text(json.dumps(payload), encoding="utf-8")


def sample(work: Path, gguf: Path, sequences: int) -> None:
    """Draw every round of ``ROUNDS`` on the GPU; token ids go to ``WORK/round-K.npz``."""
    import torch
    import transformers

    payload = json.loads((work / "job.json").read_text(encoding="utf-8"))
    pad, eos = payload["pad"], payload["eos"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.time()
    quantization = transformers.GgufConfig(gguf_file=gguf.name, dequantize=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        dtype=torch.bfloat16,
        quantization_config=quantization,
    )
    model = model.to(device).eval()
    print(f"model on {device} in {time.time() - started:.0f} s", flush=True)
    for k, (name, n, seed) in enumerate(ROUNDS):
        prompts = payload["sets"][name]["ids"]
        config = transformers.GenerationConfig(
            do_sample=True,
            temperature=0.7,
            top_p=1.0,
            top_k=0,
            max_new_tokens=MAX_TOKENS,
            num_return_sequences=n,
            pad_token_id=pad,
            eos_token_id=eos,
        )
        torch.manual_seed(seed)
        tokens = np.full((len(prompts) * n, MAX_TOKENS), pad, dtype=np.uint16)
        per = max(1, sequences // n)
        with torch.inference_mode():
            for start in range(0, len(prompts), per):
                rows = prompts[start : start + per]
                width = max(len(r) for r in rows)
                ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
                mask = torch.tensor(
                    [[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device
                )
                out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
                new = out[:, width:].cpu().numpy()
                tokens[start * n : start * n + new.shape[0], : new.shape[1]] = new
        np.savez_compressed(work / f"round-{k}.npz", tokens=tokens, n=n, seed=seed)
        print(f"round {k}: {name} x {n} done at {time.time() - started:.0f} s", flush=True)


def build(work: Path, out: Path) -> None:
    """Decode, score and keep the first ``SAMPLES`` of each question: the dataset folder."""
    import transformers

    from howhard.models import default_model_path
    from howhard.tasks.suite import FAMILIES

    verifiers = {f.name: f for f in FAMILIES}
    tokenizer = transformers.AutoTokenizer.from_pretrained(default_model_path())
    payload = json.loads((work / "job.json").read_text(encoding="utf-8"))
    eos = payload["eos"]
    rewards: dict[str, list[list[float]]] = {}
    tokens_used: dict[str, list[int]] = {}
    for spec in payload["sets"].values():
        for q in spec["questions"]:
            # a train/val question starts from its collected vLLM samples
            rewards[q["id"]] = list(map(float, q.get("rewards", [])))
            tokens_used[q["id"]] = []
    for k, (name, n, _) in enumerate(ROUNDS):
        questions = payload["sets"][name]["questions"]
        tokens = np.load(work / f"round-{k}.npz")["tokens"]
        for i, q in enumerate(questions):
            verifier = verifiers[q["metadata"]["family"]]
            for row in tokens[i * n : (i + 1) * n]:
                if len(rewards[q["id"]]) >= SAMPLES:
                    break
                ids = row.tolist()
                ids = ids[: ids.index(eos) + 1] if eos in ids else ids
                text = tokenizer.decode(ids, skip_special_tokens=True)
                rewards[q["id"]].append(float(verifier.verify(text, q["reference"], q["prompt"])))
                tokens_used[q["id"]].append(len(ids))
    out.mkdir(parents=True, exist_ok=True)
    with (out / "requests.jsonl").open("w", encoding="utf-8") as handle:
        for name, spec in payload["sets"].items():
            for q in spec["questions"]:
                r = rewards[q["id"]]
                if len(r) != SAMPLES:
                    raise SystemExit(f"{q['id']} has {len(r)} samples, expected {SAMPLES}")
                metadata = {**q["metadata"], "set": name}
                row = {
                    "id": q["id"],
                    "prompt": q["prompt"],
                    "reference": q["reference"],
                    "tenant": "default",
                    "metadata": metadata,
                    "n_samples": SAMPLES,
                    "rewards": r,
                    "mean_reward": float(np.mean(r)),
                    "lambda": float(np.mean(r)),
                    "gpu_completion_tokens": int(sum(tokens_used[q["id"]])),
                }
                handle.write(json.dumps(row) + "\n")
    manifest = {
        "format": "howhard.dataset/1",
        "model": "SmolLM2-135M-Instruct-bf16-v1",
        "backend": "vLLM (the train/val questions' first 16 samples, data/runs/trainval) "
        "then transformers generate on a GPU (scripts/probe_train_data.py sample)",
        "scorer": "howhard.tasks:TaskScorer",
        "samples": SAMPLES,
        "params": {"max_tokens": MAX_TOKENS, "stop": [], "temperature": 0.7, "top_p": 1.0},
        "rounds": [{"set": s, "samples": n, "torch_seed": seed} for s, n, seed in ROUNDS],
        "runs": [{"command": ["python", "scripts/probe_train_data.py", *sys.argv[1:]]}],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    total = sum(len(s["questions"]) for s in payload["sets"].values())
    print(f"{out}: {total} questions x {SAMPLES} samples")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for step in ("job", "sample", "build"):
        p = sub.add_parser(step)
        p.add_argument("--work", type=Path, required=True, help="folder for the job and samples")
        if step == "sample":
            p.add_argument("--gguf", type=Path, required=True, help="the model's Q4_1 GGUF")
            p.add_argument("--sequences", type=int, default=4096, help="sequences per batch")
        if step == "build":
            p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    args = parser.parse_args()
    if args.step != "sample":
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.step == "job":
        job(args.work)
    elif args.step == "sample":
        sample(args.work, args.gguf, args.sequences)
    else:
        build(args.work, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
