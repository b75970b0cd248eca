"""An ensemble's report: the examples the ensemble and each member are scored on, and the model card."""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.config import load_run_config
from tunelab.errors import TunelabError
from tunelab.metrics import scalars
from tunelab.registry import TASKS, load_object


def report_examples(predictor, described: list[dict], from_folds, data) -> tuple[list[dict], str]:
    """The examples every member is scored on: --data FILE, the cross-validation's test split, or the members' own
    test split (which must be the same split for all)."""
    if data is not None:
        return predictor.read(Path(data)), str(data)
    if from_folds:
        test = Path(from_folds) / "data" / "test.jsonl"
        rows = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines() if line.strip()]
        if rows:
            return rows, f"the test split of {from_folds}"
    else:
        family = TASKS[described[0]["task"]]
        splits = [load_object(family.examples)(load_run_config(m["path"] / "config.yaml")).test for m in described]
        key = lambda rows: [(r["text"], r.get("text_pair"), json.dumps(r["label"])) for r in rows]  # noqa: E731
        first = key(splits[0])
        for m, rows in zip(described[1:], splits[1:]):
            if key(rows) != first:
                raise TunelabError(
                    f"{m['path']} and {described[0]['path']} were tested on different splits, so no split is held "
                    "out from all of them. Give a labelled file none of them trained on: --data FILE."
                )
        if first:
            return splits[0], "the members' test split"
    raise TunelabError("The members have no test split to compare them on: give a labelled file with --data FILE.")


def card(path: Path, info: dict, report: dict) -> str:
    names = [n for n in scalars(report["ensemble"]) if n != "threshold"]
    lines = [f"# {info['task']} ensemble of {len(report['members'])} runs ({report['method']})", "",
             f"The members' predictions combined: {_METHOD_WORDS[report['method']]}. Scored on {report['on']} "
             f"({report['n']} examples):", "",
             "| | weight | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names),
             "| **ensemble** | | " + " | ".join(f"**{report['ensemble'][n]:.4f}**" for n in names) + " |"]  # fmt: skip
    for m in report["members"]:
        cells = " | ".join(f"{m['metrics'][n]:.4f}" for n in names)
        lines.append(f"| {m['path']} | {m['weight']:.3f} | {cells} |")
    lines += ["", f"Use: `tunelab predict {path} \"some text\"`, `tunelab eval {path} --data FILE`, "
              f"`tunelab serve {path}`. Each member is loaded from its own run (run.json lists them by path and "
              "model hash); there is no single model to export.", ""]  # fmt: skip
    return "\n".join(lines)


_METHOD_WORDS = {
    "mean": "the mean of their probabilities (of their values, for regression)",
    "weighted": "their probabilities averaged with weights proportional to each member's validation metric",
    "vote": "the majority label (per label, for multilabel), ties broken by the mean probability",
}
