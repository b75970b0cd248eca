"""tune: what a hyper-parameter search buys over the shipped recipe, and what pruning would save.

    python benchmarks/tune.py             # TREC with the frozen recipe: 16 trials (~20 min on a 2-core Zen 3)
    python benchmarks/tune.py --smoke --model DIR --limit 96 --max-steps 4 --trials 3   # the smoke test's run

One invocation, in one process, in a scratch directory:
  default   `tunelab train recipes/classify_trec_frozen.yaml` (validated every --eval-every steps, like the trials)
  study     `tunelab tune` of the same recipe with a seeded random sampler and no pruner, over
            optim.lr, method.unfreeze_top_layers, train.epochs and optim.weight_decay; every intermediate value kept
  replay    the median pruner (tunelab's default: median of earlier trials at the same validation, after 4 trials)
            replayed on those logs in trial order with Optuna's own MedianPruner: the optimizer steps it would have
            saved, and whether the best trial survives
Prints the best trial's validation and test f1_macro next to the default's and appends a row to RESULTS.md (not with
--smoke). Validation picks the best trial; the test split is read only to report it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, cpu_line, out_dir, run_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "classify_trec_frozen.yaml"
SPACE = {
    "optim.lr": {"float": [1.0e-4, 3.0e-3], "log": True},
    "method.unfreeze_top_layers": {"int": [0, 4]},  # --max-layers caps it (the smoke test's model has 2)
    "train.epochs": {"int": [2, 4]},
    "optim.weight_decay": {"float": [0.0, 0.1]},
}


def recipe(args, out: Path) -> dict:
    import yaml

    raw = yaml.safe_load(RECIPE.read_text())
    raw.setdefault("train", {}).update({"eval_every": args.eval_every})
    if args.model:
        raw["model"]["name"] = args.model
    if args.limit:
        raw["data"]["limit"] = args.limit
    if args.max_steps:
        raw["train"]["max_steps"] = args.max_steps
    raw["train"]["output_dir"] = str(out / "default")
    return raw


def replay_median_pruner(study_dir: Path, trials: list[dict]) -> dict:
    """The median pruner's decisions on a study that ran without one: each trial, in order, reports its logged values
    to an in-memory study with tunelab's MedianPruner; a pruned trial's later values never happened."""
    from tunelab.search.study import pruner_for, quiet_optuna

    optuna = quiet_optuna()
    replay = optuna.create_study(direction="maximize", pruner=pruner_for("median"))
    saved = total = 0
    pruned = []
    for t in trials:
        steps_at = validation_steps(study_dir / "trials" / f"{t['number']:04d}")
        total += t["steps"]
        trial = replay.ask()
        for k, value in sorted(t["intermediate"].items()):
            trial.report(value, k)
            if trial.should_prune():
                replay.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned.append(t["number"])
                saved += t["steps"] - steps_at[k - 1]
                break
        else:
            replay.tell(trial, t["value"])
    best = max(trials, key=lambda t: t["value"])
    return {"pruned": pruned, "steps_saved": saved, "steps_total": total, "best_survives": best["number"] not in pruned}


def validation_steps(run: Path) -> list[int]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r["step"] for r in records if any(k.startswith("val_") for k in r)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="seeds the random sampler")
    p.add_argument("--eval-every", type=int, default=45, help="steps between validations (default and trials)")
    p.add_argument("--model", default=None, help="another encoder (the smoke test's tiny one)")
    p.add_argument("--max-layers", type=int, default=4, help="the most top layers a trial may unfreeze")
    p.add_argument("--limit", type=int, default=None, help="train on the first N examples only (smoke)")
    p.add_argument("--max-steps", type=int, default=None, help="cap every run's steps (smoke)")
    p.add_argument("--smoke", action="store_true", help="never writes RESULTS.md")
    p.add_argument("--out", type=Path, default=None, help="where results.json goes (default benchmarks/out/tune-*)")
    p.add_argument("--note", default="")
    args = p.parse_args()

    import yaml

    import tunelab

    info = run_info("tune", args, space=SPACE, trials=args.trials, eval_every=args.eval_every)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = recipe(args, tmp)
        t0 = time.perf_counter()
        default = tunelab.train(base, show_progress=False)
        info["default"] = {"validation": default.metrics["validation"]["f1_macro"],
                           "test": default.metrics["test"]["f1_macro"], "steps": default.metrics["steps"],
                           "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        print(f"default: validation f1_macro {info['default']['validation']:.4f}, test {info['default']['test']:.4f}")

        searched = dict(base, train={**base["train"], "output_dir": None})
        space = SPACE | {"method.unfreeze_top_layers": {"int": [0, args.max_layers]}}
        searched["search"] = {"trials": args.trials, "sampler": "random", "seed": args.seed, "pruner": "none",
                              "keep": "best", "space": space}  # fmt: skip
        path = tmp / "trec_search.yaml"
        path.write_text(yaml.safe_dump(searched, sort_keys=False))
        t0 = time.perf_counter()
        study = tunelab.tune(path, study_dir=tmp / "study", show_progress=False)
        seconds = time.perf_counter() - t0
        from tunelab.search.study import quiet_optuna, storage_for  # the study read back from its journal

        optuna = quiet_optuna()
        stored = optuna.load_study(study_name="study", storage=storage_for(tmp / "study", None))
        run_json = lambda t: json.loads((tmp / "study" / "trials" / f"{t.number:04d}" / "run.json").read_text())  # noqa: E731
        trials = [{"number": t.number, "value": t.value, "params": t.params, "intermediate": t.intermediate_values,
                   "steps": run_json(t)["steps"]}
                  for t in stored.get_trials() if t.state.name == "COMPLETE"]  # fmt: skip
        best_row = next(r for r in study.rows if r["number"] == study.best_number)
        info["study"] = {"best_number": study.best_number, "best_params": study.best_params,
                         "validation": study.best_value, "test": best_row["test_value"], "seconds": round(seconds, 1),
                         "rows": study.rows, "trials": trials}  # fmt: skip
        info["replay"] = replay_median_pruner(tmp / "study", trials)
        values = sorted(t["value"] for t in trials)
        info["study"]["median_trial_validation"] = values[len(values) // 2]
        info["study"]["beat_default"] = sum(v > info["default"]["validation"] for v in values)

    s, r = info["study"], info["replay"]
    print(f"CPU: {cpu_line(info['machine'])}")
    print(f"best trial {s['best_number']} ({json.dumps(s['best_params'])}): validation f1_macro "
          f"{s['validation']:.4f}, test {s['test']:.4f}; {s['beat_default']} of {len(trials)} trials beat the "
          "default's validation")  # fmt: skip
    share = r["steps_saved"] / max(r["steps_total"], 1)
    print(f"median pruner replay: prunes trials {r['pruned']}, saves {r['steps_saved']} of {r['steps_total']} "
          f"steps ({share:.0%}); best trial survives: {r['best_survives']}")  # fmt: skip
    out = out_dir(args, "tune")
    (out / "results.json").write_text(json.dumps(info, indent=2, default=str))
    if not args.smoke:
        append_results(info)


def append_results(info: dict) -> None:
    m, s, d, r = info["machine"], info["study"], info["default"], info["replay"]
    lines = [
        f"\n### tune — {info['date']} — {cpu_line(m)}, torch {m['torch']}, {m['threads']} threads, load avg "
        f"{m['load_avg_at_start']:.1f} at start{' — ' + info['note'] if info['note'] else ''}\n",
        f"`{' '.join(info['argv']) or '(defaults)'}`; TREC, recipes/classify_trec_frozen.yaml validated every "
        f"{info['eval_every']} steps; {info['trials']}-trial random search, no pruner, over "
        f"{', '.join(info['space'])}; fp32\n",
        "| arm | validation f1_macro | test f1_macro | steps | seconds |",
        "|---|---|---|---|---|",
        f"| shipped recipe | {d['validation']:.4f} | {d['test']:.4f} | {d['steps']} | {d['seconds']} |",
        f"| best of {info['trials']} trials (trial {s['best_number']}) | {s['validation']:.4f} | {s['test']:.4f} | "
        f"- | {s['seconds']} (whole study) |",
        f"\nbest parameters {json.dumps(s['best_params'])}; median trial's validation "
        f"{s['median_trial_validation']:.4f}; "
        f"{s['beat_default']} of {info['trials']} trials beat the default's validation. Median pruner replayed on the "
        f"logs: prunes {len(r['pruned'])} trials, saves {r['steps_saved']} of {r['steps_total']} steps "
        f"({r['steps_saved'] / max(r['steps_total'], 1):.0%}), best trial survives: {r['best_survives']}",
    ]  # fmt: skip
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
