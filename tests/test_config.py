import re
from pathlib import Path

import pytest
import yaml

from tunelab.config import Config, defaults_yaml, load_config, parse_set
from tunelab.errors import TunelabError

ROOT_DIR = Path(__file__).parent.parent


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
    # every field of its family and of every method (what a search or cross-validation builds on); no other family's
    assert "mlm_probability" in full["data"] and "unfreeze_top_layers" in full["method"]
    assert "tag_scheme" not in full["data"]  # a field of ner: not a field of an sft recipe any more


# ---------------------------------------------------------------- scopes and the families' own fields


def test_a_fields_scope_is_its_metadata_not_its_description():
    from pydantic import Field, create_model

    from tunelab.config import CLASSIFIERS, SHARED_SECTIONS, Scope, families, scope_of, scoped

    probe = create_model(
        "Probe",
        plain=(int, Field(1, description="No prefix at all.", json_schema_extra=scoped(tasks=("ner",)))),
        prefixed=(int, Field(1, description="ner: a prefix that is only words now.")),
    )
    assert scope_of(probe.model_fields["plain"]) == Scope(("ner",), ())
    assert scope_of(probe.model_fields["prefixed"]) == Scope()  # every task: the description is prose
    with pytest.raises(ValueError, match="question_answering"):
        scoped(tasks=("question_answering",))
    sections = [*SHARED_SECTIONS.values(), *(cls for _, found in families() for cls in found.values())]
    fields = {(cls.__name__, name): f for cls in sections for name, f in cls.model_fields.items()}
    assert scope_of(fields["MethodConfig", "r"]) == Scope((), ("lora",))
    assert scope_of(fields["MethodConfig", "unfreeze_top_layers"]) == Scope((), ("frozen",))
    assert scope_of(fields["NerData", "tag_scheme"]).tasks == ("ner",)
    assert scope_of(fields["ClassifyData", "augment"]).tasks == CLASSIFIERS
    assert scope_of(fields["LmData", "packing"]).tasks == ("sft", "lm")
    prefix = re.compile(r"(classification|multilabel|regression|ner|sft|lm|mlm|full|lora|frozen)(/[a-z]+)*[:,] ")
    assert not [key for key, f in fields.items() if prefix.match(f.description or "")]  # help texts are prose


def test_every_family_field_sits_in_its_family_folder_and_config_imports_no_family():
    import ast
    import subprocess
    import sys

    import tunelab.config as config
    from tunelab.registry import TASKS

    tree = ast.parse(Path(config.__file__).read_text())
    top = [n.module for n in tree.body if isinstance(n, ast.ImportFrom)]
    top += [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in top if m and m.startswith("tunelab.tasks")]
    code = "import sys, tunelab.config as c; c.Config(); print(sorted(m for m in sys.modules if 'tunelab.tasks' in m))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "tunelab.tasks.classify.config" in loaded and "tunelab.tasks.ner" not in loaded  # the default task's only
    code = "import sys, tunelab.config as c; c.defaults_yaml(); print('torch' in sys.modules)"  # every family's module
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    for task, family in TASKS.items():
        assert family.config and family.config.startswith(family.story.rsplit(".", 1)[0]), task  # its own folder


def test_the_family_classes_are_the_sections_of_its_recipes():
    from tunelab.tasks.classify.config import ClassifyData, ClassifyEval
    from tunelab.tasks.lm.config import LmData, LmEval
    from tunelab.tasks.ner.config import NerData

    cfg = Config()
    assert type(cfg.data) is ClassifyData and type(cfg.eval) is ClassifyEval and cfg.data.augment.method == "none"
    ner = load_config({"task": "ner", "data": {"tag_scheme": "BIOES"}})
    assert type(ner.data) is NerData and ner.data.tag_scheme == "BIOES" and ner.data.dataset == "wnut16"
    assert type(load_config({"task": "mlm"}).data) is LmData and type(load_config({"task": "sft"}).eval) is LmEval
    ner.data.stride = 16  # validate_assignment still holds, with the family's own constraints
    with pytest.raises(ValueError):
        ner.data.tag_scheme = "BIO"
    ner.search = None
    assert Config.model_validate(ner.model_dump()) == ner and ner.model_copy(deep=True) == ner
    assert load_config(ner) == ner and validate_yaml(ner.to_yaml()) == ner
    with pytest.raises(TunelabError, match="Did you mean 'tag_scheme'"):
        load_config({"task": "ner", "data": {"tag_schem": "IOB2"}})
    with pytest.raises(TunelabError, match=r"'data.stride': .*greater than or equal to 0"):
        load_config({"task": "ner", "data": {"stride": -1}})


def validate_yaml(text: str) -> Config:
    return load_config(yaml.safe_load(text))


def test_a_field_of_another_family_warns_naming_it_and_is_ignored(tmp_path):
    from tunelab.config import RecipeWarning

    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: classification\ndata:\n  tag_scheme: BIOES\n  label_column: y\neval:\n  num_generate: 3\n")
    with pytest.warns(RecipeWarning) as caught:
        cfg = load_config(recipe)
    messages = [str(w.message) for w in caught]
    assert messages == [
        f"{recipe}: data.tag_scheme is a field of ner, not of task classification: ignored.",
        f"{recipe}: eval.num_generate is a field of sft, not of task classification: ignored.",
    ]
    assert (
        all("\n" not in m for m in messages)
        and cfg.data.label_column == "y"
        and cfg == load_config({"data": {"label_column": "y"}})
    )
    with pytest.warns(RecipeWarning, match="data.augment is a field of classification/multilabel/regression"):
        load_config({"task": "ner"}, {"data.augment.method": "eda"})


