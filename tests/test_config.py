from pathlib import Path

import pytest
import yaml

from tunelab.config import Config, defaults_yaml, load_config, parse_set
from tunelab.errors import TunelabError


def test_defaults_yaml_is_the_default_config():
    text = defaults_yaml()
    assert "# Peak learning rate." in text
    assert Config.model_validate(yaml.safe_load(text)) == Config()


def test_unknown_key_suggests_the_right_one(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(TunelabError) as e:
        load_config(recipe)
    assert "unknown key 'optim.learning_rate'" in str(e.value)
    with pytest.raises(TunelabError, match="Did you mean 'epochs'"):
        load_config({"train": {"epoch": 3}})


def test_bad_value_names_the_field():
    with pytest.raises(TunelabError, match="method.name"):
        load_config({"method": {"name": "qlora"}})


def test_overrides_win_over_the_recipe(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("optim:\n  lr: 0.1\n")
    cfg = load_config(recipe, parse_set(["optim.lr=3e-5", "method.target_modules=[query,value]"]))
    assert cfg.optim.lr == 3e-5 and cfg.method.target_modules == ["query", "value"]


def test_bad_yaml_names_the_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: classification\ndata:\n  train: [unclosed\n")
    with pytest.raises(TunelabError, match=r"r.yaml, line \d+: not valid YAML"):
        load_config(recipe)


def test_every_shipped_recipe_validates():
    from pathlib import Path

    for recipe in sorted(Path(__file__).parent.parent.glob("recipes/*.yaml")):
        load_config(recipe)


def test_train_without_a_recipe_runs_the_demo_recipe_file(monkeypatch):
    from tunelab import api
    from tunelab.config import DEMO_RECIPE

    root = Path(__file__).parent.parent
    assert (
        root / "recipes" / "classify_movie_reviews.yaml"
    ).resolve() == DEMO_RECIPE.resolve()  # one file, not two copies
    seen = {}
    monkeypatch.setattr(api, "_train", lambda cfg, *args: seen.setdefault("cfg", cfg))
    api.train(overrides={"train.epochs": 1})
    assert seen["cfg"] == load_config(root / "recipes" / "classify_movie_reviews.yaml", {"train.epochs": 1})
    assert (
        seen["cfg"].eval.patience == 2 and load_config(None).eval.patience is None
    )  # Config's own defaults stay as they are


def test_a_recipe_prints_with_the_fields_of_its_task_and_method_only():
    root = Path(__file__).parent.parent
    sft = yaml.safe_load(load_config(root / "recipes" / "sft_smollm2_lora.yaml").to_yaml(relevant_only=True))
    assert {"packing", "train_on"} <= set(sft["data"]) and not {"tag_scheme", "label_column"} & set(sft["data"])
    assert sft["method"]["r"] == 16 and "unfreeze_top_layers" not in sft["method"]
    full = yaml.safe_load(load_config(root / "recipes" / "sft_smollm2_lora.yaml").to_yaml())
    assert "tag_scheme" in full["data"]  # config.yaml in a run keeps every field (resume reads it)
