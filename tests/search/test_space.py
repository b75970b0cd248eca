"""Every bad search: block is a clear error before the first trial, naming the recipe's file and line."""

from __future__ import annotations

import pytest
import yaml

from tests.search.conftest import search_recipe
from tunelab.config import load_config
from tunelab.errors import TunelabError
from tunelab.search.space import parse_space


def _with(tmp_path, tiny_bert, sentiment_csv, space=None, **search):
    path = search_recipe(tiny_bert, sentiment_csv, tmp_path, **search)
    if space is not None:
        recipe = yaml.safe_load(path.read_text())
        recipe["search"]["space"] = space
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


BAD_SPACES = [
    ({"train.batchsize": {"choice": [8, 16]}}, "unknown field 'train.batchsize'. Did you mean 'train.batch_size'"),
    ({"lr": {"float": [1e-5, 1e-3]}}, "'lr' is not a recipe field"),
    ({"task": {"choice": ["ner"]}}, "'task' is not a recipe field"),
    ({"optim.lr": [1e-5, 1e-3]}, "is not a distribution"),
    ({"optim.lr": {"float": [1e-3, 1e-5]}}, "low < high"),
    ({"optim.lr": {"float": [1e-5]}}, "low < high"),
    ({"optim.lr": {"float": [0, 1e-3], "log": True}}, "log: true needs low > 0"),
    ({"optim.lr": {"float": [1e-5, 1e-3], "int": [1, 2]}}, "2 of float/int/choice"),
    ({"optim.lr": {"uniform": [1e-5, 1e-3]}}, "unknown key(s) uniform"),
    ({"method.r": {"float": [4.0, 32.0]}}, "method.r is a int field: it takes int or choice of ints"),
    ({"method.r": {"int": [4.5, 32]}}, "whole-number bounds"),
    ({"method.r": {"choice": [4, 8.5]}}, "8.5 is not a valid value"),
    ({"method.r": {"int": [0, 8]}}, "method.r = 0 is not a valid value"),
    ({"method.name": {"float": [0, 1]}}, "takes choice only"),
    ({"method.name": {"choice": ["lora", "qlora"]}}, "'qlora' is not a valid value"),
    ({"train.batch_size": {"choice": []}}, "non-empty list"),
    ({"method.unfreeze_top_layers": {"int": [1, 3]}}, "applies to method frozen only"),
    ({"data.packing": {"choice": [True, False]}}, "applies to sft, lm only"),
    ({"data.tag_scheme": {"choice": ["IOB2", "BIOES"]}}, "applies to ner only"),  # another family's field
    ({"data.label_separator": {"choice": [",", "|"]}}, "applies to multilabel only"),  # another task of the family
    ({"data.tag_shceme": {"choice": ["IOB2"]}}, "unknown field 'data.tag_shceme'. Fields of data:"),
]


@pytest.mark.parametrize("space,message", BAD_SPACES, ids=[next(iter(s)) + "-" + m[:14] for s, m in BAD_SPACES])
def test_a_bad_space_is_refused_with_its_line(space, message, tiny_bert, sentiment_csv, tmp_path):
    path = _with(tmp_path, tiny_bert, sentiment_csv, space)
    with pytest.raises(TunelabError) as e:
        parse_space(load_config(path), str(path))
    assert message in str(e.value)
    lines = path.read_text().splitlines()
    start = lines.index("search:")
    line = next(i for i in range(start, len(lines)) if lines[i].strip().startswith(next(iter(space)) + ":")) + 1
    assert f"{path}, line {line}: search" in str(e.value)


def test_a_bad_metric_or_direction_is_refused_before_any_trial(tiny_bert, sentiment_csv, tmp_path):
    import tunelab

    with pytest.raises(TunelabError, match="'perplexity' is not computed for task 'classification'. Choose one of"):
        tunelab.tune(_with(tmp_path, tiny_bert, sentiment_csv, metric="perplexity"), study_dir=tmp_path / "s")
    with pytest.raises(TunelabError, match="direction 'minimize' contradicts metric 'accuracy'"):
        tunelab.tune(_with(tmp_path, tiny_bert, sentiment_csv, direction="minimize"), study_dir=tmp_path / "s")
    with pytest.raises(TunelabError, match="search.sampler"):
        tunelab.tune(_with(tmp_path, tiny_bert, sentiment_csv, sampler="cmaes"), study_dir=tmp_path / "s")
    assert not (tmp_path / "s").exists()  # nothing ran, nothing was written


def test_method_name_in_the_space_draws_only_the_fields_of_the_drawn_method(tiny_bert, sentiment_csv, tmp_path):
    import optuna

    space = {"method.r": {"int": [2, 8]}, "method.name": {"choice": ["full", "lora"]}, "optim.lr": {"float": [0.1, 1]}}
    cfg = load_config(_with(tmp_path, tiny_bert, sentiment_csv, space))
    parsed = parse_space(cfg)
    assert parsed.fields[0] == "method.name"  # drawn first: it decides the rest
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [parsed.sample(study.ask(), cfg.method.name) for _ in range(12)]
    assert {d["method.name"] for d in drawn} == {"full", "lora"}
    assert all(("method.r" in d) == (d["method.name"] == "lora") for d in drawn)


def test_the_cli_prints_one_paragraph_and_exits_2(tiny_bert, sentiment_csv, tmp_path, monkeypatch, capsys):
    import sys

    from tunelab.cli import main

    path = _with(tmp_path, tiny_bert, sentiment_csv, {"optim.lr": {"float": [1e-3, 1e-5]}})
    monkeypatch.setattr(sys, "argv", ["tunelab", "tune", str(path), "--study-dir", str(tmp_path / "s")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "low < high" in err and "Traceback" not in err


def test_every_shipped_search_recipe_is_a_valid_search():
    from tests.conftest import ROOT
    from tunelab.search.space import check_metric

    shipped = [p for p in sorted((ROOT / "recipes").glob("*.yaml")) if "search" in yaml.safe_load(p.read_text())]
    assert shipped
    for path in shipped:
        cfg = load_config(path)
        assert parse_space(cfg, str(path)).fields and check_metric(cfg, str(path))[1] in ("maximize", "minimize")
