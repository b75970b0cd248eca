"""The batched decoding loop alone: rows that share a batch, join it late or sample with a seed get the tokens they
get alone; streamed pieces add up to the final text."""

from __future__ import annotations

import pytest

from tunelab.serve.decode import Reply, decode

PROMPTS = ["What is the capital of France?", "hi", "Tell me a long story about a dragon and a knight in a castle"]


@pytest.fixture(scope="module")
def lm(talkative_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(talkative_llama)
    return AutoModelForCausalLM.from_pretrained(talkative_llama).eval(), tokenizer


def ids(tokenizer, text):
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer(chat, add_special_tokens=False)["input_ids"]


def alone(lm, prompt, **kw):
    reply = Reply(ids(lm[1], prompt), **kw)
    decode(*lm, [reply])
    return reply


def test_rows_in_one_batch_and_rows_joining_late_get_their_tokens_alone(lm):
    model, tokenizer = lm
    expected = [alone(lm, p, max_tokens=n).ids for p, n in zip(PROMPTS, (30, 5, 40))]
    first = Reply(ids(tokenizer, PROMPTS[2]), max_tokens=40)
    joining = [Reply(ids(tokenizer, PROMPTS[0]), max_tokens=30), Reply(ids(tokenizer, PROMPTS[1]), max_tokens=5)]
    late, steps = list(joining), []

    def admit(room):  # one joins at the 3rd step, the other at the 10th
        return [late.pop(0)] if late and len(steps) in (3, 10) else []

    decode(model, tokenizer, [first], admit=admit, on_step=steps.append)
    assert [joining[0].ids, joining[1].ids, first.ids] == expected
    assert max(steps) == 3 and steps[:3] == [1, 1, 1]  # one row, then three, then fewer as they finish


def test_a_full_batch_admits_no_one(lm):
    model, tokenizer = lm
    asked = []
    decode(model, tokenizer, [Reply(ids(tokenizer, "hi"), max_tokens=3)], admit=lambda room: asked.append(room) or [],
           max_rows=1)  # fmt: skip
    assert set(asked) == {0, 1}  # room 0 while the row runs, 1 once it is done


def test_a_seed_gives_the_same_tokens_alone_and_in_company(lm):
    model, tokenizer = lm
    solo = alone(lm, "hi", max_tokens=20, temperature=1.0, top_p=0.9, seed=3).ids
    seeded = Reply(ids(tokenizer, "hi"), max_tokens=20, temperature=1.0, top_p=0.9, seed=3)
    company = [Reply(ids(tokenizer, p), max_tokens=20, temperature=0.7) for p in PROMPTS]
    decode(model, tokenizer, [company[0], seeded, *company[1:]])
    assert seeded.ids == solo
    assert alone(lm, "hi", max_tokens=20, temperature=1.0, top_p=0.9, seed=4).ids != solo


def test_streamed_pieces_add_up_to_the_text_cut_at_a_stop_string(lm):
    model, tokenizer = lm
    text = alone(lm, PROMPTS[2], max_tokens=40).text
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    pieces = []
    reply = alone(lm, PROMPTS[2], max_tokens=40, stop=(stop,), on_text=pieces.append)
    assert reply.finish_reason == "stop" and reply.text == text[: text.index(stop)].strip()
    assert "".join(pieces) == reply.text and len(pieces) > 1
    pieces = []
    whole = alone(lm, PROMPTS[2], max_tokens=40, on_text=pieces.append)
    assert whole.finish_reason == "length" and "".join(pieces) == whole.text == text
