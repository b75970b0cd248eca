"""Per-token log-probabilities of the answer tokens, through the output head in chunks, and their sums per sequence.

Preference losses score whole answers: log p(answer) = the sum of its tokens' log-probabilities. As in the causal-LM
loss (tasks/lm/spec.py), the model is run without logits and only the hidden states that predict an answer token go
through the head, `chunk` rows at a time, so peak memory is one chunk x vocab whatever the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tunelab.tasks.lm.spec import CHUNK, _compute_dtype


def token_logps(hidden: torch.Tensor, head: torch.nn.Linear, targets: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """log softmax(head(hidden))[i, targets[i]] for each row i, in fp32 (fp64 for fp64 inputs): a tensor [N].

    Never holds more than `chunk` rows of logits, in the forward pass or the backward pass. Under no_grad (the
    reference model) nothing is kept at all.
    """
    return _TokenLogps.apply(hidden, head.weight, head.bias, targets, chunk, _compute_dtype(hidden))


def sequence_sums(values: torch.Tensor, row: torch.Tensor, rows: int) -> torch.Tensor:
    """[rows]: out[r] = sum of values[i] over the i with row[i] == r (differentiable; a row with no value sums to 0)."""
    return values.new_zeros(rows).index_add(0, row, values)


class _TokenLogps(torch.autograd.Function):
    """Head matmul + log-softmax at the targets, chunk by chunk; backward recomputes each chunk's softmax.

    For each chunk: logits = h W^T + b (in the autocast dtype, then fp32), logp = logit[target] - logsumexp. Only
    the inputs (hidden, weight, bias, targets) and the N logsumexps are saved, no logits.

    Why not the fused cross-entropy's trick of computing the gradients in the forward pass (tasks/lm/spec.py)? There
    the upstream gradient is one scalar (the summed loss), so backward only scales gradients that forward already
    summed. Here it is one number per token, g_i = dloss/dlogp_i, and in DPO it depends on the whole pair (for the
    sigmoid loss, -beta * sigmoid(-margin) with the sign of the answer), known only once every token's logp is.
    With d logp_i / d logits_i = onehot(target_i) - softmax_i:
        dlogits_i = g_i (onehot_i - softmax_i),  dh_i = dlogits_i W,  dW = sum_i dlogits_i^T h_i,  db = sum_i dlogits_i
    The head's gradient sums over the tokens with weights g_i that forward does not know yet, so it cannot be summed
    ahead. (The hidden states' gradient alone could be precomputed as N x H rows that backward scales, the LoRA case;
    not done, to keep one code path.) So backward recomputes each chunk's logits from the saved inputs: one more head
    matmul per chunk, and memory held at one chunk of logits. Only the inputs that need a gradient get one: with LoRA
    the head is frozen and its gradient (the dW matmul) is skipped.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk, dtype):
        acc = torch.promote_types(dtype, torch.float32)  # fp32 for bf16/fp16/fp32 matmuls, fp64 for fp64 inputs
        out = torch.empty(hidden.shape[0], dtype=acc, device=hidden.device)
        lse = torch.empty_like(out)
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            b = bias.to(dtype) if bias is not None else None
            for start in range(0, hidden.shape[0], chunk):
                rows = slice(start, start + chunk)
                logits = F.linear(hidden[rows].to(dtype), w, b).to(acc)
                lse[rows] = logits.logsumexp(1)
                out[rows] = logits.gather(1, targets[rows, None]).squeeze(1) - lse[rows]
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.chunk, ctx.dtype = chunk, dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        needs_h, needs_w, needs_b = ctx.needs_input_grad[:3]
        dtype, acc = ctx.dtype, lse.dtype
        grad_h = torch.empty_like(hidden) if needs_h else None
        grad_w = torch.zeros_like(weight, dtype=acc) if needs_w else None
        grad_b = torch.zeros_like(bias, dtype=acc) if needs_b else None
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            b = bias.to(dtype) if bias is not None else None
            for start in range(0, hidden.shape[0], ctx.chunk):
                rows = slice(start, start + ctx.chunk)
                h, t, g = hidden[rows].to(dtype), targets[rows], grad_out[rows].to(acc)
                dlogits = F.linear(h, w, b).to(acc).sub_(lse[rows, None]).exp_()  # softmax, in place of the logits
                dlogits.mul_(-g[:, None])  # -g_i * softmax_i ...
                dlogits[torch.arange(t.shape[0], device=t.device), t] += g  # ... + g_i * onehot_i
                d = dlogits.to(dtype)
                if grad_h is not None:
                    grad_h[rows] = d @ w
                if grad_w is not None:
                    grad_w += (d.t() @ h).to(acc)
                if grad_b is not None:
                    grad_b += dlogits.sum(0)
        grad_w = grad_w.to(weight.dtype) if grad_w is not None else None
        grad_b = grad_b.to(bias.dtype) if grad_b is not None else None
        return grad_h, grad_w, grad_b, None, None, None
