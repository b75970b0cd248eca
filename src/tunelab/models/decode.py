"""Decoding several replies at once with one KV cache: the generation loop of `tunelab serve` and, through `greedy`
(at the end), of every evaluation that generates (text-to-text test splits, sft's held-out answers, self-play pairs).

Why not `model.generate` on the batch: a served batch mixes requests with their own `max_tokens`, `stop`, sampling
parameters and `seed`, and each request streams as it goes. Here every row samples with its own torch.Generator
(a seeded request gets the same tokens whatever else shares its batch), stops on its own, and leaves the batch when
it is done (its cache rows are dropped, so the others step faster). Requests that arrive meanwhile join between two
steps (continuous batching, as vLLM and TGI do): they are prefilled on their own, then their cache is left-padded to
the running one's length and stacked under it; columns that became padding in every row are trimmed away.

The steps are those of transformers' greedy and sampling search: a left-padded prefill, positions from the attention
mask, logits in fp32, temperature then top-p; greedy rows give the tokens `tunelab generate` gives for the prompt.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from tunelab.training.precision import autocast


@dataclass(eq=False)
class Reply:
    """One row: its prompt and parameters in; its text, token count and finish reason out.

    The text is what `tunelab generate` prints: the decoded tokens without special tokens, stripped, cut before the
    first stop string. `on_text` gets it piece by piece; the pieces add up to the final text exactly, because a
    piece is only sent when no later token can change it (no half UTF-8 character, no start of a stop string, no
    trailing space)."""

    prompt_ids: list[int]
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: Optional[int] = None
    on_text: Callable[[str], None] = lambda piece: None
    on_done: Callable[["Reply"], None] = lambda reply: None
    cancelled: Callable[[], bool] = lambda: False
    prefix: Optional["Prefix"] = None  # cached KV of the prompt's first tokens: only the rest is prefilled
    ids: list[int] = field(default_factory=list)
    text: str = ""
    sent: str = ""
    finish_reason: Optional[str] = None

    def __post_init__(self):
        self.generator = torch.Generator()
        self.generator.manual_seed(self.seed if self.seed is not None else int(torch.randint(0, 2**62, ()).item()))

    def add(self, token: int, tokenizer, eos: set[int]) -> bool:
        """Take the next token; False when the reply is finished."""
        if self.cancelled():
            return self._finish("cancelled")
        if token in eos:
            return self._finish("stop")
        self.ids.append(token)
        self.text = tokenizer.decode(self.ids, skip_special_tokens=True).lstrip()
        cut = min((i for i in (self.text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            return self._finish("stop")
        if len(self.ids) >= self.max_tokens:
            return self._finish("length")
        self._send(self._settled())
        return True

    def _settled(self) -> str:
        """The part of the text no later token can change."""
        text = self.text.rstrip("\ufffd")  # a character whose last UTF-8 bytes are still to come
        held = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        return text[: len(text) - held].rstrip()

    def _send(self, settled: str) -> None:
        if len(settled) > len(self.sent) and settled.startswith(self.sent):
            self.on_text(settled[len(self.sent) :])
            self.sent = settled

    def _finish(self, reason: str) -> bool:
        self.text = self.text.strip()
        self.finish_reason = reason
        self._send(self.text)
        self.on_done(self)
        return False


def _choose(logits: torch.Tensor, replies: list[Reply]) -> list[int]:
    """Next token per row: argmax for greedy rows; temperature, top-p and the row's own generator for the others."""
    tokens = logits.argmax(-1).tolist()
    for i, reply in enumerate(replies):
        if reply.temperature <= 0:
            continue
        probs = torch.softmax(logits[i] / reply.temperature, dim=-1)
        if reply.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            outside = sorted_probs.cumsum(0) - sorted_probs >= reply.top_p  # the top token always stays
            sorted_probs[outside] = 0.0
            tokens[i] = int(order[torch.multinomial(sorted_probs, 1, generator=reply.generator)])
        else:
            tokens[i] = int(torch.multinomial(probs, 1, generator=reply.generator))
    return tokens


