"""Temperature scaling: the fit against scipy, the streaming sums against direct formulas, and on an over-fitted tiny
run: test NLL lowered, T folded into model/ and a LoRA run's adapter head, the argmax unchanged."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

import tunelab
from tests.conftest import make_sentiment, tiny_recipe, write_csv
from tunelab.tasks.classify.calibration import CalibrationSums, fit_temperature


def over_confident_logits(n=400, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    logits = torch.randn(n, classes, generator=g) + 1.5 * torch.nn.functional.one_hot(labels, classes)
    noisy = torch.rand(n, generator=g) < 0.3  # 30% of the labels disagree with the logits: over-confident
    labels = torch.where(noisy, torch.randint(0, classes, (n,), generator=g), labels)
    return logits * 4.0, labels


def test_temperature_matches_a_direct_scipy_fit():
    logits, labels = over_confident_logits()
    t = fit_temperature(logits, labels)
    z, y = logits.double().numpy(), labels.numpy()

    def nll(temp):
        s = z / temp
        s = s - s.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(len(y)), y]))

    direct = minimize_scalar(nll, bounds=(0.05, 50), method="bounded", options={"xatol": 1e-10}).x
    assert t > 1.5  # over-confident logits want a temperature above 1
    assert abs(t - direct) < 1e-4
    assert nll(t) < nll(1.0)


def test_calibration_sums_equal_the_direct_formulas_and_stream():
    logits, labels = over_confident_logits(n=300, classes=3, seed=1)
    p = torch.softmax(logits.double() / 2.0, -1).numpy()
    y = labels.numpy()
    conf, pred = p.max(1), p.argmax(1)
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum(abs((pred[bins == b] == y[bins == b]).sum() - conf[bins == b].sum()) for b in range(15)) / len(y)
    brier = np.mean(((p - np.eye(3)[y]) ** 2).sum(1))
    whole, streamed = CalibrationSums(0.5), CalibrationSums(0.5)
    whole.update(logits, labels)
    for part in range(0, 300, 70):  # batches of any size add up to the same sums
        streamed.update(logits[part : part + 70], labels[part : part + 70])
    for sums in (whole, streamed):
        got = sums.compute()
        assert got["ece"] == pytest.approx(ece, abs=1e-9)
        assert got["brier"] == pytest.approx(brier, abs=1e-9)
        assert got["nll"] == pytest.approx(-np.mean(np.log(p[np.arange(len(y)), y])), abs=1e-9)
        assert sum(b["n"] for b in got["bins"]) == 300


def noisy_sentiment(n: int, flip: float, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = make_sentiment(n, seed)
    for r in rows:
        if rng.random() < flip:
            r["label"] = "neg" if r["label"] == "pos" else "pos"
    return rows


def over_fitted(tiny_bert, tmp_path, flip=0.25, lr=5e-3, steps=120, **sections):
    """120 steps on 80 noisy examples: the model memorises the flipped labels and grows over-confident."""
    data = write_csv(tmp_path / "noisy.csv", noisy_sentiment(200, flip))
    recipe = tiny_recipe(tiny_bert, data, tmp_path / "run", optim={"lr": lr, "warmup_steps": 0},
                         train={"max_steps": steps, "log_every": 20, "eval_every": steps})  # fmt: skip
    recipe["data"] |= {"validation_fraction": 0.2, "test_fraction": 0.4}
    for key, value in sections.items():
        recipe.setdefault(key, {}).update(value)
    return tunelab.train(recipe, show_progress=False)


def logits_of(model_dir, texts, adapter=None, base=None):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if adapter is None:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    else:
        from peft import PeftModel

        labels = json.loads((model_dir / "config.json").read_text())["id2label"]
        plain = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels))
        model = PeftModel.from_pretrained(plain, adapter)
    model.eval()
    with torch.no_grad():
        return model(**tok(texts, padding=True, return_tensors="pt")).logits


def test_over_fitted_run_is_calibrated_into_its_model(tiny_bert, tmp_path):
    run = over_fitted(tiny_bert, tmp_path)
    cal = run.metrics["calibration"]
    assert cal["applied"] and cal["temperature"] > 1.2, cal
    before, after = cal["test"]["before"], cal["test"]["after"]
    assert after["nll"] < before["nll"]  # on the test split, which the temperature never saw
    assert run.metrics["test"]["loss"] == pytest.approx(after["nll"], rel=1e-3)
    assert (run.dir / "reliability.png").stat().st_size > 0

    # a plain transformers pipeline reads calibrated probabilities: tunelab's, and the best checkpoint's logits / T
    from transformers import AutoModelForSequenceClassification, pipeline

    from tunelab.runs.checkpoint import restore_best

    texts = [r["text"] for r in make_sentiment(24, seed=7)]
    pipe = pipeline("text-classification", model=str(run.dir / "model"), top_k=None)
    ours = tunelab.load(run.dir).predict(texts)
    for p, o in zip(pipe(texts), ours):
        assert {d["label"]: d["score"] for d in p} == pytest.approx(o["scores"], abs=1e-5)
    calibrated = logits_of(run.dir / "model", texts)
    raw = AutoModelForSequenceClassification.from_pretrained(run.dir / "model")
    assert restore_best(raw, run.dir / "checkpoints")  # the uncalibrated best weights
    raw.eval()
    from transformers import AutoTokenizer

    with torch.no_grad():
        uncalibrated = raw(**AutoTokenizer.from_pretrained(run.dir / "model")(texts, padding=True,
                                                                              return_tensors="pt")).logits  # fmt: skip
    assert torch.allclose(calibrated, uncalibrated / cal["temperature"], atol=1e-4)
    assert (calibrated.argmax(-1) == uncalibrated.argmax(-1)).all()


def test_lora_adapter_head_carries_the_temperature(tiny_bert, tmp_path):
    # the tiny random model learns through LoRA only at a high rate, on clean labels
    run = over_fitted(tiny_bert, tmp_path, flip=0.0, lr=1e-2, steps=60, method={"name": "lora", "r": 4, "alpha": 8})
    cal = run.metrics["calibration"]
    assert cal["applied"] and cal["temperature"] > 1.5, cal
    texts = [r["text"] for r in make_sentiment(8, seed=3)]
    merged = logits_of(run.dir / "model", texts)
    via_adapter = logits_of(run.dir / "model", texts, adapter=run.dir / "adapter", base=tiny_bert)
    assert torch.allclose(merged, via_adapter, atol=1e-4)
    assert (merged * (cal["temperature"] - 1)).abs().max() > 0.05  # so an adapter without T would differ


def test_calibration_off_and_other_tasks_say_why(tiny_bert, sentiment_csv, tmp_path):
    run = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "off", eval={"calibrate": False}),
                        show_progress=False)  # fmt: skip
    assert run.metrics["calibration"] == {"applied": False, "why": "eval.calibrate is off"}
    assert not (run.dir / "reliability.png").exists()
    rows = [{"text": r["text"], "label": float(r["label"] == "pos")} for r in make_sentiment(60)]
    reg = tunelab.train(tiny_recipe(tiny_bert, write_csv(tmp_path / "r.csv", rows), tmp_path / "reg",
                                    task="regression"), show_progress=False)  # fmt: skip
    assert not reg.metrics["calibration"]["applied"] and "regression" in reg.metrics["calibration"]["why"]
