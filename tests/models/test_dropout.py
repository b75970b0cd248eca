"""The cheaper CPU dropout: the same distribution as torch's, padding still masked, nothing of it in saved files."""

from __future__ import annotations

import json

import pytest
import torch

from tunelab.models.dropout import ATTENTION, FastDropout, fast_dropout, use_fast_dropout


def test_mask_has_the_asked_rate_in_every_lane_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(1 << 20)
    y = fast_dropout(x, 0.1)
    kept = y != 0
    scale = 65536 / (65536 - round(0.1 * 65536))
    assert torch.all(y[kept] == scale)  # kept elements are scaled, the rest are exactly zero
    sd = (0.1 * 0.9 / x.numel()) ** 0.5
    assert abs(kept.float().mean().item() - 0.9) < 5 * sd
    for lane in range(4):  # each 64-bit draw feeds four elements: none of the four may be biased
        assert abs(kept[lane::4].float().mean().item() - 0.9) < 10 * sd
    assert abs(y.mean().item() - 1.0) < 5 * sd * scale  # the expected activation is unchanged
    assert not torch.equal(kept[: 1 << 19], kept[1 << 19 :])  # no repeating pattern


def test_gradient_is_the_mask_and_seeds_repeat():
    x = torch.randn(4, 7, 16, requires_grad=True)
    torch.manual_seed(1)
    y = fast_dropout(x, 0.3)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y / x).detach().nan_to_num())
    torch.manual_seed(1)
    assert torch.equal(fast_dropout(x, 0.3), y)
    assert fast_dropout(x, 0.3, training=False) is x and fast_dropout(x, 0.0) is x
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros_like(x))  # p = 1 falls back to torch


def test_bf16_activations_stay_bf16():
    x = torch.randn(8, 32, dtype=torch.bfloat16)
    assert fast_dropout(x, 0.1).dtype == torch.bfloat16


def _bert(attention_dropout=0.5):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        attention_probs_dropout_prob=attention_dropout,
        hidden_dropout_prob=0.2,
    )
    return BertModel(config)


def test_swaps_every_dropout_and_the_attention():
    model = _bert()
    assert use_fast_dropout(model) == sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) > 0
    assert all(type(m) is FastDropout for m in model.modules() if isinstance(m, torch.nn.Dropout))
    assert model.config._attn_implementation == ATTENTION
    model = _bert(attention_dropout=0.0)
    use_fast_dropout(model)
    assert model.config._attn_implementation == "sdpa"  # nothing to drop in attention: keep torch's fused kernel


