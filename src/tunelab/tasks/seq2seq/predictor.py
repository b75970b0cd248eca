"""TextToText: a finished summarization or translation run applied to new texts (`tunelab.load`, `tunelab predict`,
`tunelab eval`, `tunelab serve`), with the run's own prompt template, token limits and generation settings."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

from tunelab.config import load_run_config
from tunelab.errors import TunelabError
from tunelab.predictors.common import load_run_model
from tunelab.runs.rundir import RunDir
from tunelab.tasks.seq2seq.encode import PROMPT_FILE, PromptFormat
from tunelab.tasks.seq2seq.generation import Options, generate, stop_ids
from tunelab.training.precision import serving_precision


class TextToText:
    """`model = tunelab.load("runs/translation-..."); model.predict(["Au commencement ..."])`
    -> [{"generated": "In the beginning ..."}]"""

    def __init__(self, run: RunDir, device: Optional[str] = None):
        self.run, self.info = run, run.info
        self.config = load_run_config(run / "config.yaml")
        prompt_file = run / "model" / PROMPT_FILE
        saved = json.loads(prompt_file.read_text(encoding="utf-8")) if prompt_file.exists() else self.info["prompt"]
        self.format = PromptFormat.from_dict(saved)
        self.options = Options.of(self.info.get("generation", {}))
        self.tokenizer, self.model, self.device = load_run_model(run, device)
        self.precision = serving_precision(self.info.get("preprocessing", {}).get("precision", "fp32"), self.device)

    def prompt_ids(self, text: str, fields: Optional[dict] = None) -> list[int]:
        """The model's input for a source text: the run's template over it (cut to its max_source_tokens)."""
        return self.format.prompt_ids(self.tokenizer, self.format.text(self.tokenizer, text, fields)[0])

    def stop_ids(self) -> list[int]:
        """The tokens that end an output (the generation config's EOS, a chat model's end-of-turn among them, and the
        tokenizer's): where `tunelab serve` stops a reply too."""
        return stop_ids(self.model, self.tokenizer)

    def generate(
        self,
        texts: Union[str, list[str]],
        batch_size: Optional[int] = None,
        on_batch=None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: Optional[int] = None,
        **options,
    ) -> list[str]:
        """The outputs for source texts, in order: greedy (or the run's beams); `options` override max_new_tokens,
        num_beams, length_penalty, no_repeat_ngram_size. No sampling here (`tunelab generate`'s temperature > 0 is
        refused; top_p and seed then mean nothing): `tunelab serve` samples."""
        if temperature > 0:
            raise TunelabError(
                f"{self.run.path}: a {self.info.get('task')} run generates greedy (or with its beams, eval.num_beams) "
                "here: leave temperature at 0. `tunelab serve` samples (temperature in the request)."
            )
        texts = [texts] if isinstance(texts, str) else list(texts)
        opts = replace(self.options, **{k: v for k, v in options.items() if v is not None})
        if batch_size:
            opts = replace(opts, batch_size=batch_size)
        prompts = [self.prompt_ids(t) for t in texts]
        return generate(self.model, self.tokenizer, prompts, opts, self.format.encoder_decoder, self.precision,
                        on_batch=on_batch)[0]  # fmt: skip

    def predict(self, texts: list[str], batch_size: int = 16, on_batch=None) -> list[dict]:
        """`tunelab predict`: one generated text per source text (`on_batch(n)` after each batch of n: its progress
        bar)."""
        return [{"generated": g} for g in self.generate(list(texts), batch_size=batch_size, on_batch=on_batch)]

    def evaluate(self, path: Union[str, Path], batch_size: int = 16) -> dict:
        """Every generation metric on a file of pairs (the run's source/target columns and template), 0–100."""
        from tunelab.tasks.seq2seq.data import read_pairs
        from tunelab.tasks.seq2seq.metrics import score

        records = read_pairs(Path(path), self.config, prompt=self.format.template)
        prompts = [self.prompt_ids(r["source"], r["fields"]) for r in records]
        opts = replace(self.options, batch_size=batch_size)
        outputs, lengths = generate(self.model, self.tokenizer, prompts, opts, self.format.encoder_decoder,
                                    self.precision)  # fmt: skip
        bleu_tokenize = getattr(self.config.eval, "bleu_tokenize", None)
        return score(outputs, [r["target"] for r in records], lengths, opts.max_new_tokens, bleu_tokenize)
