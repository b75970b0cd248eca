"""Generator: text generation from a run's model (or a model in memory), for `tunelab generate`, `tunelab chat`
and generation-based evaluation. transformers' generate does the decoding: KV cache, greedy or sampling
(temperature, top-p), stop at EOS; prompts are batched with left padding."""

from __future__ import annotations

from typing import Callable, Optional, Union

import torch

from tunelab.errors import TunelabError
from tunelab.models.decode import greedy
from tunelab.predictors.common import load_run_model
from tunelab.registry import TASKS
from tunelab.runs.rundir import RunDir
from tunelab.training.precision import autocast, serving_precision

Prompt = Union[str, list[dict]]  # plain text, or a conversation (list of {role, content})


class Generator:
    """`gen = tunelab.load("runs/sft-..."); gen.generate(["Who wrote Hamlet?"])` -> ["William Shakespeare ..."]"""

    def __init__(self, run: RunDir, device: Optional[str] = None):
        info = run.info
        tokenizer, model, _ = load_run_model(run, device)
        self._setup(
            model,
            tokenizer,
            chat="chat" in getattr(TASKS.get(info.get("task")), "endpoints", ()),  # sft, preference
            precision=info.get("preprocessing", {}).get("precision", "fp32"),
        )

    @classmethod
    def wrap(cls, model, tokenizer, chat: bool, precision: str = "fp32") -> "Generator":
        """A generator around a model in memory (evaluation during training)."""
        gen = cls.__new__(cls)
        gen._setup(model, tokenizer, chat, precision)
        return gen

    def _setup(self, model, tokenizer, chat: bool, precision: str) -> None:
        self.model, self.tokenizer, self.chat, self.precision = model.eval(), tokenizer, chat, precision
        self.device = next(model.parameters()).device
        self.precision = serving_precision(precision, self.device)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def render(self, prompt: Prompt) -> str:
        """A chat run answers as the assistant (chat template + generation prompt); an lm run continues the text."""
        if self.chat:
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)

    def _inputs(self, texts: list[str]) -> dict:
        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=not self.chat
        )  # the template has its specials
        return {k: v.to(self.device) for k, v in enc.items()}

    def _options(self, max_new_tokens: int, temperature: float, top_p: float) -> dict:
        sample = temperature > 0
        return {
            "max_new_tokens": max_new_tokens,
            "do_sample": sample,
            "temperature": temperature if sample else None,
            "top_p": top_p if sample else None,
            "top_k": None,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
            "use_cache": True,
        }

    @torch.inference_mode()
    def generate(
        self,
        prompts: Union[Prompt, list[Prompt]],
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        batch_size: int = 16,
        seed: Optional[int] = None,
    ) -> list[str]:
        """Replies to the prompts (greedy when temperature is 0), in order."""
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], dict)):
            prompts = [prompts]
        if seed is not None:
            torch.manual_seed(seed)
        if temperature <= 0:
            return self.greedy_with_lengths(prompts, max_new_tokens, batch_size)[0]
        texts = [self.render(p) for p in prompts]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths together: less padding
        out: list[str] = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = self._inputs([texts[i] for i in idx])
            with autocast(self.precision, self.device):
                ids = self.model.generate(**enc, **self._options(max_new_tokens, temperature, top_p))
            for i, row in zip(idx, ids[:, enc["input_ids"].shape[1] :]):
                out[i] = self.tokenizer.decode(row, skip_special_tokens=True).strip()
        return out

    @torch.inference_mode()
    def greedy_with_lengths(self, prompts: list[Prompt], max_new_tokens: int, batch_size: int = 16):
        """(greedy replies, their lengths in tokens): continuous batching, the shared head prefilled once
        (models/decode.greedy)."""
        ids = [self.tokenizer(self.render(p), add_special_tokens=not self.chat)["input_ids"] for p in prompts]
        return greedy(self.model, self.tokenizer, ids, max_new_tokens, batch_size, self.precision)

    def predict(self, texts: list[str], batch_size: int = 16) -> list[dict]:
        """`tunelab predict` on a generative run: one greedy generation per text."""
        return [{"generated": g} for g in self.generate(list(texts), batch_size=batch_size)]

    def evaluate(self, path, batch_size: int = 16) -> dict:
        raise TunelabError(
            "`tunelab eval` scores classifiers; a generative run reports its held-out perplexity and generation "
            "metrics "
            'in metrics.json. Use `tunelab generate RUN "prompt"` to try it, or train with data.test set to your file.'
        )

    @torch.inference_mode()
    def stream(
        self,
        prompt: Prompt,
        on_text: Callable[[str], None],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> str:
        """Generate one reply, handing each new piece of text to `on_text` as it is decoded; returns the whole reply."""
        from transformers import TextStreamer

        class Streamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False):
                on_text(text)

        enc = self._inputs([self.render(prompt)])
        streamer = Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        with autocast(self.precision, self.device):
            ids = self.model.generate(**enc, streamer=streamer, **self._options(max_new_tokens, temperature, top_p))
        return self.tokenizer.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
