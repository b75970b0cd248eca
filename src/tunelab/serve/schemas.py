"""Request bodies, validated by pydantic: OpenAI's shapes for chat, completions and embeddings, tunelab's for the
task endpoints. A field OpenAI has and tunelab does not do (n > 1, tools, logprobs, ...) is refused by name rather
than ignored: a client that asks for tools and silently gets none is worse off than one told so."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

# OpenAI fields tunelab accepts only at their "off" value: anything else is a 400 that names the field
NEUTRAL = {
    "n": (1,),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "functions": (None, []),
    "function_call": (None, "none"),
    "parallel_tool_calls": (None,),
    "response_format": (None, {"type": "text"}),
    "best_of": (None, 1),
    "echo": (None, False),
    "suffix": (None, ""),
    "dimensions": (None,),
}
IGNORED = {"user", "metadata", "store", "service_tier", "prediction", "reasoning_effort", "modalities"}


class Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    def unsupported(self) -> list[str]:
        """Fields present with a value tunelab cannot honour."""
        extra = self.model_extra or {}
        return sorted(
            k
            for k, v in extra.items()
            if k not in IGNORED and (k not in NEUTRAL or not any(v == n for n in NEUTRAL[k]))
        )


class Sampling(Request):
    model: str
    max_tokens: Optional[int] = Field(
        None,
        ge=1,
        description="Default 128 (as `tunelab generate`); a summarization/translation run's own eval.max_new_tokens "
        "(as `tunelab predict`). Capped by the server.",
    )
    max_completion_tokens: Optional[int] = Field(None, ge=1, description="OpenAI's newer name for max_tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Default 0: greedy, as `tunelab generate`.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: Optional[Union[str, list[str]]] = Field(None, description="Up to 4 strings; the reply ends before the first.")
    seed: Optional[int] = Field(None, description="The same seed and request give the same tokens.")
    stream: bool = False
    stream_options: Optional[dict] = None

    def stops(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(s for s in stops if s)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[TextPart]]

    def as_template_message(self) -> dict:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatRequest(Sampling):
    messages: list[Message] = Field(..., min_length=1)


class CompletionRequest(Sampling):
    prompt: Union[str, list[str]]


class TextsRequest(Request):
    """/v1/classify, /v1/entities: one text or a list of them."""

    model: str
    input: Union[str, list[str]]

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbeddingsRequest(TextsRequest):
    encoding_format: Literal["float", "base64"] = "float"
