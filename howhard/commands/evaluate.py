"""``howhard evaluate``: the benchmark report on the held-out split, from collected data.

Reads the collected datasets (rewards and per-sample answers), the prompts' features and the
trained probes, and writes ``report.md``, ``report.json`` and PNG plots: expected success vs
average budget for uniform / online / offline / oracle best-of-k and self-consistency, routing
curves with APGR, allocation by predicted difficulty and the λ probe's calibration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

PROBE_TRAIN = "runs/probe-train"
"""Where a benchmark data folder keeps the λ probe's training build (``data/README.md``)."""

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate",
        help="quality-vs-compute report on the held-out split (markdown + plots)",
        description=__doc__,
    )
    parser.add_argument(
        "--data", type=Path, default=Path("data"), help="benchmark data folder (default: data)"
    )
    parser.add_argument(
        "--test", default="runs/test", help="test dataset, relative to --data (default: runs/test)"
    )
    parser.add_argument(
        "--heldout",
        default="runs/trainval",
        help="dataset holding the val split (metadata.split == 'val'), relative to --data",
    )
    parser.add_argument(
        "--probe-data",
        default=None,
        metavar="DATASET",
        help="the dataset the λ probe was trained on (train/val rows, with features), relative "
        "to --data: leave-group-out probes are trained on it without each group, as the shipped "
        "probe was trained on all of it (default: runs/probe-train if present, else --heldout)",
    )
    parser.add_argument(
        "--lambda-probe", default="probes/lambda", help="λ probe checkpoint, relative to --data"
    )
    parser.add_argument(
        "--preference-probe",
        default="probes/preference",
        help="routing preference probe, relative to --data (skipped if absent)",
    )
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument("--max-budget", type=int, default=32, help="largest per-question budget")
    parser.add_argument(
        "--strong-k", type=int, default=8, help="samples of the strong (self-consistency) router"
    )
    parser.add_argument("--bins", type=int, default=8, help="bins of the offline allocator")
    parser.add_argument(
        "--budget-step", type=float, default=0.25, help="spacing of the average-budget grid"
    )
    served = parser.add_argument_group(
        "served evaluation",
        "with --leave-group-out: replay the test questions through a Scheduler running the "
        "default adaptive policy (served = evaluated), once with probes that never saw the "
        "question's group and once in-distribution; writes served.md and served.json",
    )
    served.add_argument(
        "--leave-group-out",
        action="store_true",
        help="run the served evaluation (leave-group-out beside in-distribution) instead",
    )
    served.add_argument(
        "--group-column", default="family", help="request field or metadata key of the groups"
    )
    served.add_argument("--seeds", type=int, default=3, help="stream orders per budget")
    served.add_argument("--batch-size", type=int, default=32, help="requests per micro-batch")
    served.add_argument(
        "--budgets",
        default="1-16",
        help="average budgets: a range '1-16' or a list '2,4,8' (with --sequential, fractions "
        "too: '2,4,6.4,8')",
    )
    served.add_argument(
        "--unseen",
        default=None,
        metavar="DATASET",
        help="instead: serve this dataset (relative to --data, with features) with the shipped "
        "probe, all of it and the groups absent from --heldout; writes served-unseen.md/json",
    )
    served.add_argument(
        "--shift",
        default="",
        help="also the shift test: 'permuted,inverted' shipped-probe logits on every question",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="instead: the sequential report (stop-when-settled best-of-k and self-consistency, "
        "exact simulation on the logged samples, in-distribution and leave-family-out)",
    )
    parser.add_argument(
        "--replays", type=int, default=16, help="sequential: replays per simulated point"
    )
    parser.add_argument("--cap", type=int, default=32, help="sequential: most samples per question")
    parser.add_argument(
        "--value-paths",
        type=int,
        default=48,
        help="sequential: resampled vote paths per train question for the value model",
    )
    parser.add_argument(
        "--test-features",
        type=Path,
        default=None,
        help="sequential: the test set's features (default: TEST/features under --data)",
    )
    parser.add_argument(
        "--sc-ablation",
        action="store_true",
        help="sequential: also train and simulate the value rule without the probe (z = 0)",
    )
    parser.set_defaults(handler=run)


def _probe_data(args: argparse.Namespace) -> str:
    """The probe's training dataset: ``--probe-data``, else the data folder's probe-train build
    when it has one, else ``--heldout``."""
    if args.probe_data is not None:
        return str(args.probe_data)
    return PROBE_TRAIN if (args.data / PROBE_TRAIN / "requests.jsonl").exists() else args.heldout


