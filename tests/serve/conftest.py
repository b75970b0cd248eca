"""Fixtures for the server tests: tiny runs of every served task, trained once, and live servers on loopback."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

import tunelab
from tests.conftest import (
    make_chats,
    make_sentences,
    make_sentiment,
    save_tiny_llama,
    tiny_lm_recipe,
    tiny_recipe,
    write_csv,
    write_jsonl,
)

KEY = "sk-test-key"


@pytest.fixture(scope="session")
def talkative_llama(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """A random 2-layer llama whose large initial weights make it say varied tokens (the default initialisation
    says the same token forever, which cannot tell a wrong stream or batch from a right one)."""
    return save_tiny_llama(tmp_path_factory.mktemp("talkative-llama"), smollm2_tokenizer_dir, initializer_range=0.3)


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory, tiny_bert, talkative_llama) -> dict[str, Path]:
    """One finished run per served task: classification, ner, sft, lm, mlm (2-6 steps each, fp32)."""
    root = tmp_path_factory.mktemp("served")
    data = tmp_path_factory.mktemp("served-data")
    runs = {}
    recipe = tiny_recipe(tiny_bert, write_csv(data / "sentiment.csv", make_sentiment(80)), root / "sentiment")
    runs["sentiment"] = Path(tunelab.train(recipe, show_progress=False).dir)
    recipe = tiny_recipe(tiny_bert, write_jsonl(data / "ner.jsonl", make_sentences(60)), root / "people")
    recipe["task"] = "ner"
    runs["people"] = Path(tunelab.train(recipe, show_progress=False).dir)
    recipe = tiny_lm_recipe(talkative_llama, write_jsonl(data / "chats.jsonl", make_chats(40)), root / "chatbot")
    recipe["train"]["max_steps"] = 2
    recipe["eval"].update({"num_generate": 0, "compare_base": False})
    runs["chatbot"] = Path(tunelab.train(recipe, show_progress=False).dir)
    corpus = data / "corpus"
    corpus.mkdir()
    for i, row in enumerate(make_sentiment(30, seed=2)):
        (corpus / f"doc{i:02d}.txt").write_text(" ".join([row["text"]] * 4), encoding="utf-8")
    for name, task, model in (("writer", "lm", talkative_llama), ("adapted", "mlm", tiny_bert)):
        recipe = tiny_lm_recipe(model, corpus, root / name, task=task, data={"max_length": 32})
        recipe["train"]["max_steps"] = 2
        recipe["eval"].update({"num_generate": 0, "compare_base": False})
        runs[name] = Path(tunelab.train(recipe, show_progress=False).dir)
    return runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving an app on a random loopback port, in a thread of the test process."""

    def __init__(self, application):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = application
        self.server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def server(served_runs):
    """All served runs behind one app with an API key, small batches waiting a little (so tests see batching)."""
    from tunelab.serve import Limits, app

    live = LiveServer(app(served_runs, api_key=KEY, limits=Limits(max_batch_size=16, max_wait_ms=20, max_texts=8)))
    yield live
    live.stop()
