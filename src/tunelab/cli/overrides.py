"""The one place where command-line flags become recipe overrides (`train` and `doctor` share it)."""

from __future__ import annotations

from pathlib import Path

# the recipe field each flag sets, by the command's parameter name (`--train` is the parameter train_file)
FIELDS = {
    "task": "task",
    "model": "model.name",
    "train_file": "data.train",
    "validation": "data.validation",
    "test": "data.test",
    "dataset": "data.dataset",
    "text_column": "data.text_column",
    "label_column": "data.label_column",
    "source_column": "data.source_column",
    "target_column": "data.target_column",
    "max_length": "data.max_length",
    "method": "method.name",
    "epochs": "train.epochs",
    "max_steps": "train.max_steps",
    "folds": "train.folds",
    "output_dir": "train.output_dir",
    "ray_workers": "distributed.ray.workers",
}


def recipe_overrides(set_: list[str], **flags) -> dict:
    """{recipe field: value} of the flags given (a flag left out is None: the recipe's value stays), then every
    `--set key=value`, which wins. Paths become strings, as a recipe file would hold them."""
    from tunelab.config import parse_set

    overrides = {FIELDS[k]: str(v) if isinstance(v, Path) else v for k, v in flags.items() if v is not None}
    overrides.update(parse_set(set_))
    return overrides
