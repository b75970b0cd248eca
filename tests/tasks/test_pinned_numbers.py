"""Pinned numbers, the way torchtune's recipe tests pin losses: every task trains a tiny seeded model for a few steps
(fp32, one thread) and the logged training losses and the last validation metric must repeat to 1e-6.

These are the safety net of a refactor: a moved dropout swap, a changed collate, a re-ordered sampler or a different
loss normalisation all move these numbers. A deliberate change of the numerics re-records them (run this file, read
the values the failure prints, and say why in the commit).
"""

from __future__ import annotations

import json
import random

import pytest

import tunelab
from tests.conftest import make_chats, make_sentences, make_sentiment, tiny_lm_recipe, tiny_recipe, write_csv

# 1e-6, relative above 1: an fp32 loss near 10 has a resolution (ulp) of about 1e-6, and CPUs with other vector units
# (AVX2 against AVX-512 kernels) round a few of these values differently by about one ulp. Perplexity is exp(loss),
# so a relative 1e-6 on it is 1e-6 on the loss.
TOL = 1e-6

# case -> (training losses logged at steps 1..6, {validation metric: value} of the last validation)
PINS: dict[str, tuple[list[float], dict[str, float]]] = {
    "classification_dropout": (
        [
            0.7176851630210876,
            0.6939057111740112,
            0.6912400126457214,
            0.7122025489807129,
            0.6941822171211243,
            0.681013822555542,
        ],
        {"loss": 0.6903234322865804, "accuracy": 0.5833333333333334},
    ),
    "multilabel": (
        [
            0.6960948705673218,
            0.693975567817688,
            0.6918991804122925,
            0.6881110072135925,
            0.686826229095459,
            0.6922589540481567,
        ],
        {"loss": 0.6983932852745056, "f1_samples": 0.20833333333333331},
    ),
    "regression": (
        [
            0.4229396879673004,
            6.434879302978516,
            20.251720428466797,
            0.14766818284988403,
            1.9217348098754883,
            3.8354556560516357,
        ],
        {"loss": 7.184547424316406, "mse": 7.184548421382348},
    ),
    "ner_lora": (
        [
            1.5636531114578247,
            1.5217699178059896,
            1.507069318722456,
            1.5350779124668665,
            1.5382566452026367,
            1.5482475056367762,
        ],
        {"loss": 1.5018823462796498, "f1": 0.0},
    ),
    "sft_lora": (
        [
            10.798469312263258,
            10.804005342371324,
            10.779829137465534,
            10.780205426897322,
            10.801604270935059,
            10.766090611049107,
        ],
        {"loss": 10.735670301649305, "perplexity": 45966.59893648904},
    ),
    "sft_lora_packed": (
        [
            10.811237681995738,
            10.797449602399553,
            10.774321612189798,
            10.78018798828125,
            10.799158096313477,
            10.765350341796875,
        ],
        {"loss": 10.73468921802662, "perplexity": 45921.52397385121},
    ),
    "lm": (
        [
            10.788830196496212,
            10.762793756300404,
            10.716993762600806,
            10.698166385773689,
            10.670721990411932,
            10.659591872970779,
        ],
        {"loss": 10.629105179398149, "perplexity": 41320.13454493925},
    ),
    "mlm": (
        [
            10.33705575125558,
            10.275847710503472,
            10.194989372702207,
            10.176162719726562,
            10.157651628766741,
            10.15477150364926,
        ],
        {"loss": 10.117796201963682, "perplexity": 24780.100279424885},
    ),
}


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _multilabel_csv(path):
    rng = random.Random(0)
    rows = []
    for i in range(80):
        tags = sorted(rng.sample(["sport", "politics", "tech"], rng.randint(1, 2)))
        rows.append({"text": " ".join(tags) + f" news item {i}", "label": "|".join(tags)})
    return write_csv(path, rows)