def _counts(*datasets: Any) -> tuple[Any, Any]:
    """Each request's successes and samples, the datasets' rows one after the other."""
    pairs = [dataset.counts() for dataset in datasets]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def _features_path(data: Path, dataset: str) -> Path:
    """``howhard features --dataset DIR`` writes ``DIR/features.npy`` and ``DIR/features.json``."""
    return data / dataset / "features"


def run(args: argparse.Namespace) -> int:
    """Compute the report and write it to ``--out``; prints the markdown summary."""
    if args.leave_group_out:
        return run_served(args)
    from howhard.evaluation.data import load_split, read_jsonl
    from howhard.evaluation.render import write_report
    from howhard.evaluation.report import build_report, headline
    from howhard.tasks.answers import read_answers

    if args.sequential:
        return run_sequential(args)
    data: Path = args.data
    lambda_probe = data / args.lambda_probe
    preference = data / args.preference_probe
    preference_probe = preference if preference.exists() else None
    test = load_split(
        data / args.test,
        _features_path(data, args.test),
        lambda_probe,
        answers=read_answers,
        preference_probe=preference_probe,
    )
    val = load_split(
        data / args.heldout,
        _features_path(data, args.heldout),
        lambda_probe,
        answers=read_answers,
        split="val",
    )
    train_rows = [
        r
        for r in read_jsonl(data / args.heldout / "requests.jsonl")
        if (r.get("metadata") or {}).get("split") == "train"
    ]
    train_mean = float(np.mean([np.mean(r["rewards"]) for r in train_rows])) if train_rows else 0.5
    info = {
        "model": json.loads((data / args.test / "manifest.json").read_text()).get("model"),
        "test questions": f"{len(test.ids)} x {test.rewards.shape[1]} samples",
        "val questions": f"{len(val.ids)} x {val.rewards.shape[1]} samples",
        "train questions": f"{len(train_rows)}",
        "mean test λ": f"{test.success.mean():.3f}",
        "test questions with λ = 0": f"{(test.success == 0).mean():.0%}",
    }
    report = build_report(
        test,
        val,
        train_mean_lambda=train_mean,
        max_budget=args.max_budget,
        strong_k=args.strong_k,
        budget_step=args.budget_step,
        n_bins=args.bins,
        info=info,
    )
    paths = write_report(report, args.out, observed_lambda=test.success)
    h = headline(report)
    print(
        "evaluate: val-decile map (offline report, not a served policy) saves up to "
        f"{h['online_best_saving']:.0%} compute at matched success "
        f"(B={h['online_best_saving_at']:g}; oracle {h['oracle_best_saving']:.0%}); "
        f"captures {h['online_gain_share_1_16']:.0%} of the oracle's gain (mean over B=1..16); "
        f"routing APGR {h['apgr_learned']:.3f} (random {h['apgr_random']:.3f})"
    )
    print(f"evaluate: wrote {len(paths)} files to {args.out}")
    return 0


