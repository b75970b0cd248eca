"""The recipe fields of the text-to-text family (summarization, translation): its `data` and `eval` sections,
subclasses of the shared ones in tunelab/config.py, and DEFAULTS, the family's defaults where a recipe sets nothing
(the registry names both; config imports this module only when it validates a recipe of the family: no torch here)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from tunelab.config import DataConfig, EvalConfig, scoped

TEXT2TEXT = scoped(tasks=("summarization", "translation"))
TRANSLATION = scoped(tasks=("translation",))

# Where a recipe (or the command line) sets none of these, a laptop-sized run: LoRA, small batches (sources are long),
# and a LoRA learning rate. A {method: value} entry applies to that method only (full fine-tuning keeps 1e-4).
DEFAULTS = {"method.name": "lora", "train.batch_size": 8, "eval.batch_size": 16, "optim.lr": {"lora": 1e-3}}


class Text2TextData(DataConfig):
    """Where the examples come from and how they are turned into model inputs."""

    source_column: str = Field(
        "source", description="Column holding the source text (a document, a sentence).", json_schema_extra=TEXT2TEXT
    )
    target_column: str = Field(
        "target", description="Column holding the target text (a summary, a translation).", json_schema_extra=TEXT2TEXT
    )
    prompt: Optional[str] = Field(
        None,
        description="Template of the model's input over the record's columns: {source} (the source column) and any "
        "other column, e.g. {aspect}. Default: the built-in dataset's, or the task's (translation: from "
        "source_lang/target_lang when given).",
        json_schema_extra=TEXT2TEXT,
    )
    source_lang: Optional[str] = Field(
        None,
        description="Language of the sources: an ISO 639-1 code (fr) or a name; it goes into the default template.",
        json_schema_extra=TRANSLATION,
    )
    target_lang: Optional[str] = Field(
        None,
        description="Language of the targets: an ISO 639-1 code (en) or a name; it goes into the default template.",
        json_schema_extra=TRANSLATION,
    )
    max_source_tokens: int = Field(
        384,
        gt=0,
        description="Longer sources are cut to this many tokens (counted in the report).",
        json_schema_extra=TEXT2TEXT,
    )
    max_target_tokens: int = Field(
        128,
        gt=0,
        description="Longer targets are cut to this many tokens for training (counted in the report).",
        json_schema_extra=TEXT2TEXT,
    )
    packing: bool = Field(
        False,
        description="Decoder-only models: several pairs per row (positions restart, no attention across pairs). True "
        "increases speed (no padding).",
        json_schema_extra=TEXT2TEXT,
    )


class Text2TextEval(EvalConfig):
    """Validation, early stopping and the final report."""

    compare_base: bool = Field(
        True, description="Also score the base model (zero-shot) on the test split, once.", json_schema_extra=TEXT2TEXT
    )
    num_generate: int = Field(
        64,
        ge=0,
        description="Validation records generated at each validation (a fixed sample) for ROUGE/BLEU/chrF; the test "
        "split is generated in full at the end. 0: validation by loss only.",
        json_schema_extra=TEXT2TEXT,
    )
    max_new_tokens: int = Field(
        128, gt=0, description="Generation length bound (longer = slower).", json_schema_extra=TEXT2TEXT
    )
    generate_batch_size: int = Field(
        16, gt=0, description="Records generated together (batched by length, KV cache).", json_schema_extra=TEXT2TEXT
    )
    num_beams: int = Field(1, gt=0, description="Beam search width; 1 = greedy (fastest).", json_schema_extra=TEXT2TEXT)
    length_penalty: float = Field(
        1.0, description="Beam search: >1 favours longer outputs, <1 shorter.", json_schema_extra=TEXT2TEXT
    )
    no_repeat_ngram_size: int = Field(
        0, ge=0, description="Never repeat an n-gram of this size in an output (0: off).", json_schema_extra=TEXT2TEXT
    )
    bleu_tokenize: Optional[Literal["13a", "zh", "char", "intl", "ja-mecab", "ko-mecab", "flores200", "none"]] = Field(
        None,
        description="sacrebleu's BLEU tokenisation: default 13a; zh for Chinese, char for other languages without "
        "spaces, intl for Unicode punctuation.",
        json_schema_extra=TEXT2TEXT,
    )


SECTIONS = {"data": Text2TextData, "eval": Text2TextEval}