def _keeps_logits(model) -> bool:
    """The model takes `logits_to_keep` (the prefill then computes the output head for the last position only, not
    rows x length x vocab logits). A PEFT model hands its keyword arguments on to the model it wraps: ask that one."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def _reshapeable(cache: DynamicCache) -> bool:
    """Rows can join, be trimmed or share a prefix: plain full-attention layers (not sliding-window or recurrent)."""
    return all(type(layer) is DynamicLayer for layer in cache.layers)


@dataclass
class Prefix:
    """Tokens many prompts start with (in chat: the template's head, system prompt included, up to the last user
    message) and their KV cache, computed once: rows that start with them prefill only what follows (prefix
    caching; with a 200-token system prompt, one-at-a-time replies of SmolLM2 took 5.9 s -> 3.6 s here)."""

    ids: list[int]
    keys: list[torch.Tensor]  # per layer, (1, kv heads, len(ids), head dim)
    values: list[torch.Tensor]

    @classmethod
    @torch.inference_mode()
    def compute(cls, model, ids: list[int], precision: str = "fp32") -> Optional["Prefix"]:
        device = next(model.parameters()).device
        cache = DynamicCache(config=model.config)
        with autocast(precision, device):
            model(input_ids=torch.tensor([ids], device=device), past_key_values=cache, use_cache=True)
        if not _reshapeable(cache):
            return None  # sliding-window or recurrent layers: no simple prefix to reuse
        return cls(list(ids), [layer.keys for layer in cache.layers], [layer.values for layer in cache.layers])

    def starts(self, prompt_ids: list[int]) -> bool:
        return len(prompt_ids) > len(self.ids) and prompt_ids[: len(self.ids)] == self.ids


class _Rows:
    """The running batch: its replies, their KV cache, the attention mask over the cache (left padding is 0), each
    row's next position, and the logits its next tokens come from."""

    def __init__(self, model, replies: list[Reply], pad: int, precision: str, prefix: Optional[Prefix] = None):
        """Prefill: the prompts left-padded, every row's next token in the last column. With a prefix, the cache
        starts as its KV for every row, and only the rest of each prompt is fed: [prefix | padding | rest]."""
        self.model, self.precision, self.replies = model, precision, list(replies)
        self.device = next(model.parameters()).device
        self.cache = DynamicCache(config=model.config)
        head = len(prefix.ids) if prefix is not None else 0
        rests = [r.prompt_ids[head:] for r in replies]
        width = max(len(rest) for rest in rests)
        ids = torch.full((len(replies), width), pad, dtype=torch.long)
        mask = torch.zeros((len(replies), head + width), dtype=torch.long)
        mask[:, :head] = 1
        for row, rest in enumerate(rests):
            ids[row, width - len(rest) :] = torch.tensor(rest)
            mask[row, head + width - len(rest) :] = 1
        self.mask = mask.to(self.device)
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)[:, head:]
        if prefix is not None:
            for layer, (keys, values) in enumerate(zip(prefix.keys, prefix.values)):
                self.cache.update(keys.expand(len(replies), -1, -1, -1), values.expand(len(replies), -1, -1, -1), layer)
        last = {"logits_to_keep": 1} if _keeps_logits(model) else {}
        self.logits = self._forward(ids.to(self.device), positions, **last)
        self.position = positions[:, -1:] + 1

    @classmethod
    def prefill(cls, model, replies: list[Reply], pad: int, precision: str) -> "_Rows":
        """Rows grouped by the prefix they start with (each group prefilled from its cache, the rest from scratch),
        joined into one batch."""
        groups: dict[int, tuple[Optional[Prefix], list[Reply]]] = {}
        for reply in replies:
            prefix = reply.prefix if reply.prefix is not None and reply.prefix.starts(reply.prompt_ids) else None
            groups.setdefault(id(prefix), (prefix, []))[1].append(reply)
        parts = [cls(model, group, pad, precision, prefix) for prefix, group in groups.values()]
        for part in parts[1:]:
            parts[0].join(part)
        return parts[0]

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, **extra) -> torch.Tensor:
        with autocast(self.precision, self.device):
            out = self.model(
                input_ids=ids, attention_mask=self.mask, position_ids=positions, past_key_values=self.cache,
                use_cache=True, **extra,
            )  # fmt: skip
        return out.logits[:, -1, :].float()  # fp32, as transformers' generate takes them

    def step(self, tokens: list[int]) -> None:
        """Feed each row its chosen token: the logits of the token after it."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(tokens), 1))], dim=1)
        self.logits = self._forward(torch.tensor(tokens, device=self.device).unsqueeze(1), self.position)
        self.position = self.position + 1

    @property
    def reshapeable(self) -> bool:
        return _reshapeable(self.cache)

    def keep(self, rows: list[int]) -> None:
        """Only these rows stay; cache columns that are padding in every remaining row go."""
        index = torch.tensor(rows, device=self.device)
        self.cache.batch_select_indices(index)
        self.mask, self.position, self.logits = self.mask[index], self.position[index], self.logits[index]
        self.replies = [self.replies[i] for i in rows]
        first = int(self.mask.any(0).nonzero()[0]) if self.reshapeable else 0
        if first > 0:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[..., first:, :], layer.values[..., first:, :]

    def join(self, other: "_Rows") -> None:
        """Take in rows prefilled on their own: both caches left-padded to one length, then stacked."""
        width = max(self.mask.shape[1], other.mask.shape[1])

        def left_pad(t: torch.Tensor, dim: int) -> torch.Tensor:
            missing = width - t.shape[dim]
            if missing == 0:
                return t
            shape = list(t.shape)
            shape[dim] = missing
            return torch.cat([t.new_zeros(shape), t], dim=dim)

        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys = torch.cat([left_pad(mine.keys, -2), left_pad(theirs.keys, -2)])
            mine.values = torch.cat([left_pad(mine.values, -2), left_pad(theirs.values, -2)])
        self.mask = torch.cat([left_pad(self.mask, 1), left_pad(other.mask, 1)])
        self.position = torch.cat([self.position, other.position])
        self.logits = torch.cat([self.logits, other.logits])
        self.replies += other.replies


@torch.inference_mode()
def decode(
    model,
    tokenizer,
    replies: list[Reply],
    precision: str = "fp32",
    admit: Callable[[int], list[Reply]] = lambda room: [],
    max_rows: int = 32,
    on_step: Callable[[int], None] = lambda rows: None,
    waiting: Callable[[], int] = lambda: 0,
    join_after: int = 4,
    eos: Optional[set[int]] = None,
) -> None:
    """Generate every reply to its end (EOS, a stop string, max_tokens, or cancelled), all rows in one batch.

    Continuous batching: between two steps `admit(room)` may hand over new replies (up to `room`); they are
    prefilled and join the running rows, so a request arriving mid-decode does not wait for the others to finish.
    On a CPU every forward pass streams all the weights once, so a prefill of one prompt costs about a decoding step
    of the whole batch: waiting requests join in groups, when they are as many as the running rows or have waited
    `join_after` steps (`waiting()` says how many there are). `eos`: the tokens that end a reply (default: the
    tokenizer's EOS)."""
    eos = set(eos) if eos else {tokenizer.eos_token_id} - {None}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows: Optional[_Rows] = _Rows.prefill(model, replies, pad, precision)
    deferred = 0  # steps the waiting requests have been kept waiting
    while rows is not None:
        on_step(len(rows.replies))
        tokens = _choose(rows.logits, rows.replies)
        going = [i for i, (reply, token) in enumerate(zip(rows.replies, tokens)) if reply.add(token, tokenizer, eos)]
        if not going:
            rows = None
        else:
            if len(going) < len(rows.replies):  # finished rows leave the batch and the cache
                rows.keep(going)
                tokens = [tokens[i] for i in going]
            rows.step(tokens)
        running = len(rows.replies) if rows is not None else 0
        queued = waiting()
        deferred = deferred + 1 if queued else 0
        if (rows is None or rows.reshapeable) and (running == 0 or queued >= running or deferred > join_after):
            new = admit(max_rows - running)
            deferred = 0
            if new:
                joining = _Rows.prefill(model, new, pad, precision)
                if rows is None:
                    rows = joining
                else:
                    rows.join(joining)


@torch.inference_mode()
def generate_one_by_one(
    model, tokenizer, replies: list[Reply], precision: str = "fp32", eos: Optional[set[int]] = None
) -> None:
    """Encoder-decoder models (T5, BART, Marian): each reply alone through transformers' generate (the encoder runs
    once over its prompt, the decoder steps with its own cache), one request at a time: the rows of `decode` join and
    leave a decoder-only cache, which an encoder-decoder's two caches are not built for here. Its tokens then go
    through Reply.add, so the text, stop strings, max_tokens, finish_reason and the streamed pieces follow the rules
    of `decode` (the pieces come once the reply is generated). A sampled reply draws from an RNG seeded by its own
    generator (its `seed`), forked so the process's RNG is untouched."""
    stops = set(eos) if eos else {tokenizer.eos_token_id} - {None}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    for reply in replies:
        if reply.cancelled():
            reply._finish("cancelled")
            continue
        sample = reply.temperature > 0
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(int(torch.randint(0, 2**62, (), generator=reply.generator)))
            with autocast(precision, device):
                out = model.generate(
                    input_ids=torch.tensor([reply.prompt_ids], device=device),
                    attention_mask=torch.ones((1, len(reply.prompt_ids)), dtype=torch.long, device=device),
                    max_new_tokens=reply.max_tokens, do_sample=sample, num_beams=1,
                    temperature=reply.temperature if sample else None, top_p=reply.top_p if sample else None, top_k=0,
                    pad_token_id=pad, eos_token_id=sorted(stops), use_cache=True,
                )  # fmt: skip
        for token in out[0, 1:].tolist():  # after the decoder's start token
            if not reply.add(token, tokenizer, stops):
                break
        else:  # generate stopped without an end this reply recognises (its own limits)
            reply._finish("length")


# ------------------------------------------------------------------ greedy outputs for many prompts (evaluation)


def stop_ids(model, tokenizer) -> list[int]:
    """Every token that ends an output: the generation config's EOS (a chat model's end-of-turn among them) and the
    tokenizer's."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    return [i for i in dict.fromkeys([*ids, tokenizer.eos_token_id]) if i is not None]


@torch.inference_mode()
def greedy(
    model,
    tokenizer,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int = 32,
    precision: str = "fp32",
    on_batch: Optional[Callable[[int], None]] = None,
) -> tuple[list[str], list[int]]:
    """(outputs, their lengths in tokens) of a decoder-only model for many prompts (token ids), greedy, in order: what
    evaluation generates (text-to-text test splits, sft's held-out answers, preference's self-play answers).

    transformers' generate wastes most of the work here: a batch steps until its longest output ends, its finished rows
    still computed, and every prompt prefills the whole chat template. Here at most `batch_size` rows decode at a time,
    longest prompts first, a finished row leaves and the next prompt takes its place (continuous batching, `decode`);
    the prompts' common head (system prompt, instruction) is prefilled once and shared; the skinny-input matmuls apply
    (models/skinny.py). `on_batch(1)` after each finished output. The outputs equal `model.generate`'s, greedy, fp32."""
    from tunelab.models.skinny import skinny_matmuls

    head = _common_head(prompts)
    prefix = Prefix.compute(model, head, precision) if len(head) >= 8 else None
    replies = [Reply(list(p), max_tokens=max_new_tokens, seed=0, prefix=prefix) for p in prompts]
    if on_batch:
        for reply in replies:
            reply.on_done = lambda reply: on_batch(1)
    queue = sorted(range(len(replies)), key=lambda i: -len(prompts[i]))
    group = max(1, batch_size // 4)  # a join prefills (one forward): prompts join a few at a time

    def admit(room: int) -> list[Reply]:
        if room < group:
            return []
        taken = [replies[i] for i in queue[:room]]
        del queue[:room]
        return taken

    was_training = model.training
    model.eval()
    if replies:
        with skinny_matmuls(model):
            decode(model, tokenizer, admit(batch_size), precision, admit=admit, max_rows=batch_size,
                   waiting=lambda: len(queue), eos=set(stop_ids(model, tokenizer)))  # fmt: skip
    model.train(was_training)
    return [r.text for r in replies], [len(r.ids) for r in replies]


def _common_head(prompts: list[list[int]]) -> list[int]:
    """The token ids every prompt starts with, short of the shortest prompt (each keeps a token of its own)."""
    if len(prompts) < 2:
        return []
    head = prompts[0][: min(len(p) for p in prompts) - 1]
    for p in prompts[1:]:
        n = next((i for i, (a, b) in enumerate(zip(head, p)) if a != b), len(head))
        head = head[:n]
    return head