def run_sequential(args: argparse.Namespace) -> int:
    """``howhard evaluate --sequential``: fit the priors on train/val, simulate on the test
    split in-distribution and leave-family-out, write ``sequential.md`` and ``.json``."""
    import time

    from howhard.evaluation.data import load_split
    from howhard.evaluation.sequential import (
        crossfit_logits,
        family_logits,
        fit_transfer,
        fit_val_prior,
        probe_logits,
    )
    from howhard.evaluation.sequential_report import (
        best_of_k_section,
        rounds_section,
        self_consistency_section,
    )
    from howhard.evaluation.simulate import LoggedSamples
    from howhard.tasks.answers import read_answers
    from howhard.training.dataset import load_dataset
    from howhard.training.features import load_features
    from howhard.training.splits import column_values, splits_from_column

    started = time.monotonic()
    data: Path = args.data

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {line}", flush=True)

    lambda_probe = data / args.lambda_probe
    test_features = args.test_features or _features_path(data, args.test)
    test = load_split(data / args.test, test_features, lambda_probe, answers=read_answers)
    trainval = load_split(
        data / args.heldout,
        _features_path(data, args.heldout),
        lambda_probe,
        answers=read_answers,
    )
    splits = [
        str((r.get("metadata") or {}).get("split", "train"))
        for r in _rows(data / args.heldout / "requests.jsonl")
    ]
    val = np.asarray([s == "val" for s in splits])
    config = fit_val_prior(trainval.lambda_hat, trainval.rewards, val)
    m_tv = trainval.rewards.shape[1]
    passes = trainval.rewards.sum(axis=1)
    log(f"prior fitted on val: {config.fit!r}, z mean {config.z_mean:.3f}, var {config.z_var:.3f}")
    x_tv = load_features(_features_path(data, args.heldout)).aligned(trainval.ids)
    x_test = load_features(test_features).aligned(test.ids)
    # Leave-family-out probes learn from what the shipped probe learned from, less the family.
    probe_data = _probe_data(args)
    trained = load_dataset(data / probe_data)
    x_pd = load_features(_features_path(data, probe_data)).aligned(trained.ids)
    wins, counts = trained.counts()
    lofo = family_logits(
        x_pd,
        wins / counts,
        column_values(trained.rows, "family"),
        splits_from_column(trained.rows, "split"),
        [x_tv, x_test],
    )
    log(f"leave-family-out probes trained on {probe_data} ({len(trained.ids)} questions)")
    fams_tv, fams_test = np.asarray(trainval.families), np.asarray(test.families)
    z_oof, z_lofo = np.zeros(len(fams_tv)), np.zeros(len(fams_test))
    for family, (_, on_tv, on_test) in lofo.items():
        z_oof[fams_tv == family] = on_tv[fams_tv == family]
        z_lofo[fams_test == family] = on_test[fams_test == family]
    config = fit_transfer(config, z_oof, passes, m_tv - passes, trainval.families)
    log(f"transfer fit: strength weights {config.kappa_weights}")
    z_in = probe_logits(test.lambda_hat)
    # Families the probe never trained on are out of family for the shipped probe already.
    unseen = ~np.isin(fams_test, list(lofo))
    z_lofo[unseen] = z_in[unseen]
    name = "in-distribution" if not unseen.any() else f"shipped probe ({unseen.mean():.0%} unseen)"
    settings = {name: z_in, "leave-family-out": z_lofo}
    budgets = _average_budgets(args.budgets)
    lines = [
        "# Sequential best-of-k and self-consistency",
        "",
        f"Test set {args.test}: {len(test.ids)} questions x {test.rewards.shape[1]} logged "
        f"samples, {len(set(test.families))} families ({int(unseen.sum())} questions from "
        f"families the probe never saw); "
        f"prior fitted on {int(val.sum())} val questions; command: `howhard "
        f"{' '.join(sys.argv[1:])}`.",
        "",
    ]
    figures: dict[str, Any] = {"prior": config.model_dump(mode="json")}
    for setting, z in settings.items():
        logged = LoggedSamples(
            ids=test.ids, rewards=test.rewards, answers=test.answers, z=z, groups=test.families
        )
        section = best_of_k_section(
            logged,
            setting=setting,
            config=config,
            budgets=budgets,
            max_budget=args.cap,
            replays=args.replays,
            log=log,
        )
        lines += section.lines
        figures[f"best_of_k/{setting}"] = section.figures
    logged = LoggedSamples(
        ids=test.ids, rewards=test.rewards, answers=test.answers, z=z_in, groups=test.families
    )
    z_tv = np.where(
        np.asarray(splits) == "train",
        crossfit_logits(x_tv, trainval.success, splits),
        probe_logits(trainval.lambda_hat),
    )
    models = {"probe prior": _value_model(trainval, z_tv, splits, args.value_paths, log)}
    if args.sc_ablation:
        zero = np.zeros(len(z_tv))
        models["no prior"] = _value_model(trainval, zero, splits, args.value_paths, log)
    section = self_consistency_section(logged, value_models=models, replays=args.replays)
    lines += section.lines
    figures["self_consistency"] = section.figures
    log("self-consistency done")
    section = rounds_section(logged, config=config, replays=max(args.replays // 2, 2))
    lines += section.lines
    figures["rounds"] = section.figures
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sequential.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / "sequential.json").write_text(
        json.dumps(figures, indent=1, default=float), encoding="utf-8"
    )
    print("\n".join(lines))
    log(f"wrote {args.out / 'sequential.md'} and sequential.json")
    return 0


def _value_model(data: Any, z: Any, splits: list[str], paths: int, log: Any) -> Any:
    """The self-consistency value model fitted on the train rows, early-stopped on val."""
    from howhard.training.vote_value import fit_vote_value, training_states

    split = np.asarray(splits)
    sets = []
    for name, n_paths, seed in (("train", paths, 0), ("val", max(8, paths // 2), 1)):
        rows = np.flatnonzero(split == name)
        answers = [data.answers[i] for i in rows]
        sets.append(training_states(answers, data.rewards[rows], z[rows], paths=n_paths, seed=seed))
    model, loss = fit_vote_value(sets[0], sets[1])
    log(f"value model: val loss {loss:.4f} ({len(sets[0][0])} training states)")
    return model


def _rows(path: Path) -> list[dict[str, Any]]:
    from howhard.evaluation.data import read_jsonl

    return read_jsonl(path)


def _budgets(text: str) -> list[int]:
    """Whole budgets for one-shot allocation: a range ``1-16`` or a list ``2,4,8``."""
    from howhard.errors import ConfigError

    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-"))
            return list(range(lo, hi + 1))
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"--budgets {text!r}: give whole numbers, a range '1-16' or a list '2,4,8'"
        ) from None


def _average_budgets(text: str) -> list[float]:
    """Average budgets for sequential procedures: a range ``2-16`` or a list that may hold
    fractions (``2,4,6.4,8``), since a stream's average spend need not be whole."""
    from howhard.errors import ConfigError

    try:
        out = [float(x) for x in text.split(",")]
    except ValueError:
        # Not a list of numbers: a range, whose parser names what it wants.
        out = [float(b) for b in _budgets(text)] if "-" in text else []
    if not out or not all(0.0 < b < float("inf") for b in out):
        raise ConfigError(
            f"--budgets {text!r}: give positive numbers, a range '2-16' or a list '2,4,6.4,8'"
        )
    return out


def run_served(args: argparse.Namespace) -> int:
    """Served = evaluated, leave-group-out beside in-distribution (see ``commands._served``)."""
    import sys

    from howhard.commands._served import (
        ServedStream,
        quality_from_counts,
        restrict,
        run_streams,
        summarise,
    )
    from howhard.errors import ConfigError
    from howhard.probes import BetaMarginalsMap, SavedProbe, load_checkpoint
    from howhard.training.crossfit import cross_fitted_logits
    from howhard.training.dataset import load_dataset
    from howhard.training.features import load_features
    from howhard.training.splits import column_values, splits_from_column
    from howhard.training.train import TrainConfig

    data: Path = args.data
    checkpoint = load_checkpoint(data / args.lambda_probe)
    marginals_map = BetaMarginalsMap.from_checkpoint_config(checkpoint.config)
    if marginals_map is None:
        raise ConfigError(
            f"{data / args.lambda_probe} has no marginals_map; fit one with "
            "scripts/fit_marginals_map.py"
        )

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    budgets = _budgets(args.budgets)
    probe_data = _probe_data(args)
    if args.unseen:
        # Traffic the shipped probe never saw: every question of another build, then the ones
        # whose group never occurs in the probe's training data.
        seen = set(column_values(load_dataset(data / probe_data).rows, args.group_column))
        unseen = load_dataset(data / args.unseen)
        x_new = load_features(_features_path(data, args.unseen)).aligned(unseen.ids)
        probe = SavedProbe(checkpoint)
        new_groups = column_values(unseen.rows, args.group_column)
        stream = ServedStream(
            f"unseen build ({args.unseen}: {len(unseen.ids)} questions, "
            f"{len(set(new_groups))} {args.group_column} values; the shipped probe)",
            tuple(unseen.prompts),
            *unseen.counts(),
            probe.logits(x_new),
            probe.standardise(x_new),
        )
        (full,) = run_streams(
            [stream],
            marginals_map,
            budgets=budgets,
            seeds=args.seeds,
            batch_size=args.batch_size,
            log=log,
        )
        quality = quality_from_counts(stream.successes, stream.samples, 16)
        novel = np.flatnonzero([g not in seen for g in new_groups])
        subset = restrict(
            full,
            novel,
            f"unseen build, only the {len(novel)} questions of the "
            f"{len({new_groups[i] for i in novel})} {args.group_column} values absent from "
            f"{probe_data} (served in the same stream)",
        )
        summaries = {
            full.stream: summarise(full, np.diff(quality, axis=1)),
            subset.stream: summarise(subset, None),
        }
        command = (
            f"howhard evaluate --data {data} --out {args.out} --group-column {args.group_column} "
            f"--leave-group-out --unseen {args.unseen} --seeds {args.seeds} "
            f"--batch-size {args.batch_size} --budgets {args.budgets}"
        )
        return _write_served(args.out, "served-unseen", summaries, command, args)
    # Leave-group-out probes learn from what the shipped probe learned from, less the group.
    train, test = load_dataset(data / probe_data), load_dataset(data / args.test)
    x_train = load_features(_features_path(data, probe_data)).aligned(train.ids)
    x_test = load_features(_features_path(data, args.test)).aligned(test.ids)
    x = np.concatenate([x_train, x_test])
    successes, samples = _counts(train, test)
    groups = column_values(train.rows, args.group_column) + column_values(
        test.rows, args.group_column
    )
    splits = splits_from_column(train.rows, "split") + ["test"] * len(test.ids)
    recipe = {
        k: v
        for k, v in dict(checkpoint.config.get("train") or {}).items()
        if k in TrainConfig.model_fields
    }

    lofo_logits, lofo_features = cross_fitted_logits(
        x,
        successes / samples,
        groups=groups,
        assignments=splits,
        config=TrainConfig(**recipe),
        log=log,
    )
    shipped = SavedProbe(checkpoint)
    rows = np.arange(len(train.ids), len(x))  # the test questions: never used for a choice
    prompts = tuple(train.prompts + test.prompts)
    streams = [
        ServedStream(
            f"leave-{args.group_column}-out (test, each {args.group_column} unseen by its probe)",
            tuple(prompts[i] for i in rows),
            successes[rows],
            samples[rows],
            lofo_logits[rows],
            lofo_features[rows],
        ),
        ServedStream(
            "in-distribution (test, the shipped probe)",
            tuple(prompts[i] for i in rows),
            successes[rows],
            samples[rows],
            shipped.logits(x[rows]),
            shipped.standardise(x[rows]),
        ),
    ]
    results = run_streams(
        streams,
        marginals_map,
        budgets=budgets,
        seeds=args.seeds,
        batch_size=args.batch_size,
        log=log,
    )
    true_marginals = np.diff(quality_from_counts(successes[rows], samples[rows], 16), axis=1)
    summaries = {r.stream: summarise(r, true_marginals) for r in results}
    if args.shift:
        # The shift test: the shipped probe made uninformative or anti-correlated, on every
        # question of --heldout (train and val) and test, scored after a warm-up of 500 requests.
        if probe_data != args.heldout:
            held = load_dataset(data / args.heldout)
            x = np.concatenate(
                [load_features(_features_path(data, args.heldout)).aligned(held.ids), x_test]
            )
            successes, samples = _counts(held, test)
            prompts = tuple(held.prompts + test.prompts)
        z = shipped.logits(x)
        rng = np.random.default_rng(5)
        shifted = {"permuted": rng.permutation(z), "inverted": -z}
        shift_streams = [
            ServedStream(
                f"shift: shipped probe {kind} (all {len(x)} questions, scored after 500)",
                prompts,
                successes,
                samples,
                shifted[kind],
                shipped.standardise(x),
                after=500,
            )
            for kind in args.shift.split(",")
        ]
        for r in run_streams(
            shift_streams,
            marginals_map,
            budgets=budgets,
            seeds=args.seeds,
            batch_size=args.batch_size,
            log=log,
        ):
            summaries[r.stream] = summarise(r, None)  # each seed scores its own subset
    command = (
        f"howhard evaluate --data {data} --out {args.out} --group-column {args.group_column} "
        f"--leave-group-out --probe-data {probe_data} --seeds {args.seeds} "
        f"--batch-size {args.batch_size} --budgets {args.budgets}"
        + (f" --shift {args.shift}" if args.shift else "")
    )
    return _write_served(args.out, "served", summaries, command, args)


def _write_served(
    out: Path, name: str, summaries: dict[str, Any], command: str, args: argparse.Namespace
) -> int:
    from howhard.commands._served import markdown

    text = markdown(summaries, command, args.seeds, args.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text + "\n", encoding="utf-8")
    (out / f"{name}.json").write_text(
        json.dumps({"command": command, "streams": summaries}, indent=1) + "\n",
        encoding="utf-8",
    )
    print(text)
    return 0
