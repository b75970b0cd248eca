"""LoRA (and DoRA) through PEFT. The task head trains in full and is saved with the adapter. When the run saves its
model, the adapter is saved to adapter/ and merged into plain weights for model/ (save_adapter_and_merge)."""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from pathlib import Path

from tunelab.config import MethodConfig


def apply_lora(model, cfg: MethodConfig, peft_task: str):
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=getattr(TaskType, peft_task) if peft_task else None,  # None: a plain PeftModel (e.g. masked LM)
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules or default_targets(model),
        use_dora=cfg.dora,
    )
    with warnings.catch_warnings():  # PEFT still reads transformers' deprecated alias: not the user's concern
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)  # SEQ_CLS / TOKEN_CLS: PEFT adds the head to modules_to_save


def default_targets(model) -> list[str]:
    """Attention and MLP projections of the common architectures (the family the model has most of: BART shares
    q_proj/k_proj/v_proj with llama); PEFT's table for the rest."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    found = [
        [m for m in family if m in names]
        for family in (
            ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],  # llama, mistral, qwen
            ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],  # bart, marian, mbart, pegasus
            ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"],  # t5, mt5, flan-t5 (its cross-attention too)
            ["query", "key", "value", "dense"],  # bert, roberta, minilm
            ["c_attn", "c_proj", "c_fc"],  # gpt2
        )
    ]
    best = max(found, key=len)  # the first family of the most names
    return best or None  # None: PEFT picks from its own table


def is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def adapters_off(model):
    """A context in which a LoRA model computes as its base model (the zero-shot row of a report): the adapter's
    matmuls are skipped, not merely zero. Any other model: nothing changes."""
    inner = getattr(model, "module", model)  # DDP
    return inner.disable_adapter() if is_peft(inner) else nullcontext()


def merged(model):
    """A plain transformers model with the adapter folded into the weights (the PEFT model is consumed)."""
    return model.merge_and_unload()


def save_adapter_and_merge(model, tokenizer, adapter_dir: Path):
    """A LoRA model: its adapter (with the tokenizer) saved to `adapter_dir`, then returned merged into plain weights
    (the PEFT model is consumed). Any other model is returned as it is, nothing saved."""
    if not is_peft(model):
        return model
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    return merged(model)
