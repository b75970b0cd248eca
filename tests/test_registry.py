"""The registry (tunelab/registry.py): one table of what each task needs, read by config, api, cli, predictors."""

from __future__ import annotations

import ast
import inspect

import pytest

import tunelab.registry as registry
from tests.conftest import ROOT
from tunelab.config import Config, load_config
from tunelab.registry import TASKS, load_object


def test_the_registry_imports_nothing_of_tunelab():
    tree = ast.parse(inspect.getsource(registry))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith("tunelab")], imported


@pytest.mark.parametrize("task", list(TASKS))
def test_every_entry_names_code_that_exists(task):
    family = TASKS[task]
    assert callable(load_object(family.story))
    if family.predictor:
        assert inspect.isclass(load_object(family.predictor))
    import transformers

    assert hasattr(transformers, family.auto_class)
    assert family.mode in ("max", "min")


def test_the_default_metric_of_each_task_is_computed_with_the_registry_direction():
    from tunelab.tasks.classify.metrics import metrics_for
    from tunelab.tasks.lm.metrics import PerplexityMetrics
    from tunelab.tasks.ner.metrics import EntityMetrics

    computed = {
        "classification": metrics_for("classification", ["a", "b"], 0.5),
        "multilabel": metrics_for("multilabel", ["a", "b"], 0.5),
        "regression": metrics_for("regression", [], 0.5),
        "ner": EntityMetrics(["O", "B-x", "I-x"]),
        "sft": PerplexityMetrics(),
        "lm": PerplexityMetrics(),
        "mlm": PerplexityMetrics(),
    }
    assert set(computed) == set(TASKS)
    for task, metrics in computed.items():
        family = TASKS[task]
        assert metrics.higher_is_better[family.metric] == (family.mode == "max"), task
        assert type(metrics) is load_object(family.metrics), task  # what a search checks its metric against


def test_config_knows_exactly_the_registry_tasks_and_takes_their_defaults():
    from tunelab.errors import TunelabError

    for task, family in TASKS.items():
        cfg = load_config({"task": task})
        assert (cfg.data.dataset, cfg.model.name) == (family.dataset, family.model)
    with pytest.raises(TunelabError, match="'task'"):
        load_config({"task": "summarization"})
    assert Config.model_fields["task"].description == " | ".join(TASKS)


def test_export_names_the_registry_class_of_the_run(tmp_path, monkeypatch, capsys):
    import sys

    from tunelab.cli import main

    monkeypatch.setattr(
        sys, "argv", ["tunelab", "export", str(ROOT / "tests/fixtures/runs/v0.1.0/ner"), "--out", str(tmp_path / "x")]
    )
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 0 and "AutoModelForTokenClassification.from_pretrained" in " ".join(
        capsys.readouterr().out.split()
    )
