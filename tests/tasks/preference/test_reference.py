"""The log-probabilities preference losses are built on: a pair's answer log-probabilities equal the plain full-logits
computation; the reference with the adapter switched off equals a separately loaded base model; the cached reference
equals the live one, and a changed key recomputes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunelab.data import IGNORE


def _rows(n: int = 5, seed: int = 0) -> list[dict]:
    """Pairs of random token rows of different lengths sharing a prompt; labels on the answer tokens only."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        prompt = torch.randint(3, 1000, (int(torch.randint(3, 8, (1,), generator=g)),), generator=g).tolist()
        row = {}
        for side in ("chosen", "rejected"):
            answer = torch.randint(3, 1000, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g).tolist()
            row[f"{side}_ids"] = prompt + answer
            row[f"{side}_labels"] = [IGNORE] * len(prompt) + answer
        row["length"] = max(len(row["chosen_ids"]), len(row["rejected_ids"]))
        rows.append(row)
    return rows


def _plain_logps(model, ids: list[int], labels: list[int]) -> float:
    """sum of log softmax(logits)[next token] over the labelled positions, from the model's full logits."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits[:-1], -1)
    target = torch.tensor(labels[1:])
    keep = target != IGNORE
    return float(logp[keep].gather(1, target[keep][:, None]).sum())


def _lora_with_a_trained_adapter(tiny_llama):
    """The tiny llama under LoRA whose B matrices are random (a fresh adapter adds zero; this one does not)."""
    from transformers import AutoModelForCausalLM

    from tunelab.config import MethodConfig
    from tunelab.methods import apply_method

    model = apply_method(
        AutoModelForCausalLM.from_pretrained(tiny_llama), MethodConfig(name="lora", r=4, dropout=0.0), "CAUSAL_LM"
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model.eval()


def test_answer_logps_equal_the_full_logits_computation(tiny_llama):
    from transformers import AutoModelForCausalLM

    from tunelab.tasks.preference.spec import answer_logps, collate_pairs

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    rows = _rows()
    with torch.no_grad():
        got = answer_logps(model, collate_pairs(rows, pad_id=2), chunk=7)  # several chunks of positions
    for i, r in enumerate(rows):
        assert float(got.chosen[i]) == pytest.approx(_plain_logps(model, r["chosen_ids"], r["chosen_labels"]), abs=1e-4)
        assert float(got.rejected[i]) == pytest.approx(
            _plain_logps(model, r["rejected_ids"], r["rejected_labels"]), abs=1e-4
        )
        assert int(got.chosen_tokens[i]) == sum(x != IGNORE for x in r["chosen_labels"][1:])


def test_the_adapter_off_reference_equals_a_separately_loaded_base_model(tiny_llama):
    from transformers import AutoModelForCausalLM

    from tunelab.tasks.preference.reference import reference_logps

    rows = _rows(6)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    expected = np.array([[_plain_logps(base, r[f"{s}_ids"], r[f"{s}_labels"]) for s in ("chosen", "rejected")]
                         for r in rows])  # fmt: skip
    model = _lora_with_a_trained_adapter(tiny_llama)
    got = reference_logps(model, rows, pad_id=2, batch_size=4, precision="fp32")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # the adapter is back on afterwards, and it does change the numbers (so the test above could fail)
    with torch.no_grad():
        on = _plain_logps(model, rows[0]["chosen_ids"], rows[0]["chosen_labels"])
    assert abs(on - expected[0, 0]) > 1e-2


def test_the_cached_reference_equals_the_live_one_and_a_new_key_recomputes(tiny_llama, tmp_path):
    from tunelab.runs.rundir import RunDir
    from tunelab.tasks.preference.reference import FILE, attach_reference, reference_logps

    model = _lora_with_a_trained_adapter(tiny_llama)
    run = RunDir(tmp_path / "run")
    run.path.mkdir(parents=True)
    calls = []

    def compute(rows):
        calls.append(len(rows))
        return reference_logps(model, rows, pad_id=2, batch_size=3, precision="fp32")

    live = {"train": _rows(5, seed=1), "test": _rows(2, seed=2)}
    assert attach_reference(run, "key-1", live, compute) is False
    cached = {"train": _rows(5, seed=1), "test": _rows(2, seed=2)}
    assert attach_reference(run, "key-1", cached, compute) is True
    assert calls == [7]  # computed once, for both splits
    for name in live:
        assert [r["reference"] for r in cached[name]] == [r["reference"] for r in live[name]]
    assert (run / FILE).exists()
    assert attach_reference(run, "key-2", {"train": _rows(5, seed=1), "test": _rows(2, seed=2)}, compute) is False
    assert calls == [7, 7]
