"""The official openai client against a live server: chat, streaming, completions, models, embeddings, auth."""

from __future__ import annotations

import openai
import pytest

import tunelab
from tests.serve.conftest import KEY

QUESTIONS = ["What is the capital of France?", "hi", "Tell me a long story about a dragon and a knight"]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def generator(served_runs):
    return tunelab.load(served_runs["chatbot"])


def test_models_lists_every_run_in_openai_shape(client, served_runs):
    models = client.models.list()
    assert {m.id for m in models.data} == set(served_runs)
    assert all(m.object == "model" and m.owned_by == "tunelab" for m in models.data)


@pytest.mark.parametrize("question", QUESTIONS)
def test_greedy_chat_equals_tunelab_generate_and_the_stream_adds_up_to_it(client, generator, question):
    expected = generator.generate(question, max_new_tokens=24)[0]
    assert expected  # the talkative model says something
    reply = client.chat.completions.create(
        model="chatbot", messages=[{"role": "user", "content": question}], max_tokens=24, temperature=0
    )
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens <= 24 and reply.usage.prompt_tokens > 0

    stream = client.chat.completions.create(
        model="chatbot", messages=[{"role": "user", "content": question}], max_tokens=24, temperature=0,
        stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == expected
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [reply.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


def test_max_tokens_gives_finish_reason_length_and_stop_strings_cut_the_reply(client, generator):
    full = generator.generate(QUESTIONS[2], max_new_tokens=30)[0]
    reply = client.chat.completions.create(
        model="chatbot", messages=[{"role": "user", "content": QUESTIONS[2]}], max_tokens=30
    )
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 30
    stop = full.split()[3]  # a word in the middle of the reply
    cut = client.chat.completions.create(
        model="chatbot", messages=[{"role": "user", "content": QUESTIONS[2]}], max_tokens=30, stop=[stop]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == full[: full.index(stop)].strip()
    streamed = client.chat.completions.create(
        model="chatbot", messages=[{"role": "user", "content": QUESTIONS[2]}], max_tokens=30, stop=[stop], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == cut.choices[0].message.content


def test_a_seed_gives_the_same_sampled_tokens_every_time(client):
    def sample(seed):
        return (
            client.chat.completions.create(
                model="chatbot", messages=[{"role": "user", "content": "hi"}], max_tokens=16, temperature=1.0, seed=seed
            )
            .choices[0]
            .message.content
        )

    assert sample(7) == sample(7)
    assert len({sample(s) for s in range(4)}) > 1  # and the seed matters


def test_completions_continue_plain_text(client, generator):
    prompt = "Once upon a time"
    reply = client.completions.create(model="chatbot", prompt=prompt, max_tokens=12)
    ids = generator.tokenizer(prompt, return_tensors="pt")
    out = generator.model.generate(
        **ids, max_new_tokens=12, do_sample=False, pad_token_id=generator.tokenizer.pad_token_id
    )
    expected = generator.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert reply.choices[0].text == expected
    streamed = client.completions.create(model="chatbot", prompt=prompt, max_tokens=12, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == expected


def test_embeddings_are_unit_vectors_in_openai_shape_float_and_base64(client, served_runs):
    import numpy as np

    from tunelab.predictors.embedder import Embedder

    texts = ["a lovely film", "a dull plot and weak actors"]
    expected = Embedder.from_run(served_runs["sentiment"]).embed(texts)
    got = client.embeddings.create(model="sentiment", input=texts)  # the client asks for base64 and decodes it
    vectors = np.array([d.embedding for d in got.data])
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    floats = client.embeddings.create(model="sentiment", input=texts, encoding_format="float")
    np.testing.assert_allclose(np.array([d.embedding for d in floats.data]), expected, atol=1e-5)
    assert got.usage.prompt_tokens > 0


def test_a_wrong_or_missing_key_is_401_and_health_needs_none(server):
    import httpx2

    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    assert httpx2.get(f"{server.url}/v1/models").status_code == 401
    assert httpx2.get(f"{server.url}/health").json()["status"] == "ok"


@pytest.mark.parametrize(
    "extra",
    [{"n": 2}, {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, {"logprobs": True},
     {"presence_penalty": 0.5}],
)  # fmt: skip
def test_unsupported_parameters_are_400_saying_which(client, extra):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="chatbot", messages=[{"role": "user", "content": "hi"}], **extra)
    assert next(iter(extra)) in str(info.value)


def test_an_unknown_model_is_404_and_a_wrong_endpoint_400(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="/v1/classify"):
        client.chat.completions.create(model="sentiment", messages=[{"role": "user", "content": "hi"}])


def test_an_lm_run_continues_text_and_has_no_chat(client, served_runs):
    writer = tunelab.load(served_runs["writer"])
    expected = writer.generate("the film was", max_new_tokens=10)[0]
    assert client.completions.create(model="writer", prompt="the film was", max_tokens=10).choices[0].text == expected
    with pytest.raises(openai.BadRequestError, match="/v1/completions"):
        client.chat.completions.create(model="writer", messages=[{"role": "user", "content": "hi"}])


def test_an_mlm_run_serves_embeddings_only(client, served_runs):
    import httpx2
    import numpy as np

    from tunelab.predictors.embedder import Embedder

    got = client.embeddings.create(model="adapted", input="a lovely film")
    expected = Embedder.from_run(served_runs["adapted"]).embed("a lovely film")[0]
    np.testing.assert_allclose(got.data[0].embedding, expected, atol=1e-5)
    answer = httpx2.post(f"{client.base_url}classify", json={"model": "adapted", "input": "x"},
                         headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
    assert answer.status_code == 400 and "/v1/embeddings" in answer.json()["error"]["message"]


def test_a_system_prompt_is_cached_once_and_answers_stay_those_of_generate(client, generator, server):
    system = {"role": "system", "content": "You answer like a pirate and keep it short. " * 6}
    runs = server.app.state.runs["chatbot"]
    for question in ("hi", "What is the capital of France?"):
        conversation = [system, {"role": "user", "content": question}]
        expected = generator.generate([conversation], max_new_tokens=16)[0]
        reply = client.chat.completions.create(model="chatbot", messages=conversation, max_tokens=16)
        assert reply.choices[0].message.content == expected
    heads = [h for h in runs.prefixes if "pirate" in generator.tokenizer.decode(list(h))]
    assert len(heads) == 1  # both questions reused one cached head
