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
    from tunelab.tasks.preference.metrics import PreferenceMetrics
    from tunelab.tasks.seq2seq.metrics import Text2TextMetrics

    computed = {
        "classification": metrics_for("classification", ["a", "b"], 0.5),
        "multilabel": metrics_for("multilabel", ["a", "b"], 0.5),
        "regression": metrics_for("regression", [], 0.5),
        "ner": EntityMetrics(["O", "B-x", "I-x"]),
        "sft": PerplexityMetrics(),
        "lm": PerplexityMetrics(),
        "mlm": PerplexityMetrics(),
        "summarization": Text2TextMetrics(),
        "translation": Text2TextMetrics(),
        "preference": PreferenceMetrics(),
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
        load_config({"task": "question_answering"})
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


DOTTED = ("story", "predictor", "metrics", "examples", "ensemble", "doctor", "auto_class_for")  # "module:attribute"


@pytest.mark.parametrize("task", list(TASKS))
def test_every_dotted_path_of_every_entry_loads(task):
    family = TASKS[task]
    for name in DOTTED:
        dotted = getattr(family, name)
        if dotted is not None:
            assert ":" in dotted and load_object(dotted) is not None, (task, name)


TARGETS = ("single-label", "multi-label", "real-valued", "tags", None)


def test_each_target_agrees_with_the_family_head_metrics_and_the_code_that_reads_it():
    """`target` (what a label is) matches the transformers head and the metrics of the family, and cv, ensembles and
    doctor treat each kind of target as the family's own code does."""
    import numpy as np

    from tunelab.cv.summary import oof_metrics
    from tunelab.doctor import checks
    from tunelab.ensembles.combine import METHODS, combine, methods_for

    head = {"single_label_classification": "single-label", "multi_label_classification": "multi-label",
            "regression": "real-valued"}  # fmt: skip
    for task, family in TASKS.items():
        assert family.target in TARGETS, task
        if family.problem_type:
            assert family.target == head[family.problem_type], task
        if family.stratify == "label" or family.calibrate:  # labels with classes (and class probabilities)
            assert family.target in ("single-label", "multi-label"), task
        if family.target is None:  # the text itself: nothing to cross-validate, ensemble or check labels of
            assert not family.cross_validate and family.ensemble is None, task
        if family.target == "tags":
            assert family.auto_class == "AutoModelForTokenClassification", task
    by_target = {f.target: t for t, f in TASKS.items()}
    single, multi, real = by_target["single-label"], by_target["multi-label"], by_target["real-valued"]
    two = [np.array([[0.9, 0.1], [0.4, 0.6]]), np.array([[0.6, 0.4], [0.3, 0.7]])]
    assert combine(single, "vote", two, None)[1].tolist() == [0, 1]  # one label per example
    assert combine(multi, "vote", two, None, 0.5)[1].tolist() == [[True, False], [False, True]]  # a set per example
    assert methods_for(TASKS[real].target) == ("mean",) and methods_for(TASKS[single].target) == METHODS
    with pytest.raises(ValueError):
        combine(real, "weighted", [np.ones((2, 1))] * 2, np.array([0.5, 0.5]))
    pool = [{"label": "a"}, {"label": "b"}]
    scores = [{"scores": {"a": 0.9, "b": 0.1}}, {"scores": {"a": 0.8, "b": 0.2}}]
    assert oof_metrics(single, pool, scores) == {"accuracy": 0.5, "n": 2}
    values = [{"label": 1.0}, {"label": 3.0}]
    assert oof_metrics(real, values, [{"score": 2.0}, {"score": 3.0}]) == {"mse": 0.5, "n": 2}
    rows = {"train": [{"text": "x", "label": 1.0}, {"text": "x", "label": 2.0}], "validation": [], "test": []}
    assert "regression targets" in checks.labels(rows, TASKS[real].target)[0].message
    assert checks.conflicts(rows["train"], TASKS[real].target) == []  # a noisy value is no conflict
    labelled = [{"text": "x", "label": "a"}, {"text": "x", "label": "b"}]
    assert checks.conflicts(labelled, TASKS[single].target)[0].check == "conflicting_labels"


def _seq2seq_if_encoder_decoder(config) -> str:  # an auto_class_for hook, as an encoder-decoder family would name
    return "AutoModelForSeq2SeqLM" if getattr(config, "is_encoder_decoder", False) else "AutoModelForCausalLM"


def test_model_class_asks_the_family_hook_where_it_names_one(monkeypatch):
    import dataclasses

    from transformers import BertConfig, T5Config

    from tunelab.registry import model_class

    for task, family in TASKS.items():  # no hook: the family's auto_class, with or without the model's config
        if family.auto_class_for is None:
            assert model_class(task) == model_class(task, BertConfig()) == family.auto_class, task
    assert model_class("question_answering") == "AutoModel"  # a task this version does not know: the generic class
    for task in ("summarization", "translation"):  # the text-to-text hook: the kind the model's config says
        assert model_class(task, T5Config()) == "AutoModelForSeq2SeqLM"
        assert model_class(task, BertConfig()) == model_class(task) == "AutoModelForCausalLM"
    hooked = dataclasses.replace(TASKS["lm"], auto_class_for="tests.test_registry:_seq2seq_if_encoder_decoder")
    monkeypatch.setitem(TASKS, "lm", hooked)
    assert model_class("lm", T5Config()) == "AutoModelForSeq2SeqLM"
    assert model_class("lm", BertConfig()) == "AutoModelForCausalLM"
    assert model_class("lm") == "AutoModelForCausalLM"  # no config to ask about: the family's auto_class


_ASKED: list = []


def _bare_encoder(config) -> str:  # a hook that records the config it was given
    _ASKED.append(config.model_type)
    return "AutoModel"


def test_predictors_load_the_class_the_registry_picks_with_the_model_config(monkeypatch):
    """load_run_model hands the hook the run's model config, and loads the class it names (here the bare encoder)."""
    import dataclasses

    from tunelab.predictors.common import load_run_model
    from tunelab.runs.rundir import RunDir

    _ASKED.clear()
    hooked = dataclasses.replace(TASKS["ner"], auto_class_for="tests.test_registry:_bare_encoder")
    monkeypatch.setitem(TASKS, "ner", hooked)
    _, model, _ = load_run_model(RunDir(ROOT / "tests/fixtures/runs/v0.1.0/ner"), "cpu")
    assert _ASKED == ["bert"] and type(model).__name__ == "BertModel"
    monkeypatch.setitem(TASKS, "ner", dataclasses.replace(hooked, auto_class_for=None))
    _, model, _ = load_run_model(RunDir(ROOT / "tests/fixtures/runs/v0.1.0/ner"), "cpu")
    assert type(model).__name__ == "BertForTokenClassification"


def test_no_predictor_names_a_model_class_of_its_own():
    """The class comes from the registry (model_class): no predictor passes a literal AutoModelFor... string."""
    for path in (ROOT / "src/tunelab").rglob("predictor*.py"):
        assert "AutoModelFor" not in path.read_text(encoding="utf-8"), path
