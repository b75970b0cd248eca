"""The runs one server answers for: each loaded once through the predictor its registry entry names, each of its
endpoints behind its own Batcher (one worker thread)."""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Optional, Union

from tunelab.data.predict_io import prediction_rows
from tunelab.errors import TunelabError
from tunelab.models.decode import Prefix, decode, generate_one_by_one
from tunelab.models.skinny import use_skinny_matmuls
from tunelab.registry import TASKS
from tunelab.runs.rundir import RunDir
from tunelab.serve.batching import Batcher, Job
from tunelab.serve.limits import Limits
from tunelab.serve.metrics import Metrics


def name_runs(paths: Iterable[Union[str, Path]] = (), named: Optional[dict[str, Path]] = None) -> dict[str, Path]:
    """{name: run directory}: the `named` ones as given (--name NAME=RUN), the others by their folder's name."""
    out = dict(named or {})
    for path in paths:
        name = Path(path).resolve().name
        if name in out:
            raise TunelabError(
                f"Two runs are named '{name}' ({out[name]} and {path}): name one with --name OTHER={path}."
            )
        out[name] = Path(path)
    return out


def _batcher_of(endpoint: str) -> str:
    return "generate" if endpoint in ("chat", "generate") else endpoint  # chat and completions decode together


class ServedRun:
    def __init__(self, name: str, path: str | Path, limits: Limits, metrics: Metrics):
        from tunelab import predictors
        from tunelab.predictors.embedder import Embedder

        self.name, self.limits, self.metrics = name, limits, metrics
        self.run = RunDir.open(path)
        self.task = self.run.info.get("task")
        family = TASKS.get(self.task)
        if family is None or not family.endpoints:
            served = ", ".join(t for t, f in TASKS.items() if f.endpoints)
            raise TunelabError(
                f"{self.run.path}: tunelab serve does not serve task '{self.task}' (it serves {served})."
            )
        self.endpoints = family.endpoints
        if self.run.info.get("kind") == "ensemble":  # no model/ of its own: no one encoder to embed with
            self.endpoints = tuple(e for e in self.endpoints if e != "embeddings")
        self.created = (
            int((self.run / "run.json").stat().st_mtime) if (self.run / "run.json").exists() else int(time.time())
        )
        self.predictor = predictors.load(self.run.path) if family.predictor else None
        # its own copy of the encoder: the classifier's last layer may compute the first token only
        self.embedder = Embedder.from_run(self.run.path) if "embeddings" in self.endpoints else None
        # a text-to-text run (its predictor has `prompt_ids`: TextToText) puts a completion's prompt, the source text,
        # in its own template and stops where its own generation stops; an encoder-decoder one is served one request
        # at a time (decode.generate_one_by_one: the joining and trimming of decode's cache are built for decoder-only
        # models)
        self.templated = hasattr(self.predictor, "prompt_ids")
        model = getattr(self.predictor, "model", None)
        self.encoder_decoder = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
        self.eos = set(self.predictor.stop_ids()) if self.templated else None
        self.template_head: Optional[tuple[int, ...]] = None
        if "generate" in self.endpoints and not self.encoder_decoder:
            use_skinny_matmuls(self.predictor.model)  # batched decoding feeds a few rows at a time
        self.prefixes: OrderedDict[tuple[int, ...], Optional[Prefix]] = OrderedDict()  # LRU, on the decoding thread
        self.batchers = {
            kind: Batcher(
                f"{name}/{kind}", getattr(self, f"_{kind}"), limits.max_batch_size, limits.max_wait_ms,
                limits.max_queue, None if kind == "generate" else metrics.batch_size.labels(name, kind).observe,
            )  # generation observes its batch size at every step instead: rows join and leave as it decodes
            for kind in dict.fromkeys(_batcher_of(e) for e in self.endpoints)
        }  # fmt: skip
        for kind, batcher in self.batchers.items():
            metrics.queue_depth.labels(name, kind).set_function(batcher.depth)

    def chat_prompt(self, messages: list[dict]) -> tuple[list[int], tuple[int, ...]]:
        """The prompt's tokens (the run's chat template) and its head: the tokens before the last message's content,
        where two conversations differing only there stop agreeing (system prompt and template markup)."""
        tokenizer, render = self.predictor.tokenizer, self.predictor.render
        ids = lambda m: tokenizer(render(m), add_special_tokens=False)["input_ids"]  # noqa: E731
        a, b = (ids([*messages[:-1], {**messages[-1], "content": x}]) for x in "ab")
        head = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return ids(messages), tuple(a[:head])

    def completion_prompt(self, text: str) -> tuple[list[int], tuple[int, ...]]:
        """A completion's prompt tokens and head (the tokens a cached prefix may cover): a text-to-text run's template
        over the text as the source (cut to the run's max_source_tokens), its head the template's tokens before the
        source; any other run's text as it is, no head."""
        if not self.templated:
            return self.predictor.tokenizer(text)["input_ids"], ()
        if self.template_head is None:
            a, b = self.predictor.prompt_ids("a"), self.predictor.prompt_ids("b")
            head = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            self.template_head = () if self.encoder_decoder else tuple(a[:head])
        return self.predictor.prompt_ids(text), self.template_head

    @property
    def default_max_tokens(self) -> Optional[int]:
        """A text-to-text run's own generation length (eval.max_new_tokens), as `tunelab predict` generates; None:
        the server's default."""
        return self.predictor.options.max_new_tokens if self.templated else None

    def _prefix(self, head: tuple[int, ...]) -> Optional[Prefix]:
        """The cached KV of a prompt head (computed the first time it is asked for; 16 kept, least recent out)."""
        if len(head) < 8:
            return None
        if head not in self.prefixes:
            self.prefixes[head] = Prefix.compute(self.predictor.model, list(head), self.predictor.precision)
            while len(self.prefixes) > 16:
                self.prefixes.popitem(last=False)
        self.prefixes.move_to_end(head)
        return self.prefixes[head]

    def batcher(self, endpoint: str) -> Batcher:
        return self.batchers[_batcher_of(endpoint)]

    @property
    def context(self) -> int:
        """Prompt plus reply tokens the model's positions allow."""
        return getattr(self.predictor.model.config, "max_position_embeddings", None) or 2048

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()

    # ---------------------------------------------------------------- work, on each batcher's thread

    def _texts_work(self, jobs: list[Job], answer) -> None:
        texts = [text for job in jobs for text in job.payload]
        results = answer(texts)
        start = 0
        for job in jobs:
            job.finish(results[start : start + job.size])
            start += job.size

    def _classify(self, jobs: list[Job]) -> None:
        """Exactly `tunelab predict`'s rows (the same predictor on the same texts)."""
        self._texts_work(
            jobs, lambda t: prediction_rows(t, self.predictor.predict(t, batch_size=self.limits.max_batch_size))
        )

    _entities = _classify

    def _embeddings(self, jobs: list[Job]) -> None:
        """Per text: its vector and its token count (the usage), from one tokenisation."""

        def answer(texts: list[str]) -> list:
            ids = self.embedder.tokenize(texts)
            return list(zip(self.embedder.embed_ids(ids, batch_size=self.limits.max_batch_size), map(len, ids)))

        self._texts_work(jobs, answer)

    def _generate(self, jobs: list[Job]) -> None:
        """Each job holds a Reply wired to it (serve/server.py): it streams and finishes as soon as its row is done.
        Requests arriving while these decode join them between two steps."""
        if self.encoder_decoder:  # one request at a time (see __init__)
            generate_one_by_one(self.predictor.model, self.predictor.tokenizer, [job.payload for job in jobs],
                                self.predictor.precision, self.eos)  # fmt: skip
            return
        batcher, joined = self.batchers["generate"], []

        def replies(taken: list[Job]) -> list:
            for job in taken:  # the prompt head's cache is looked up (or computed) here, off the event loop
                job.payload.prefix = self._prefix(job.head) if job.head else None
            return [job.payload for job in taken]

        def admit(room: int) -> list:
            taken = batcher.take(room)
            joined.extend(taken)
            return replies(taken)

        try:
            decode(
                self.predictor.model, self.predictor.tokenizer, replies(jobs), self.predictor.precision,
                admit=admit, waiting=batcher.depth, max_rows=self.limits.max_batch_size,
                on_step=self.metrics.batch_size.labels(self.name, "generate").observe, eos=self.eos,
            )  # fmt: skip
        except Exception as error:  # the batcher answers the first jobs; those that joined later get the error too
            for job in joined:
                job.fail(error)
            raise
