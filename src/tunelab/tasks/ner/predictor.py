"""EntityTagger: entity spans with character offsets for raw texts, and evaluation on tagged files, for ner runs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from tunelab.config import load_run_config
from tunelab.data.tags import spans
from tunelab.predictors.common import load_run_model
from tunelab.runs.rundir import RunDir
from tunelab.tasks.ner.data import TagSpace, encode, read_sentences, read_tagged_file
from tunelab.tasks.ner.metrics import sentences
from tunelab.tasks.ner.spec import TokenClassification
from tunelab.training.evaluate import evaluate
from tunelab.training.precision import autocast, serving_precision


class EntityTagger:
    """`tagger = tunelab.load("runs/x"); tagger.predict(["Empire State Building lights up"])`
    -> [[{"text": "Empire State Building", "type": "facility", "start": 0, "end": 21, "score": 0.93}], ...]

    Texts are split into words with the same rule as training on raw text (run.json preprocessing.word_pattern);
    entities are the strict IOB2 spans the metrics count, scored by the mean probability of their words' tags.
    """

    def __init__(self, run: RunDir, device: str | None = None):
        self.run = run
        self.info = run.info
        self.config = load_run_config(run / "config.yaml")
        self.space = TagSpace.from_run(self.info["labels"])
        pre = self.info["preprocessing"]
        self.max_length, self.stride, self.precision = pre["max_length"], pre["stride"], pre["precision"]
        self.word = re.compile(pre["word_pattern"])
        self.tokenizer, self.model, self.device = load_run_model(run, device)
        self.precision = serving_precision(self.precision, self.device)
        self.spec = TokenClassification(self.space.names, self.tokenizer.pad_token_id or 0)

    # ------------------------------------------------------------------ predict

    def words(self, text: str) -> list[tuple[str, int, int]]:
        return [(m.group(), m.start(), m.end()) for m in self.word.finditer(text)]

    @torch.inference_mode()
    def tag_words(self, sentences_: list[list[str]], batch_size: int = 64) -> list[tuple[list[str], np.ndarray]]:
        """Per sentence of words: the predicted IOB2 tag and its probability for each word."""
        out: list = [([], np.zeros(0))] * len(sentences_)
        todo = [i for i, s in enumerate(sentences_) if s]
        rows = encode(
            [{"tokens": sentences_[i], "tags": ["O"] * len(sentences_[i])} for i in todo],
            self.space,
            self.tokenizer,
            self.max_length,
            self.stride,
        )
        for start in range(0, len(rows), batch_size):
            batch = {k: v.to(self.device) for k, v in self.spec.collate(rows[start : start + batch_size]).items()}
            with autocast(self.precision, self.device):
                outputs, _ = self.spec.forward(self.model, batch)
            pred, score, _, sentence = outputs.words()
            for k, (p, s) in enumerate(sentences(pred, score, sentence=sentence)):
                out[todo[start + k]] = ([self.space.names[i] for i in p], s)
        return out

    def predict(self, texts: list[str] | str, batch_size: int = 64) -> list[list[dict]]:
        if isinstance(texts, str):
            texts = [texts]
        words = [self.words(t) for t in texts]
        tagged = self.tag_words([[w for w, _, _ in ws] for ws in words], batch_size)
        return [
            [
                {
                    "text": text[ws[a][1] : ws[b - 1][2]],
                    "type": kind,
                    "start": ws[a][1],
                    "end": ws[b - 1][2],
                    "score": round(float(scores[a:b].mean()), 4),
                }
                for kind, a, b in spans(tags)
            ]
            for text, ws, (tags, scores) in zip(texts, words, tagged)
        ]

    def decisions(self, records: list[dict], batch_size: int = 64) -> np.ndarray:
        """The tag of every word of every record, one after another: what an export is compared on."""
        tagged = self.tag_words([r["tokens"] for r in records], batch_size)
        return np.array([tag for tags, _ in tagged for tag in tags])

    # ------------------------------------------------------------------ evaluate

    def examples(self, path: str | Path | None = None) -> list[dict]:
        """Tagged sentences of a file (read with the run's columns and tag scheme), or the run's own test split."""
        return read_tagged_file(Path(path), self.config) if path is not None else read_sentences(self.config).test

    def evaluate(self, path: str | Path, batch_size: int = 64) -> dict:
        """Entity metrics on a tagged file (CoNLL or JSONL, read with the run's columns and tag scheme); the same
        evaluation code as training."""
        return self.evaluate_records(read_tagged_file(Path(path), self.config), batch_size)

    def evaluate_records(self, records: list[dict], batch_size: int = 64) -> dict:
        """Entity metrics on tagged sentences ({"tokens", "tags"})."""
        self.space.check(records, "evaluation")
        rows = encode(records, self.space, self.tokenizer, self.max_length, self.stride)
        return evaluate(
            self.model,
            rows,
            [r["length"] for r in rows],
            self.spec,
            self.spec.new_metrics(),
            batch_size,
            self.precision,
        )
