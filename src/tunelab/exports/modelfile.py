"""The Ollama `Modelfile` written beside a GGUF export: FROM the file, the chat template in Ollama's Go template
syntax, the run's default system prompt and the stop tokens its chat template ends a turn with.

Ollama has no Jinja: a ChatML template (`<|im_start|>role\\n...<|im_end|>\\n`, SmolLM2's and tunelab's fallback) is
written as the Go template below. Whether the run's template is ChatML is not guessed from its text: the run's Jinja
template is rendered for a few conversations and compared with `render_chatml`, this module's rendering of the Go
template's rules; only when all agree is the Go template written. Otherwise the Modelfile carries no TEMPLATE and
Ollama falls back to the chat template stored in the GGUF file. Nothing here runs Ollama.
"""

from __future__ import annotations

from typing import Optional

# Ollama's ChatML, the layout of the templates of its own library (qwen2.5): system messages arrive as .System (the
# Modelfile's SYSTEM when a request has none), a last assistant message is left open, a generation prompt follows a
# last user message. `render_chatml` below follows these rules in Python.
CHATML_GO = """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}"""

# conversations the run's template and the Go template's rules must render alike (markers no template contains)
_SYSTEM, _USER, _ANSWER, _USER2 = "SYSTEM-7f3a", "USER-7f3a", "ANSWER-7f3a", "USER2-7f3a"


def render_chatml(system: Optional[str], messages: list[dict]) -> str:
    """The prompt Ollama renders from CHATML_GO: `system` as .System, the user and assistant messages of `messages`."""
    text = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    turns = [m for m in messages if m["role"] in ("user", "assistant")]
    for i, m in enumerate(turns):
        last = i == len(turns) - 1
        if m["role"] == "user":
            text += f"<|im_start|>user\n{m['content']}<|im_end|>\n"
            if last:
                text += "<|im_start|>assistant\n"
        else:
            text += f"<|im_start|>assistant\n{m['content']}" + ("" if last else "<|im_end|>\n")
    return text


def default_system(tokenizer) -> Optional[str]:
    """The system prompt the run's chat template adds when a conversation has none (SmolLM2's), else None."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": _USER}], tokenize=False)
    head = "<|im_start|>system\n"
    if text.startswith(head) and "<|im_end|>" in text:
        return text[len(head) : text.index("<|im_end|>")]
    return None


def is_chatml(tokenizer) -> bool:
    """The run's chat template renders exactly what CHATML_GO renders (with its default system prompt), for a first
    question, one with a system prompt, and a second question after an answer; generation prompt added."""
    system = default_system(tokenizer)
    conversations = [
        [{"role": "user", "content": _USER}],
        [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _USER}],
        [
            {"role": "user", "content": _USER},
            {"role": "assistant", "content": _ANSWER},
            {"role": "user", "content": _USER2},
        ],
    ]
    for messages in conversations:
        given = next((m["content"] for m in messages if m["role"] == "system"), system)
        try:
            jinja = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # a template that refuses a system turn, or some order: not ChatML as Ollama renders it
            return False
        if jinja != render_chatml(given, messages):
            return False
    return True


def end_of_turn(tokenizer) -> list[str]:
    """The special tokens the run's chat template closes an assistant turn with (ChatML: <|im_end|>), in order."""
    if not tokenizer.chat_template:
        return []
    special = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    messages = [{"role": "user", "content": _USER}, {"role": "assistant", "content": _ANSWER}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    tail = text[text.rindex(_ANSWER) + len(_ANSWER) :]
    return sorted((t for t in special if t in tail), key=tail.index)


def modelfile(gguf_name: str, tokenizer, chat: bool = True, ends: tuple[str, ...] = ()) -> str:
    """The Modelfile's text for `ollama create NAME -f Modelfile` in the export folder. A chat run stops at its
    template's end-of-turn tokens, then at `ends` (the tokens that end an output of `tunelab generate`: EOS). A run that
    continues text (lm, `chat` False) gets the prompt as it is, as `tunelab generate` gives it, and stops at `ends`."""
    lines = [
        "# ollama create my-model -f Modelfile   (in this folder); then: ollama run my-model",
        f"FROM ./{gguf_name}",
    ]
    if chat and tokenizer.chat_template and is_chatml(tokenizer):
        lines.append(f'TEMPLATE """{CHATML_GO}"""')
        system = default_system(tokenizer)
        if system:
            lines.append(f'SYSTEM """{system}"""')
    elif chat and tokenizer.chat_template:
        lines.append(
            "# the run's chat template is not ChatML: Ollama reads the one in the GGUF file (tokenizer.chat_template)"
        )
    else:
        lines += ["# a text-continuation model: the prompt as it is", 'TEMPLATE """{{ .Prompt }}"""']
    stops = [t for t in dict.fromkeys([*(end_of_turn(tokenizer) if chat else []), *ends, tokenizer.eos_token]) if t]
    lines += [f'PARAMETER stop "{token}"' for token in stops]
    lines.append("PARAMETER temperature 0")  # greedy, as `tunelab generate` and the export's parity check decode
    return "\n".join(lines) + "\n"