def _regression_csv(path):
    rng = random.Random(1)
    return write_csv(
        path,
        [
            {"text": f"review {i}: {' '.join(['good'] * s)}", "label": s + rng.random()}
            for i, s in enumerate(rng.choices(range(5), k=80))
        ],
    )


def _text_dir(folder):
    rng = random.Random(0)
    folder.mkdir()
    words = "the film movie story plot actors was is a really quite very and but good bad fun dull".split()
    for i in range(30):
        (folder / f"doc{i:02d}.txt").write_text(
            " ".join(rng.choice(words) for _ in range(rng.randint(20, 90))) + ".", encoding="utf-8"
        )
    return folder


def _recipe(case: str, tmp_path, tiny_bert, tiny_llama) -> dict:
    out = tmp_path / "run"
    common_train = {"max_steps": 6, "eval_every": 3, "num_threads": 1, "log_every": 1}
    if case == "classification_dropout":  # dropout > 0: the CPU dropout swap (hidden and attention) is in the numbers
        data = write_csv(tmp_path / "s.csv", make_sentiment(120))
        return tiny_recipe(tiny_bert, data, out, model={"dropout": 0.1}, train=common_train)
    if case == "multilabel":
        return tiny_recipe(tiny_bert, _multilabel_csv(tmp_path / "ml.csv"), out, task="multilabel", train=common_train)
    if case == "regression":
        return tiny_recipe(tiny_bert, _regression_csv(tmp_path / "reg.csv"), out, task="regression", train=common_train)
    if case == "ner_lora":
        rows = make_sentences(150)
        recipe = tiny_recipe(
            tiny_bert,
            _jsonl(tmp_path / "train.jsonl", rows[:110]),
            out,
            task="ner",
            method={"name": "lora", "r": 4},
            train=common_train,
        )
        recipe["data"].update(
            {
                "validation": str(_jsonl(tmp_path / "val.jsonl", rows[110:130])),
                "test": str(_jsonl(tmp_path / "test.jsonl", rows[130:])),
            }
        )
        return recipe
    no_generation = {"compare_base": False, "num_generate": 0}
    if case in ("sft_lora", "sft_lora_packed"):  # LoRA with its (swapped) dropout 0.05
        chats = _jsonl(tmp_path / "chats.jsonl", make_chats(60))
        return tiny_lm_recipe(
            tiny_llama,
            chats,
            out,
            method={"name": "lora", "r": 4},
            train=common_train,
            eval=no_generation,
            data={"packing": case == "sft_lora_packed", "max_length": 64},
        )
    if case == "lm":
        return tiny_lm_recipe(
            tiny_llama,
            _text_dir(tmp_path / "corpus"),
            out,
            task="lm",
            train=common_train,
            eval=no_generation,
            data={"max_length": 32},
        )
    if case == "mlm":
        return tiny_lm_recipe(
            tiny_bert,
            _text_dir(tmp_path / "corpus"),
            out,
            task="mlm",
            train=common_train,
            eval=no_generation,
            data={"max_length": 32},
        )
    raise KeyError(case)


CASES = ["classification_dropout", "multilabel", "regression", "ner_lora", "sft_lora", "sft_lora_packed", "lm", "mlm"]


@pytest.mark.parametrize("case", CASES)
def test_pinned_losses_and_validation_metric(case, tmp_path, tiny_bert, tiny_llama):
    run = tunelab.train(_recipe(case, tmp_path, tiny_bert, tiny_llama), show_progress=False)
    history = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in history if "loss" in r]
    metric = run.info["selection"]["metric"]
    last_val = [r for r in history if f"val_{metric}" in r][-1]
    got = (losses, {"loss": last_val["val_loss"], metric: last_val[f"val_{metric}"]})
    assert case in PINS, f"no pin recorded for {case}: {got!r}"
    want_losses, want_val = PINS[case]
    assert len(losses) == len(want_losses) == 6, got
    assert losses == pytest.approx(want_losses, abs=TOL, rel=TOL), got
    assert got[1] == pytest.approx(want_val, abs=TOL, rel=TOL), got
