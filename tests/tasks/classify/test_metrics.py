import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
)

from tunelab.tasks.classify.metrics import ConfusionMetrics, MultiLabelMetrics, RegressionMetrics


def _stream(acc, logits, labels, chunk=7):
    for i in range(0, len(labels), chunk):
        acc.update(logits[i : i + chunk], labels[i : i + chunk])
    return acc.compute()


def test_confusion_metrics_match_sklearn_when_streamed():
    rng = np.random.default_rng(0)
    labels = torch.as_tensor(rng.integers(0, 4, 100))
    logits = torch.as_tensor(rng.normal(size=(100, 4)))
    logits[:60, :] += torch.nn.functional.one_hot(labels[:60], 4) * 3  # mostly right
    m = _stream(ConfusionMetrics(list("abcd")), logits, labels)
    pred = logits.argmax(-1).numpy()
    assert np.isclose(m["accuracy"], accuracy_score(labels, pred))
    assert np.isclose(m["f1_macro"], f1_score(labels, pred, average="macro"))
    assert np.isclose(m["f1_weighted"], f1_score(labels, pred, average="weighted"))
    p, r, f, s = precision_recall_fscore_support(labels, pred)
    assert np.allclose([m["per_class"][c]["f1"] for c in "abcd"], f)
    assert sum(map(sum, m["confusion_matrix"])) == 100


def test_multilabel_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    gold = rng.random((50, 3)) > 0.6
    logits = torch.as_tensor(np.where(gold, 1.0, -1.0) + rng.normal(scale=1.2, size=(50, 3)))
    m = _stream(MultiLabelMetrics(["x", "y", "z"]), logits, torch.as_tensor(gold.astype(float)))
    pred = logits.numpy() > 0
    assert np.isclose(m["f1_micro"], f1_score(gold, pred, average="micro"))
    assert np.isclose(m["f1_macro"], f1_score(gold, pred, average="macro", zero_division=0))
    assert np.isclose(m["f1_samples"], f1_score(gold, pred, average="samples", zero_division=1))


def test_regression_metrics_match_numpy():
    rng = np.random.default_rng(2)
    y = rng.normal(size=80)
    p = y + rng.normal(scale=0.5, size=80)
    m = _stream(RegressionMetrics(), torch.as_tensor(p)[:, None], torch.as_tensor(y))
    assert np.isclose(m["mse"], mean_squared_error(y, p))
    assert np.isclose(m["mae"], mean_absolute_error(y, p))
    assert np.isclose(m["r2"], r2_score(y, p))
    assert np.isclose(m["pearson"], np.corrcoef(y, p)[0, 1])