def test_padding_is_still_masked_while_training(monkeypatch):
    """A custom attention name must come with its mask function: without one transformers passes no padding mask."""
    import transformers.integrations.sdpa_attention as sdpa

    model = _bert()
    use_fast_dropout(model)
    model.train()
    calls = []
    real = sdpa.sdpa_attention_forward
    monkeypatch.setattr(sdpa, "sdpa_attention_forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    ids = torch.randint(5, 100, (2, 9))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    other = ids.clone()
    other[0, 5:] = torch.randint(5, 100, (4,))  # different tokens where the mask says padding
    torch.manual_seed(3)
    a = model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.manual_seed(3)
    b = model(input_ids=other, attention_mask=mask).last_hidden_state
    assert not calls  # training with attention dropout took the cheaper-mask path, not SDPA
    torch.testing.assert_close(a[0, :5], b[0, :5])  # real tokens never see what sits in the padding
    torch.testing.assert_close(a[1], b[1])


def test_evaluation_is_exactly_sdpa():
    model, reference = _bert(), _bert()
    use_fast_dropout(model)
    model.eval(), reference.eval()
    ids = torch.randint(5, 100, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    with torch.no_grad():
        torch.testing.assert_close(
            model(input_ids=ids, attention_mask=mask).last_hidden_state,
            reference(input_ids=ids, attention_mask=mask).last_hidden_state,
            atol=0,
            rtol=0,
        )


def test_training_path_matches_sdpa_when_nothing_drops(monkeypatch):
    """With the masks forced to keep everything, the cheaper-mask path is SDPA's numbers (padding included)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    import tunelab.models.dropout as dropout_module

    module = torch.nn.Module()
    module.is_causal = False
    q, k, v = (torch.randn(2, 2, 9, 16, requires_grad=True) for _ in range(3))
    mask = torch.ones(2, 1, 9, 9, dtype=torch.bool)
    mask[0, :, :, 6:] = False
    monkeypatch.setattr(
        dropout_module, "keep_mask", lambda shape, p, device: (torch.ones(shape, dtype=torch.bool), 1.0)
    )
    monkeypatch.setattr(dropout_module, "_DroppedAttention", _Spy(dropout_module._DroppedAttention))
    module.train()
    got, _ = dropout_module.attention(module, q, k, v, mask, dropout=0.1)
    assert dropout_module._DroppedAttention.calls == 1  # the cheaper-mask path, not SDPA
    module.eval()
    want, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=0.0)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


class _Spy:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def apply(self, *args):
        self.calls += 1
        return self.fn.apply(*args)


def test_saved_model_loads_without_tunelab(tmp_path):
    from transformers import AutoModel

    model = _bert()
    use_fast_dropout(model)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert ATTENTION not in json.dumps(saved)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.config._attn_implementation == "sdpa"
    assert not any(type(m) is FastDropout for m in loaded.modules())


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_module_matches_torch_statistics(p):
    torch.manual_seed(0)
    x = torch.randn(256, 512)
    fast, ref = FastDropout(p).train()(x), torch.nn.Dropout(p).train()(x)
    assert abs((fast == 0).float().mean().item() - (ref == 0).float().mean().item()) < 0.01
    torch.testing.assert_close(fast.abs().sum() / x.abs().sum(), ref.abs().sum() / x.abs().sum(), atol=0.02, rtol=0)


@pytest.mark.parametrize("fast", [True, False])
def test_lora_dropout_is_swapped_too_unless_turned_off(tiny_bert, fast):
    """LoRA's own dropout (7 masks a layer in a causal LM) comes after loading: the fast paths swap it as well, and
    train.fast_cpu_dropout: false leaves torch's dropout and attention everywhere."""
    from transformers import AutoModelForSequenceClassification

    from tunelab.config import MethodConfig, TrainConfig
    from tunelab.methods import apply_method
    from tunelab.models.fast_paths import apply_fast_paths

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    model = apply_method(model, MethodConfig(name="lora", dropout=0.1), "SEQ_CLS")
    assert apply_fast_paths(model, TrainConfig(fast_cpu_dropout=fast)) == {"fast_cpu_dropout": fast}
    lora_drops = [m for n, m in model.named_modules() if "lora_dropout." in n and isinstance(m, torch.nn.Dropout)]
    assert lora_drops and all((type(m) is FastDropout) == fast for m in lora_drops)
    assert (model.get_base_model().config._attn_implementation == ATTENTION) == fast


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dropped_attention_gradients_match_autograd(dtype):
    """The memory-lean attention backward equals autograd's through softmax, the mask and the matmul."""
    from tunelab.models.dropout import _DroppedAttention, keep_mask

    torch.manual_seed(0)
    scores = torch.randn(2, 3, 7, 7, dtype=dtype, requires_grad=True)
    value = torch.randn(2, 3, 7, 5, dtype=dtype, requires_grad=True)
    keep, scale = keep_mask(scores.shape, 0.3, scores.device)
    assert not keep.all() and keep.any()
    got = _DroppedAttention.apply(scores, value, keep, scale)
    want = torch.matmul(torch.softmax(scores, -1) * (keep.to(dtype) * scale), value)
    grad = torch.randn_like(want)
    g_got = torch.autograd.grad(got, (scores, value), grad)
    g_want = torch.autograd.grad(want, (scores, value), grad)
    tol = dict(atol=1e-10, rtol=1e-10) if dtype == torch.float64 else dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, want, **tol)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, **tol)
