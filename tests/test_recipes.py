"""Every shipped recipe runs a few steps (on a tiny model of the same family, so the suite stays fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tunelab
from tunelab.config import load_config

# task -> fixture giving a tiny model of the family the recipe's real model belongs to
TINY_MODEL = {"classification": "tiny_bert", "multilabel": "tiny_bert", "regression": "tiny_bert"}
# sft / lm / mlm recipes: tests/test_recipes_lm.py; ner: tests/test_ner_train.py
RECIPES = sorted(
    p for p in (Path(__file__).parent.parent / "recipes").glob("*.yaml") if load_config(p).task in TINY_MODEL
)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_recipe_runs_a_few_steps(recipe, request, tmp_path):
    cfg = load_config(recipe)
    tiny = request.getfixturevalue(TINY_MODEL[cfg.task])
    run = tunelab.train(
        recipe,
        show_progress=False,
        overrides={
            "model.name": str(tiny),
            "train.max_steps": 2,
            "train.eval_every": 2,
            "train.batch_size": 4,
            "data.limit": 32,
            "train.output_dir": str(tmp_path / "run"),
            "train.precision": "fp32",
        },
    )
    assert run.info["status"] == "completed"
    assert (run.dir / "model" / "config.json").exists()
