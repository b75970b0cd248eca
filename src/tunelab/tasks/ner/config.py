"""The recipe fields of the ner family: its `data` section, a subclass of the shared one in tunelab/config.py. The
registry names SECTIONS; config imports this module only when it validates a ner recipe (no torch here)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunelab.config import DataConfig, scoped

NER = scoped(tasks=("ner",))


class NerData(DataConfig):
    """Where the examples come from and how they are turned into model inputs."""

    tokens_column: str = Field(
        "tokens", description="JSONL: column with the list of words of a sentence.", json_schema_extra=NER
    )
    tags_column: str = Field(
        "tags", description="JSONL: column with one tag per word (CoNLL files: the last column).", json_schema_extra=NER
    )
    entities_column: str = Field(
        "entities",
        description="JSONL with raw `text_column`: list of {start, end, type} character spans (end exclusive).",
        json_schema_extra=NER,
    )
    tag_scheme: Literal["IOB2", "IOB1", "BIOES"] = Field(
        "IOB2", description="The scheme of the input tags; converted to IOB2 internally.", json_schema_extra=NER
    )
    strict_tags: bool = Field(
        False,
        description="Reject an I- tag that does not continue an entity (default: repair it to B- and count it).",
        json_schema_extra=NER,
    )
    label_all_subtokens: bool = Field(
        False,
        description="Train on every sub-token of a word (default: the first only; evaluation always uses the first).",
        json_schema_extra=NER,
    )
    stride: int = Field(
        32,
        ge=0,
        description="Tokens shared by consecutive windows of a sentence longer than max_length (at most half a "
        "window).",
        json_schema_extra=NER,
    )


SECTIONS = {"data": NerData}
