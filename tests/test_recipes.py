"""Every shipped recipe runs a few steps, on a tiny model of the same family (so the suite stays fast) and real data."""

from __future__ import annotations

import pytest
import yaml

import tunelab
from tests.conftest import ROOT
from tunelab.config import load_config

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)

# task -> fixture giving a tiny model of the family the recipe's real model belongs to
TINY_MODEL = {"classification": "tiny_bert", "multilabel": "tiny_bert", "regression": "tiny_bert"}


RECIPES = sorted(p for p in (ROOT / "recipes").glob("*.yaml") if load_config(p).task in TINY_MODEL)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_classification_recipe_runs_a_few_steps(recipe, request, tmp_path):
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


GENERATIVE = sorted(
    p for p in (ROOT / "recipes").glob("*.yaml") if yaml.safe_load(p.read_text()).get("task") in ("sft", "lm", "mlm")
)


def test_the_generative_recipes_exist():
    assert {p.name for p in GENERATIVE} >= {"sft_smollm2_lora.yaml", "adapt_smollm2.yaml", "adapt_minilm_mlm.yaml"}


@pytest.mark.parametrize("recipe", GENERATIVE, ids=lambda p: p.stem)
def test_generative_recipe_runs_a_few_steps(recipe, tiny_llama, tiny_bert, sentiment_csv, tmp_path):
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


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "recipes").glob("ner*.yaml")))
def test_shipped_ner_recipe_runs_a_few_steps(tiny_bert, tmp_path, recipe):
    overrides = {
        "model.name": str(tiny_bert),
        "data.limit": 40,
        "data.validation_fraction": 0.02,
        "data.test_fraction": 0.02,
        "train.max_steps": 2,
        "train.batch_size": 8,
        "train.output_dir": str(tmp_path / "run"),
        "train.precision": "fp32",
        "train.num_threads": None,
    }  # torch's thread count is process-wide: leave it to the test run
    run = tunelab.train(ROOT / "recipes" / recipe, overrides=overrides, show_progress=False)
    assert run.metrics["steps"] == 2 and run.metrics["test"]["n"] > 0
    assert run.info["data"]["source"] == "built-in:wnut16"


TEXT2TEXT = sorted(
    p
    for p in (ROOT / "recipes").glob("*.yaml")
    if yaml.safe_load(p.read_text()).get("task") in ("summarization", "translation")
)


def test_the_text_to_text_recipes_exist():
    assert {p.name for p in TEXT2TEXT} >= {"translate_fr_en.yaml", "summarize_aclsum.yaml"}


@pytest.mark.parametrize("recipe", TEXT2TEXT, ids=lambda p: p.stem)
def test_text_to_text_recipe_runs_a_few_steps(recipe, tiny_llama, tmp_path):
    overrides = {
        "model.name": str(tiny_llama),
        "train.max_steps": 2,
        "train.eval_every": 2,
        "train.precision": "fp32",
        "train.num_threads": 1,
        "train.output_dir": str(tmp_path / "run"),
        "eval.num_generate": 2,
        "eval.max_new_tokens": 3,
        "eval.batch_size": 8,
        "data.limit": 16,
        "data.max_source_tokens": 24,  # the whole test split is generated, twice: short prompts keep it quick
    }
    run = tunelab.train(recipe, overrides=overrides, show_progress=False)
    test = run.metrics["test"]
    assert run.metrics["steps"] == 2 and test["generated"] == run.info["data"]["test"] > 100  # the whole test split
    assert {"chrf", "rougeL", "bleu"} <= set(test) and {"chrf", "rougeL"} <= set(run.metrics["base"]["test"])


def test_the_preference_recipe_runs_a_few_steps_on_self_play_pairs(smollm2_tokenizer_dir, tmp_path):
    """The shipped preference recipe (SimPO) on its built-in pairs: the starting model (here a tiny llama whose large
    weights make it say something) answers every chatterbot question once (cached), its answers are the rejected
    ones."""
    from tests.conftest import save_tiny_llama

    (tmp_path / "llama").mkdir()
    llama = save_tiny_llama(tmp_path / "llama", smollm2_tokenizer_dir, initializer_range=0.3)
    overrides = {
        "model.name": str(llama),
        "train.max_steps": 2,
        "train.eval_every": 2,
        "train.precision": "fp32",
        "train.num_threads": 1,
        "train.output_dir": str(tmp_path / "run"),
        "eval.num_generate": 2,
        "eval.max_new_tokens": 3,
        "data.max_answer_tokens": 4,
    }
    run = tunelab.train(ROOT / "recipes" / "preference_smollm2.yaml", overrides=overrides, show_progress=False)
    data = run.info["data"]
    assert run.metrics["steps"] == 2 and data["questions"] > 600 and data["train"] > 400  # data.limit: 480
    assert run.info["preference"]["loss"] == "simpo" and "reward_accuracy" in run.metrics["test"]
    assert "dpo_reward_accuracy" not in run.metrics["test"]  # SimPO: no reference pass, so no DPO implicit reward
    assert "reward_accuracy" in run.metrics["base"]["test"]
