"""Preference pairs -> token rows: the chosen and the rejected answer, each after the same prompt, chat-templated.

A pair is two rows, prompt + chosen and prompt + rejected, each rendered with the tokenizer's chat template (give a
tokenizer without one tasks/lm/chat.py's ensure_chat_template first). The answer's characters are found as sft finds
an assistant reply (chat.py's assistant_spans: the conversation rendered up to the reply with the generation prompt,
and through it). The prompt text, the answer with its end-of-turn marker, and whatever the template writes after it
are tokenised apart and joined, so both rows start with the very same prompt tokens — those a model generating from
the prompt is given — and each row's labels are exactly its answer's tokens and end-of-turn marker (IGNORE
elsewhere). Where no token spans the prompt/answer boundary (chat templates end the generation prompt with a newline
or a special token) the rows are token for token sft's render() of the same conversation.

A pair longer than max_length (its longer row) has its prompt cut from the left: the oldest turns' content first, a
turn emptied goes whole (an assistant turn left leading goes with it), the system message and the template's framing
stay. When even the final user turn cut down to MIN_PROMPT_TOKENS leaves no room for the answers, the pair is dropped.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

from jinja2 import TemplateError

from tunelab.data import IGNORE
from tunelab.errors import TunelabError, where
from tunelab.tasks.lm.chat import assistant_spans

MIN_PROMPT_TOKENS = 8  # the final user turn is never cut below this (nor at all when it is shorter): else the pair goes
TRIES = 8  # cuts of one turn's text before giving up (a cut text is measured again: its count is not assumed)


def encode_pair(tokenizer, prompt: list[dict], chosen: str, rejected: str, max_length: int) -> Optional[dict]:
    """{"chosen_ids", "chosen_labels", "rejected_ids", "rejected_labels", "prompt_cut"} of one pair, or None when it
    cannot fit max_length. prompt_cut: how many prompt tokens were cut from the left to fit (0: none)."""
    prompt_ids, answers = _tokens(tokenizer, prompt, (chosen, rejected))
    return _fit(tokenizer, prompt, (chosen, rejected), prompt_ids, answers, max_length)


def encode_pairs(records: list[dict], tokenizer, max_length: int) -> tuple[list[dict], dict]:
    """Each record's encode_pair, with its "length" (the longer row) and "line"; and the counts: "prompts_cut" (pairs
    whose prompt was cut from the left to fit) and "dropped_overlong" (pairs left out: the answers alone do not fit).
    Renders pair by pair, tokenises all pairs in one batch; only over-long pairs are re-rendered."""
    texts = []
    for r in records:
        with _at(r):
            texts += _texts(tokenizer, r["prompt"], (r["chosen"], r["rejected"]))
    ids = _tokenize(tokenizer, texts)
    pairs, counts = [], {"prompts_cut": 0, "dropped_overlong": 0}
    for i, r in enumerate(records):
        p = ids[5 * i : 5 * i + 5]
        with _at(r):
            pair = _fit(tokenizer, r["prompt"], (r["chosen"], r["rejected"]), p[0], [p[1:3], p[3:5]], max_length)
        if pair is None:
            counts["dropped_overlong"] += 1
            continue
        counts["prompts_cut"] += pair["prompt_cut"] > 0
        pair["length"] = max(len(pair["chosen_ids"]), len(pair["rejected_ids"]))
        pair["line"] = r.get("line")
        pairs.append(pair)
    return pairs, counts


def cut_left(tokenizer, prompt: list[dict], n: int) -> Optional[list[dict]]:
    """The prompt with one cut from the left, toward n fewer tokens: the oldest non-system turn loses its first n
    content tokens, or, when it has no more than n, goes whole (with an assistant turn that would then lead: a
    conversation goes on from a user turn). None when the cut would leave the final user turn fewer than
    MIN_PROMPT_TOKENS tokens (or cut it at all when it has fewer). One step: a dropped turn takes its template framing
    with it, so the caller measures again before cutting more."""
    head = prompt[:1] if prompt[0]["role"] == "system" else []
    turns = [dict(m) for m in prompt[len(head) :]]
    content = turns[0]["content"]
    starts = [s for s, _ in _offsets(tokenizer, content)]
    if len(turns) == 1:  # the user's turn the answers reply to
        if len(starts) - n < min(MIN_PROMPT_TOKENS, len(starts)):
            return None
        turns[0]["content"] = content[starts[n] :]
    elif n < len(starts):
        turns[0]["content"] = content[starts[n] :]
    else:
        turns.pop(0)
        while turns[0]["role"] == "assistant":
            turns.pop(0)
    return head + turns


# ------------------------------------------------------------------ the pieces


def _texts(tokenizer, prompt: list[dict], answers: tuple[str, str]) -> list[str]:
    """[prompt text, first answer (with its end-of-turn marker), after it, second answer, after it] under the chat
    template; the prompt text (rendered with the generation prompt) is the same for both."""
    prompt_text, pieces = None, []
    for answer in answers:
        messages = [*prompt, {"role": "assistant", "content": answer}]
        try:
            text = tokenizer.apply_chat_template(messages, tokenize=False)
            start, end = assistant_spans(tokenizer, messages, text)[-1]
        except TemplateError as e:
            raise TunelabError(
                f"the model's chat template refuses this prompt ({e}). Reshape the prompt's turns as the template "
                "wants them (many take user and assistant turns alternating, from a user turn) or remove the line."
            ) from None
        except TunelabError:
            raise TunelabError(
                "the model's chat template does not render conversations incrementally (an earlier turn renders "
                "differently once later turns follow), so the answer tokens cannot be located. Use a model whose "
                "template does, or single-turn prompts."
            ) from None
        # assistant_spans checked that `text` starts with the prompt rendered with the generation prompt, which does
        # not depend on the answer: both answers follow the very same prompt text
        prompt_text = text[:start]
        pieces += [text[start:end], text[end:]]
    return [prompt_text, *pieces]


def _offsets(tokenizer, text: str) -> list[tuple[int, int]]:
    return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]


def _tokenize(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []


def _tokens(tokenizer, prompt: list[dict], answers: tuple[str, str]) -> tuple[list[int], list[list[list[int]]]]:
    """(prompt ids, [[answer ids, after-answer ids] per answer])."""
    ids = _tokenize(tokenizer, _texts(tokenizer, prompt, answers))
    return ids[0], [ids[1:3], ids[3:5]]


def _fit(tokenizer, prompt, answer_texts, prompt_ids, answers, max_length: int) -> Optional[dict]:
    """The pair's rows, the prompt cut from the left until the longer row fits max_length; None when it cannot."""
    full = len(prompt_ids)
    for _ in range(len(prompt) + TRIES):  # each step drops a turn or cuts tokens; a cut text is measured again
        longest = len(prompt_ids) + max(len(a) + len(after) for a, after in answers)
        if longest <= max_length:
            return _rows(prompt_ids, answers, full - len(prompt_ids))
        prompt = cut_left(tokenizer, prompt, longest - max_length)
        if prompt is None:
            return None
        prompt_ids, answers = _tokens(tokenizer, prompt, answer_texts)
    return None


def _rows(prompt_ids: list[int], answers, prompt_cut: int) -> dict:
    """Both rows start with the same prompt ids (one list), labelled IGNORE; the answer's ids are its labels."""
    pair = {}
    for name, (answer, after) in zip(("chosen", "rejected"), answers):
        pair[f"{name}_ids"] = prompt_ids + answer + after
        pair[f"{name}_labels"] = [IGNORE] * len(prompt_ids) + answer + [IGNORE] * len(after)
    pair["prompt_cut"] = prompt_cut
    return pair


@contextmanager
def _at(r: dict):
    """A TunelabError raised while encoding a record, prefixed with the record's file and line."""
    try:
        yield
    except TunelabError as e:
        raise TunelabError(f"{where(r.get('file', 'the data'), r.get('line'))}: {e}") from None
