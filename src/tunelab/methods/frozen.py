"""Frozen backbone: train the task head only, or the head plus the top k transformer layers."""

from __future__ import annotations

import torch.nn as nn

from tunelab.errors import TunelabError


def backbone(model) -> nn.Module:
    return getattr(model, model.base_model_prefix)


def layer_stack(model) -> nn.ModuleList:
    """The transformer's list of layers: the largest ModuleList inside the backbone."""
    lists = [m for m in backbone(model).modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise TunelabError(
            f"{type(model).__name__}: cannot find its transformer layers to unfreeze; use method full or lora."
        )
    return max(lists, key=len)


def freeze(model, unfreeze_top_layers: int = 0):
    base = backbone(model)
    for p in model.parameters():
        p.requires_grad_(True)
    for p in base.parameters():  # everything outside the backbone (the head) stays trainable
        p.requires_grad_(False)
    if unfreeze_top_layers:
        layers = layer_stack(model)
        if unfreeze_top_layers > len(layers):
            raise TunelabError(
                f"method.unfreeze_top_layers={unfreeze_top_layers}, but the model has {len(layers)} layers."
            )
        for layer in layers[-unfreeze_top_layers:]:
            for p in layer.parameters():
                p.requires_grad_(True)
    if not any(p.requires_grad for p in model.parameters()):
        raise TunelabError(
            f"{type(model).__name__} has no head outside its backbone, so 'frozen' would train nothing; set "
            "method.unfreeze_top_layers."
        )
    return model
