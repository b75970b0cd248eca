"""Dropout whose random mask costs a quarter of torch's on a CPU.

torch draws a CPU dropout mask one Bernoulli sample per element from its single-threaded Mersenne Twister: about
2 ms for a 32 x 30 x 384 activation, 12% of a MiniLM-L6 training step on this 2-core machine (20 masks a step:
embeddings, attention probabilities and two residual branches per layer, the classifier). Here one 64-bit draw
from the same generator gives four 16-bit lanes, and an element is kept when its lane clears a threshold. The
drop probability is p rounded to a multiple of 1/65536 (0.1 -> 0.1000061) and kept elements are scaled by the
exact 1/(1 - that), so the expected activation is unchanged. Same generator, so seeds and exact resume behave
as before.

`use_fast_dropout(model)` swaps every `nn.Dropout` (LoRA's too) for `FastDropout` and, where the model drops attention
probabilities, routes its attention through `attention` below: while training with dropout on a CPU, torch's SDPA
falls back to its math path anyway (matmul, softmax, dropout, matmul); this is that path with the cheaper mask.
Everywhere else (evaluation, no dropout, a GPU, a causal mask) it is transformers' own SDPA. Weights and saved
files are untouched: these are forwards, not parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ATTENTION = "tunelab_sdpa"  # the name the model's config carries while training
_LANES = 65536  # 16-bit lanes


def keep_mask(shape, p: float, device) -> tuple[torch.Tensor, float]:
    """A bool mask that keeps each element with probability 1 - p (p rounded to 1/65536), and the rescale factor."""
    threshold = round(p * _LANES)
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), None)  # all 64 bits
    keep = bits.view(torch.int16)[:n].view(shape) >= threshold - _LANES // 2  # P(keep) = 1 - threshold / 65536
    return keep, _LANES / (_LANES - threshold)


def _cheap(x: torch.Tensor, p: float) -> bool:
    return x.device.type == "cpu" and 0 < round(p * _LANES) < _LANES and x.is_floating_point()


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or p == 0:
        return x
    if not _cheap(x, p):
        return F.dropout(x, p, training)
    keep, scale = keep_mask(x.shape, p, x.device)
    return x * (keep.to(x.dtype) * scale)


class FastDropout(torch.nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers' SDPA attention, except while training with dropout on a CPU: its math path, cheaper mask."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = not (module.training and _cheap(query, dropout))  # evaluation, no dropout, a GPU, p beyond 16-bit lanes
    causal = kwargs.get("is_causal") or getattr(module, "is_causal", False)
    extras = {k for k, v in kwargs.items() if v is not None} - {"is_causal", "output_attentions", "position_ids"}
    if plain or causal or extras or (attention_mask is not None and attention_mask.dim() != 4):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    keep, scale = keep_mask(scores.shape, dropout, scores.device)
    return _DroppedAttention.apply(scores, value, keep, scale).transpose(1, 2).contiguous(), None


class _DroppedAttention(torch.autograd.Function):
    """softmax(scores), dropped by `keep`, times value. Backward keeps only the probabilities and the 1-byte mask
    (autograd would keep the probabilities, a mask in their dtype and the dropped probabilities: twice the memory)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, scores, value, keep, scale):
        probs = torch.softmax(scores, dim=-1)
        ctx.save_for_backward(probs, value, keep)
        ctx.scale = scale
        return torch.matmul(probs * (keep.to(probs.dtype) * scale), value)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_out):
        probs, value, keep = ctx.saved_tensors
        mask = keep.to(probs.dtype) * ctx.scale
        grad_value = torch.matmul((probs * mask).transpose(-1, -2), grad_out) if ctx.needs_input_grad[1] else None
        grad_probs = torch.matmul(grad_out, value.transpose(-1, -2)).to(probs.dtype) * mask
        grad_scores = probs * (grad_probs - (grad_probs * probs).sum(-1, keepdim=True))  # softmax backward
        return grad_scores, grad_value, None, None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # the same masks SDPA gets


def use_fast_dropout(model: torch.nn.Module) -> int:
    """Swap in FastDropout (and the attention above where attention probabilities drop). Returns how many swapped."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout and child.p > 0:
                setattr(parent, name, FastDropout(child.p, child.inplace))
                swapped += 1
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under PEFT: the transformers model
    config = getattr(base, "config", None)
    drops_attention = any(getattr(config, k, 0) or 0 for k in ("attention_probs_dropout_prob", "attention_dropout"))
    if config is not None and drops_attention and getattr(config, "_attn_implementation", None) == "sdpa":
        _register()
        base.set_attn_implementation(ATTENTION)
    return swapped
