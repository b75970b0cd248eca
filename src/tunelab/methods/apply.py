"""apply_method(): the recipe's method applied to a loaded model (full, lora or frozen); count_parameters(): what
trains of it."""

from __future__ import annotations

from tunelab.config import MethodConfig


def apply_method(model, cfg: MethodConfig, peft_task):
    """peft_task: SEQ_CLS, TOKEN_CLS or CAUSAL_LM (PEFT's TaskType names), or None (masked LM)."""
    if cfg.name == "lora":
        from tunelab.methods.lora import apply_lora

        return apply_lora(model, cfg, peft_task)
    if cfg.name == "frozen":
        from tunelab.methods.frozen import freeze

        return freeze(model, cfg.unfreeze_top_layers)
    from tunelab.methods.full import full

    return full(model)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
