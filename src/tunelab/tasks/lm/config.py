"""The recipe fields of the generative family (sft, lm, mlm): its `data` and `eval` sections, subclasses of the
shared ones in tunelab/config.py. The registry names SECTIONS; config imports this module only when it validates a
recipe of the family (no torch here)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunelab.config import GENERATIVE, DataConfig, EvalConfig, scoped

SFT = scoped(tasks=("sft",))


class LmData(DataConfig):
    """Where the examples come from and how they are turned into model inputs."""

    format: Literal["auto", "messages", "prompt_response", "alpaca"] = Field(
        "auto",
        description="Columns of the file: messages (OpenAI chat), prompt/response, or Alpaca instruction/input/output; "
        "auto detects them.",
        json_schema_extra=SFT,
    )
    train_on: Literal["assistant", "all"] = Field(
        "assistant",
        description="Which tokens the loss trains on: the assistant's replies only, or the whole rendered chat.",
        json_schema_extra=SFT,
    )
    packing: bool = Field(
        False,
        description="Several samples per row (positions restart, no attention across samples). True increases speed "
        "(no padding).",
        json_schema_extra=scoped(tasks=("sft", "lm")),
    )
    overlong: Literal["truncate", "drop", "error"] = Field(
        "truncate",
        description="A conversation longer than max_length is cut (counted in the report), dropped (counted) or an "
        "error. lm and mlm cut documents into max_length pieces instead.",
        json_schema_extra=SFT,
    )
    text_field: str = Field(
        "text",
        description="The field holding the text in .jsonl/.csv/.parquet files (.txt files are read whole).",
        json_schema_extra=scoped(tasks=("lm", "mlm")),
    )
    mlm_probability: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="Share of tokens masked (80% [MASK], 10% random, 10% kept), drawn once with train.seed.",
        json_schema_extra=scoped(tasks=("mlm",)),
    )


class LmEval(EvalConfig):
    """Validation, early stopping and the final report."""

    compare_base: bool = Field(
        True,
        description="Also evaluate the base model on the test split, for a before/after comparison.",
        json_schema_extra=scoped(tasks=GENERATIVE),
    )
    num_generate: int = Field(
        64,
        ge=0,
        description="Held-out pairs answered by generation after training (exact match, token F1, ROUGE-L, "
        "contains-answer, sample table); 0: none.",
        json_schema_extra=SFT,
    )
    max_new_tokens: int = Field(
        48, gt=0, description="Generation length bound for the evaluation (longer = slower).", json_schema_extra=SFT
    )
    generate_batch_size: int = Field(
        16, gt=0, description="Prompts generated together (left-padded, KV cache).", json_schema_extra=SFT
    )


SECTIONS = {"data": LmData, "eval": LmEval}
