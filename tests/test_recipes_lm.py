"""Every shipped sft / lm / mlm recipe runs a few steps (tiny random model in place of the real one, real data)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import tunelab

RECIPES = Path(__file__).parent.parent / "recipes"
GENERATIVE = sorted(
    p for p in RECIPES.glob("*.yaml") if yaml.safe_load(p.read_text()).get("task") in ("sft", "lm", "mlm")
)


def test_the_generative_recipes_exist():
    assert {p.name for p in GENERATIVE} >= {"sft_smollm2_lora.yaml", "adapt_smollm2.yaml", "adapt_minilm_mlm.yaml"}


@pytest.mark.parametrize("recipe", GENERATIVE, ids=lambda p: p.stem)
def test_recipe_runs_a_few_steps(recipe, tiny_llama, tiny_bert, sentiment_csv, tmp_path):
    task = yaml.safe_load(recipe.read_text())["task"]
    overrides = {
        "model.name": str(tiny_bert if task == "mlm" else tiny_llama),
        "train.max_steps": 2,
        "train.max_tokens": 3000,
        "train.eval_every": 2,
        "train.precision": "fp32",
        "train.num_threads": 1,
        "train.output_dir": str(tmp_path / "run"),
        "eval.num_generate": 2,
        "eval.max_new_tokens": 3,
        "eval.batch_size": 8,
        "data.limit": 40,
    }
    if task != "sft":  # a few held-out news articles, not 3% of the corpus
        overrides |= {"data.validation_fraction": 0.002, "data.test_fraction": 0.002}
    run = tunelab.train(recipe, overrides=overrides, show_progress=False)
    assert run.metrics["steps"] >= 1 and run.metrics["test"]["perplexity"] > 1
    assert (run.dir / "model" / "config.json").exists()
    if task == "mlm":  # pretrain -> adapt -> fine-tune: the adapted encoder is a classifier's starting point
        from tests.conftest import tiny_recipe

        clf = tunelab.train(
            tiny_recipe(run.dir / "model", sentiment_csv, tmp_path / "clf", train={"max_steps": 2}), show_progress=False
        )
        assert clf.metrics["steps"] == 2