def test_an_old_config_yaml_with_every_field_loads_silently(tmp_path):
    import warnings

    from tunelab.config import load_run_config

    old = ROOT_DIR / "tests" / "fixtures" / "runs" / "v0.1.0"
    for task in ("classification", "ner", "sft"):
        raw = yaml.safe_load((old / task / "config.yaml").read_text())
        assert {"tag_scheme", "packing", "label_separator"} <= set(raw["data"])  # every family's fields
        raw["data"]["augment"] = {"method": "eda", "copies": 2}  # and those of later versions
        raw["eval"].update(threshold=0.4, num_generate=2)
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            cfg = load_run_config(old / task / "config.yaml")
            assert load_run_config(tmp_path / "config.yaml") == cfg if task == "ner" else True
            assert load_config(old / task / "config.yaml", warn=False) == cfg  # resume reads it the same way
        assert cfg.task == task and cfg.data.max_length == raw["data"]["max_length"]
    assert load_run_config(old / "ner" / "config.yaml").data.tag_scheme == "IOB2"


def test_a_config_yaml_holds_only_the_fields_of_its_task_and_method():
    full = yaml.safe_load(load_config({"task": "classification"}).to_yaml(relevant_only=True))
    assert not {"tag_scheme", "packing", "label_separator"} & set(full["data"]) and "augment" in full["data"]
    assert set(full["method"]) == {"name"} and "threshold" not in full["eval"] and "calibrate" in full["eval"]
    assert "max_tokens" not in full["train"] and "folds" in full["train"]
    frozen = yaml.safe_load(load_config({"task": "ner", "method": {"name": "frozen"}}).to_yaml(relevant_only=True))
    assert set(frozen["method"]) == {"name", "unfreeze_top_layers"} and "tag_scheme" in frozen["data"]
    assert "label_column" not in frozen["data"] and "text_column" in frozen["data"]
    mlm = yaml.safe_load(load_config({"task": "mlm"}).to_yaml(relevant_only=True))
    assert {"mlm_probability", "text_field"} <= set(mlm["data"]) and "train_on" not in mlm["data"]
    assert set(mlm["eval"]) == {"metric", "mode", "patience", "batch_size", "compare_base"}


def test_defaults_show_each_fields_scope_and_the_other_families_commented_out():
    text = defaults_yaml()
    assert "  r: 8  # [lora] Adapter rank." in text
    assert "  label_separator: '|'  # [multilabel] Separator" in text
    assert "  # tag_scheme: IOB2  # [ner] The scheme of the input tags" in text
    assert "  # mlm_probability: 0.15  # [mlm] " in text
    uncommented = re.sub(r"(?m)^(\s*)# ([a-z_]+:)", r"\1\2", text)  # each commented-out field, as a user would
    raw = yaml.safe_load(uncommented)  # still a recipe: every field, the other families' ignored with a warning
    assert raw["data"]["tag_scheme"] == "IOB2" and raw["search"]["trials"] == 20
    raw["task"] = "ner"
    with pytest.warns(UserWarning) as caught:
        assert load_config(raw).data.tag_scheme == "IOB2"
    ignored = sorted(str(w.message).split(" is a field")[0].split(": ")[1] for w in caught)
    assert "data.augment" in ignored and "eval.num_generate" in ignored and not [k for k in ignored if "tag" in k]


class PreferenceSection(__import__("tunelab.config").config.Section):
    """A family's own top-level section (as the preference family will add)."""

    beta: float = __import__("pydantic").Field(0.1, gt=0, description="Strength of the preference loss.")


def _fake_sections():
    from tunelab.tasks.classify.config import SECTIONS

    return {**SECTIONS, "preference": PreferenceSection}


FAKE_SECTIONS = _fake_sections()


def test_a_family_may_add_a_top_level_section(monkeypatch):
    from dataclasses import replace

    from tunelab.config import RecipeWarning
    from tunelab.registry import TASKS

    monkeypatch.setitem(TASKS, "regression", replace(TASKS["regression"], config="tests.test_config:FAKE_SECTIONS"))
    cfg = load_config({"task": "regression", "preference": {"beta": 0.5}})
    assert cfg.preference.beta == 0.5 and load_config({"task": "regression"}).preference == PreferenceSection()
    assert cfg.dump()["preference"] == {"beta": 0.5} and yaml.safe_load(cfg.to_yaml(True))["preference"]["beta"] == 0.5
    assert Config.model_validate(cfg.dump()) == cfg and cfg.model_copy(deep=True) == cfg
    cfg.train.epochs, cfg.search = 1, None  # assignments keep the family's section as it is
    assert cfg.preference.beta == 0.5 and type(cfg.preference) is PreferenceSection
    assert Config(task="regression", preference=PreferenceSection(beta=3)).preference.beta == 3
    with pytest.raises(ValueError, match="preferences"):
        Config(task="regression", preferences=PreferenceSection())
    with pytest.raises(TunelabError, match=r"'preference.beta': Input should be greater than 0"):
        load_config({"task": "regression", "preference": {"beta": 0}})
    with pytest.raises(TunelabError, match="unknown key 'preference.bta'. Did you mean 'beta'"):
        load_config({"task": "regression", "preference": {"bta": 1}})
    with pytest.warns(RecipeWarning, match="preference is a field of regression, not of task ner: ignored"):
        assert "preference" not in load_config({"task": "ner", "preference": {"beta": 2}}).dump()
    with pytest.raises(TunelabError, match="unknown key 'preferences'"):
        load_config({"task": "ner", "preferences": {}})
    assert "## task regression only:\n# preference:  # A family's own top-level section" in defaults_yaml()
