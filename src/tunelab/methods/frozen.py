"""Frozen backbone: train the task head only, or the head plus the top k transformer layers.

An encoder-decoder (T5, BART) has two stacks: its top layers are the decoder's last blocks (nearest the output), so
`unfreeze_top_layers: k` trains the top k decoder blocks; the encoder, the embeddings and a head tied to them stay
frozen."""

from __future__ import annotations

import torch.nn as nn

from tunelab.errors import TunelabError


def backbone(model) -> nn.Module:
    """The model without its task head: its base model (model.bert, model.model), or, where the model keeps its parts
    at the top level (T5: shared, encoder and decoder beside lm_head), those parts."""
    base = getattr(model, model.base_model_prefix, None)
    if base is None:
        head = model.get_output_embeddings()
        base = nn.ModuleList(m for m in model.children() if m is not head)
    return base


def layer_stack(model) -> nn.ModuleList:
    """The transformer's list of layers: the ModuleList inside the backbone holding the most weights (a layer's own
    sub-lists, such as T5's three sub-layers per block, hold fewer); an encoder-decoder's decoder layers."""
    root = model.get_decoder() if getattr(model.config, "is_encoder_decoder", False) else backbone(model)
    lists = [m for m in root.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise TunelabError(
            f"{type(model).__name__}: cannot find its transformer layers to unfreeze; use method full or lora."
        )
    return max(lists, key=lambda m: sum(p.numel() for p in m.parameters()))


def freeze(model, unfreeze_top_layers: int = 0):
    base = backbone(model)
    for p in model.parameters():
        p.requires_grad_(True)
    for p in base.parameters():  # everything outside the backbone (the head) stays trainable
        p.requires_grad_(False)
    if unfreeze_top_layers:
        layers = layer_stack(model)
        if unfreeze_top_layers > len(layers):
            what = "decoder layers" if getattr(model.config, "is_encoder_decoder", False) else "layers"
            raise TunelabError(
                f"method.unfreeze_top_layers={unfreeze_top_layers}, but the model has {len(layers)} {what}."
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
