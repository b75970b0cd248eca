"""Text-to-text records -> token ids, for both model kinds; the prompt format a finished run keeps.

decoder-only     prompt + target + end, one sequence; the loss on the target tokens and the end only. With the
                 model's chat template: the prompt is the user turn and the target the assistant's reply (its
                 end-of-turn marker trained); without one: "prompt\\n" then target and EOS.
encoder-decoder  the prompt is the encoder's input; the target ids (with EOS) are the labels.

The source is cut to data.max_source_tokens before it goes into the template (the instruction around it is kept
whole) and the target to data.max_target_tokens; both are counted. The reference a generation is scored against is
always the whole target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tunelab.data import IGNORE

PROMPT_FILE = "prompt_template.json"  # in model/: how tunelab.load and the model card turn a text into model input


@dataclass(frozen=True)
class PromptFormat:
    """How a source text becomes the model's input: what run.json and model/prompt_template.json keep."""

    template: str  # over {source} and the record's other columns
    encoder_decoder: bool
    chat: bool  # decoder-only with the model's own chat template
    max_source_tokens: int

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PromptFormat":
        return cls(d["template"], bool(d["encoder_decoder"]), bool(d["chat"]), int(d["max_source_tokens"]))

    def text(self, tokenizer, source: str, fields: dict | None = None) -> tuple[str, bool]:
        """(the prompt text, whether the source was cut): the template over the source cut to max_source_tokens."""
        ids = tokenizer(source, add_special_tokens=False)["input_ids"]
        cut = len(ids) > self.max_source_tokens
        if cut:
            source = tokenizer.decode(ids[: self.max_source_tokens])
        return self.template.format_map({**(fields or {}), "source": source}), cut

    def prompt_ids(self, tokenizer, prompt: str) -> list[int]:
        """The token ids the model is given to generate from."""
        if self.encoder_decoder:
            return tokenizer(prompt)["input_ids"]
        if self.chat:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            return tokenizer(text, add_special_tokens=False)["input_ids"]
        return tokenizer(prompt + "\n")["input_ids"]

    def example(self, tokenizer, prompt: str, target: str) -> dict:
        """One training example: input_ids and labels (IGNORE where no loss)."""
        if self.encoder_decoder:
            return {
                "input_ids": self.prompt_ids(tokenizer, prompt),
                "labels": tokenizer(text_target=target)["input_ids"],
            }
        if self.chat:
            # the chat family's renderer: assistant-only labels found through the template (tasks/lm/chat.py)
            from tunelab.tasks.lm.chat import render

            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": target}]
            return render(tokenizer, messages)
        prompt_ids = self.prompt_ids(tokenizer, prompt)
        target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        labels = [IGNORE] * len(prompt_ids) + target_ids
        labels[0] = IGNORE
        return {"input_ids": prompt_ids + target_ids, "labels": labels}


def cut_target(tokenizer, target: str, max_tokens: int) -> tuple[str, bool]:
    """The target cut to max_tokens tokens (for training), and whether it was cut."""
    ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return target, False
    return tokenizer.decode(ids[:max_tokens]), True


def encode(records: list[dict], tokenizer, fmt: PromptFormat, max_target_tokens: int) -> tuple[list, list, dict]:
    """(training examples, held-out items, counts) of records: an example is {input_ids, labels, length (+ the
    decoder-only rows' position_ids)}; an item {prompt_ids, reference, source, prompt} is what generation scores."""
    examples, items, counts = [], [], {"sources_cut": 0, "targets_cut": 0}
    for r in records:
        prompt, source_cut = fmt.text(tokenizer, r["source"], r.get("fields"))
        target, target_cut = cut_target(tokenizer, r["target"], max_target_tokens)
        counts["sources_cut"] += source_cut
        counts["targets_cut"] += target_cut
        ex = fmt.example(tokenizer, prompt, target)
        if fmt.encoder_decoder:
            ex["length"] = len(ex["input_ids"]) + len(ex["labels"])
        else:
            n = len(ex["input_ids"])
            ex |= {"position_ids": list(range(n)), "length": n}
        examples.append(ex)
        items.append(
            {
                "prompt_ids": fmt.prompt_ids(tokenizer, prompt),
                "reference": r["target"],
                "source": r["source"],
                "prompt": prompt,
            }
        )
    return examples, items, counts
