"""The model card speaks of its task and is shareable as it is (no path of the machine that trained it)."""

from __future__ import annotations

import json

import yaml

from tests.conftest import ROOT
from tunelab.config import load_run_config
from tunelab.runs.card import model_card

V010 = ROOT / "tests" / "fixtures" / "runs" / "v0.1.0"


def card_of(task: str) -> str:
    run = V010 / task
    cfg = load_run_config(run / "config.yaml")
    info, metrics = json.loads((run / "run.json").read_text()), json.loads((run / "metrics.json").read_text())
    return model_card(info, cfg, metrics)


def recipe_of(card: str) -> dict:
    return yaml.safe_load(card.split("```yaml\n", 1)[1].split("```", 1)[0])


def test_an_sft_card_says_generate_and_shows_only_its_own_fields():
    card = card_of("sft")
    assert "`tunelab generate <this run>" in card and "tunelab predict" not in card
    assert 'pipe = pipeline("text-generation"' in card and "clf =" not in card
    assert "**Labels:**" not in card
    assert "/tmp/" not in card and str(ROOT) not in card  # no path of the training machine, run.json included
    recipe = recipe_of(card)
    assert {"packing", "train_on", "format"} <= set(recipe["data"]) and recipe["method"]["r"] == 2
    assert not {"tag_scheme", "tokens_column", "label_separator", "mlm_probability"} & set(recipe["data"])
    assert "class_weights" not in recipe["train"]


def test_a_classification_card_says_predict_and_names_its_labels():
    card = card_of("classification")
    assert "`tunelab predict <this run>" in card and "- **Labels:** neg, pos" in card
    recipe = recipe_of(card)
    assert "label_column" in recipe["data"] and not {"packing", "tag_scheme"} & set(recipe["data"])
    assert "r" not in recipe["method"] and "class_weights" in recipe["train"]  # method full: no LoRA fields
    assert "/tmp/" not in card
