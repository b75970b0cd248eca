"""The batched decoding loop alone: rows that share a batch, join it late or sample with a seed get the tokens they
get alone; streamed pieces add up to the final text."""

from __future__ import annotations

import pytest

from tunelab.models.decode import Reply, decode

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
    arrives = dict(zip((3, 10), joining))  # after the 3rd and the 10th step
    steps, admitted = [], []

    def waiting():
        return sum(1 for step, reply in arrives.items() if step <= len(steps) and reply not in admitted)

    def admit(room):
        new = [r for step, r in arrives.items() if step <= len(steps) and r not in admitted][:room]
        admitted.extend(new)
        return new

    decode(model, tokenizer, [first], admit=admit, waiting=waiting, on_step=steps.append, join_after=4)
    assert [joining[0].ids, joining[1].ids, first.ids] == expected
    assert steps[:4] == [1, 1, 1, 2]  # the first joins at once: it is as many as the rows running
    second = next(i for i, n in enumerate(steps) if n == 3)  # with two running, one waits up to join_after steps
    assert 10 < second <= 10 + 4 + 1


def test_a_full_batch_admits_no_one(lm):
    model, tokenizer = lm
    asked = []
    decode(model, tokenizer, [Reply(ids(tokenizer, "hi"), max_tokens=3)], admit=lambda room: asked.append(room) or [],
           waiting=lambda: 1, max_rows=1)  # fmt: skip
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


def test_rows_prefilled_from_the_cached_template_head_get_their_tokens_alone(lm):
    from tunelab.models.decode import Prefix

    model, tokenizer = lm
    a, b = ids(tokenizer, "a"), ids(tokenizer, "b")
    head = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    prefix = Prefix.compute(model, a[:head])
    assert prefix is not None and all(prefix.starts(ids(tokenizer, p)) for p in PROMPTS)
    expected = [alone(lm, p, max_tokens=20).ids for p in PROMPTS]
    replies = [Reply(ids(tokenizer, p), max_tokens=20, prefix=prefix) for p in PROMPTS]
    other = Reply(tokenizer("plain text, no template")["input_ids"], max_tokens=20, prefix=prefix)  # not its head
    decode(model, tokenizer, [*replies, other])
    assert [r.ids for r in replies] == expected
    plain = Reply(tokenizer("plain text, no template")["input_ids"], max_tokens=20)
    decode(model, tokenizer, [plain])
    assert other.ids == plain.ids


def test_skinny_matmuls_compute_what_linear_computes(talkative_llama):
    import types

    import torch
    from transformers import AutoModelForCausalLM

    from tunelab.models.skinny import _skinny_forward

    model = AutoModelForCausalLM.from_pretrained(talkative_llama).eval()
    ids = torch.randint(0, 1000, (8, 1))
    with torch.inference_mode():
        before = model(input_ids=ids).logits
        for layer in (m for m in model.modules() if type(m) is torch.nn.Linear):
            layer.forward = types.MethodType(_skinny_forward, layer)
        after = model(input_ids=ids).logits
        head = model.lm_head
        one = torch.randn(1, 1, head.in_features)
        assert torch.equal(head(one), torch.nn.functional.linear(one, head.weight))  # one row: F.linear itself
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
