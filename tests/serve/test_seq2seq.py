"""`tunelab serve` for summarization and translation runs, through the official openai client: /v1/completions takes
the source text, puts it in the run's template and answers what `tunelab predict` generates (greedy, the run's own
max_new_tokens by default); decoder-only runs decode in batches, encoder-decoder ones one request at a time."""

from __future__ import annotations

import shutil
from pathlib import Path

import openai
import pytest

import tunelab
from tests.conftest import make_pairs, tiny_translation_recipe, write_jsonl
from tests.serve.conftest import KEY, LiveServer

TEXTS = ["six zéro quatre huit", "deux", "neuf neuf un trois", "sept"]


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """A finished encoder-decoder translation run: a random 2-layer T5 with SmolLM2's tokenizer, fully fine-tuned."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    model = tmp_path_factory.mktemp("t2t-t5")
    for f in smollm2_tokenizer_dir.iterdir():
        shutil.copy(f, model / f.name)
    torch.manual_seed(0)
    config = T5Config(vocab_size=49152, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                      decoder_start_token_id=0, eos_token_id=2, pad_token_id=0, initializer_factor=4.0)  # fmt: skip
    T5ForConditionalGeneration(config).save_pretrained(model)
    data = write_jsonl(tmp_path_factory.mktemp("t2t-t5-data") / "pairs.jsonl", make_pairs(40))
    recipe = tiny_translation_recipe(model, data, tmp_path_factory.getbasetemp() / "t2t-t5-run")
    recipe["method"] = {"name": "full"}
    return Path(tunelab.train(recipe, show_progress=False).dir)


@pytest.fixture(scope="module")
def live(translation_run, t5_run):
    from tunelab.serve import Limits, app

    server = LiveServer(app({"fr-en": translation_run, "t5": t5_run}, api_key=KEY,
                            limits=Limits(max_batch_size=16, max_wait_ms=20)))  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def predictors(translation_run, t5_run):
    return {"fr-en": tunelab.load(translation_run), "t5": tunelab.load(t5_run)}


@pytest.mark.parametrize("model", ["fr-en", "t5"])
def test_completions_answer_what_tunelab_predict_generates(client, predictors, model):
    predictor = predictors[model]
    assert predictor.format.encoder_decoder == (model == "t5")
    expected = [row["generated"] for row in predictor.predict(TEXTS)]
    assert all(expected) and len(set(expected)) > 1  # the random models say something, and not always the same

    reply = client.completions.create(model=model, prompt=TEXTS)  # a list: decoded together (decoder-only)
    assert [c.text for c in reply.choices] == expected
    assert [c.index for c in reply.choices] == list(range(len(TEXTS)))
    assert reply.usage.prompt_tokens == sum(len(predictor.prompt_ids(t)) for t in TEXTS)  # the template's tokens
    assert all(c.finish_reason in ("stop", "length") for c in reply.choices)
    assert reply.usage.completion_tokens <= 8 * len(TEXTS)  # the run's eval.max_new_tokens, as predict

    streamed = client.completions.create(model=model, prompt=TEXTS[0], stream=True)
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected[0]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        reply.choices[0].finish_reason
    ]


@pytest.mark.parametrize("model", ["fr-en", "t5"])
def test_max_tokens_stop_strings_and_seeds(client, predictors, model):
    long = predictors[model].generate(TEXTS[2], max_new_tokens=12)[0]
    cut = client.completions.create(model=model, prompt=TEXTS[2], max_tokens=3)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 3
    assert long.startswith(cut.choices[0].text)
    stop = long.split()[1]
    stopped = client.completions.create(model=model, prompt=TEXTS[2], max_tokens=12, stop=[stop])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == long[: long.index(stop)].strip()

    def sample(seed):
        return client.completions.create(model=model, prompt=TEXTS[1], temperature=1.0, seed=seed, max_tokens=6)

    assert sample(7).choices[0].text == sample(7).choices[0].text


def test_the_models_list_and_wrong_endpoints(client):
    cards = {m.id: m for m in client.models.list().data}
    assert cards["fr-en"].model_extra["endpoints"] == ["/v1/completions"]
    assert cards["t5"].model_extra["task"] == "translation"
    with pytest.raises(openai.BadRequestError, match="it answers /v1/completions"):
        client.chat.completions.create(model="fr-en", messages=[{"role": "user", "content": TEXTS[0]}])
