"""Causal (GPT-style) language modelling as the training loop sees it, with a memory-lean loss.

The model runs with `logits_to_keep` set to keep no position, so it never builds batch x length x vocab
logits; the final hidden states of only the trained positions go through the output head in chunks, and each
chunk's gradients are computed right away (fused linear cross-entropy), so no logits are kept for backward.
Peak loss memory is one chunk x vocab, whatever the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tunelab.data import IGNORE
from tunelab.tasks.lm.metrics import PerplexityMetrics
from tunelab.tasks.lm.packing import collate

# positions per head chunk: 512 x 49k vocab x 4 bytes = 100 MB at a time (as fast as 1024 here, half the memory)
CHUNK = 512


def chunked_cross_entropy(
    hidden: torch.Tensor, head: torch.nn.Linear, targets: torch.Tensor, chunk: int = CHUNK
) -> torch.Tensor:
    """sum over rows of cross_entropy(head(hidden[i]), targets[i]), never holding more than `chunk` rows of logits."""
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (hidden, head.weight, head.bias)
    )
    if needs_grad:
        return _LinearCrossEntropy.apply(hidden, head.weight, head.bias, targets, chunk, _compute_dtype(hidden))
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        logits = F.linear(hidden[start : start + chunk], head.weight, head.bias).float()
        total = total + F.cross_entropy(logits, targets[start : start + chunk], reduction="sum")
    return total


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The matmul dtype autocast would use here (bf16 under bf16 autocast), else the tensor's own."""
    device = t.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else t.dtype


class _LinearCrossEntropy(torch.autograd.Function):
    """Head matmul + cross-entropy, chunk by chunk, with the gradients computed in the same pass.

    For each chunk: logits = h W^T + b (in the autocast dtype, then fp32), loss = logsumexp - logit[target],
    dloss/dlogits = softmax - onehot, so dh = dlogits W and dW = dlogits^T h are ready before backward asks.
    Backward only scales them: no logits are stored and none are recomputed (one head matmul fewer per chunk
    than checkpointing the chunk, and one softmax pass instead of two).
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk, dtype):
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            b = bias.to(dtype) if bias is not None else None
            grad_h = torch.empty_like(hidden) if hidden.requires_grad else None
            grad_w = torch.zeros_like(weight, dtype=torch.float32) if weight.requires_grad else None
            grad_b = torch.zeros_like(bias, dtype=torch.float32) if bias is not None and bias.requires_grad else None
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for start in range(0, hidden.shape[0], chunk):
                h, t = hidden[start : start + chunk].to(dtype), targets[start : start + chunk]
                logits = F.linear(h, w, b).float()
                target_logit = logits.gather(1, t[:, None])
                top = logits.amax(1, keepdim=True)
                probs = logits.sub_(
                    top
                ).exp_()  # softmax computed in place of the logits: no second chunk x vocab buffer
                norm = probs.sum(1, keepdim=True)
                total += (top + norm.log() - target_logit).sum()  # logsumexp - logit[target]
                probs.div_(norm)
                probs[torch.arange(t.shape[0], device=t.device), t] -= 1.0  # d loss / d logits
                g = probs.to(dtype)
                if grad_h is not None:
                    grad_h[start : start + chunk] = g @ w
                if grad_w is not None:
                    grad_w += (g.t() @ h).float()
                if grad_b is not None:
                    grad_b += probs.sum(0)
        ctx.save_for_backward(*(x for x in (grad_h, grad_w, grad_b) if x is not None))
        ctx.has = (grad_h is not None, grad_w is not None, grad_b is not None)
        ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        saved = iter(ctx.saved_tensors)
        grad_h, grad_w, grad_b = (next(saved) if has else None for has in ctx.has)
        scale = lambda g, dtype=None: None if g is None else (g * grad_out).to(dtype or g.dtype)  # noqa: E731
        return scale(grad_h), scale(grad_w, ctx.dtypes[0]), scale(grad_b, ctx.dtypes[1]), None, None, None


def trained_hidden_states(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states that predict a trained token, those tokens): position t predicts label t+1.

    The final (normed) hidden state is taken from the decoder's output by a forward hook, so the model is called
    as it is (through DDP/PEFT wrappers) without `output_hidden_states`, which would keep every layer's states
    alive (30 x batch x length x width floats in evaluation, where nothing else needs them).
    """
    labels = batch["labels"]
    keep = labels[:, 1:] != IGNORE
    final = {}

    def keep_final(module, args, out) -> None:  # a forward hook must return None, or it replaces the output
        final["hidden"] = out[0] if isinstance(out, tuple) else out.last_hidden_state

    hook = getattr(model, "module", model).get_decoder().register_forward_hook(keep_final)
    try:
        model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            use_cache=False,
            logits_to_keep=torch.zeros_like(labels, dtype=torch.bool),
        )  # no logits from the model itself
    finally:
        hook.remove()
    return final["hidden"][:, :-1][keep], labels[:, 1:][keep]


def output_head(model) -> torch.nn.Linear:
    return getattr(model, "module", model).get_output_embeddings()  # DDP wraps the model in .module


class CausalLM:
    """Spec for tunelab.training.fit: rows of input_ids / labels / position_ids.

    The loss is summed over trained tokens."""

    def __init__(self, pad_id: int, chunk: int = CHUNK):
        self.pad_id, self.chunk = pad_id, chunk

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return collate(rows, self.pad_id)

    def units(self, batch: dict) -> int:
        return int((batch["labels"][:, 1:] != IGNORE).sum())

    def forward(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, targets = trained_hidden_states(model, batch)
        loss = chunked_cross_entropy(hidden, output_head(model), targets, self.chunk)
        return torch.stack([loss.detach(), torch.tensor(float(targets.numel()))]), loss

    def new_metrics(self):
        return PerplexityMetrics()
