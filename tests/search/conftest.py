"""A tiny search: LoRA on the tiny BERT, 6 steps with a validation every 2, over lr and LoRA rank."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import tiny_recipe


def search_recipe(model: Path, data: Path, tmp_path: Path, steps: int = 6, **search) -> Path:
    """The recipe file (tunelab tune reads the recipe from a file when it starts worker processes)."""
    recipe = tiny_recipe(model, data, None, method={"name": "lora", "dropout": 0.0},
                         train={"max_steps": steps, "eval_every": 2, "log_every": 2})  # fmt: skip
    recipe["search"] = {
        "trials": 4,
        "sampler": "random",
        "seed": 0,
        "space": {"optim.lr": {"float": [1.0e-4, 1.0e-2], "log": True}, "method.r": {"int": [2, 8]}},
    }
    recipe["search"].update(search)  # fmt: skip
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path
