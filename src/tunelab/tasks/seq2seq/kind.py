"""Which kind of model a text-to-text run trains, read from the model's own config (never a flag the user sets):
encoder-decoder (T5, BART, Marian, mT5: AutoModelForSeq2SeqLM) or decoder-only (AutoModelForCausalLM)."""

from __future__ import annotations


def is_encoder_decoder(model_config) -> bool:
    return bool(getattr(model_config, "is_encoder_decoder", False))


def auto_class_for(model_config) -> str:
    """The registry's `auto_class_for` hook of summarization and translation."""
    return "AutoModelForSeq2SeqLM" if is_encoder_decoder(model_config) else "AutoModelForCausalLM"
