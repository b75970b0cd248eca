"""How a text-to-text run reports itself: base (zero-shot) vs fine-tuned on the test split, examples side by side,
and how to generate with plain transformers (the model card; the CLI's report reads the same rows)."""

from __future__ import annotations

from tunelab.tasks.seq2seq.encode import PROMPT_FILE, PromptFormat

ROWS = (
    "rougeL",
    "rouge1",
    "rouge2",
    "rougeLsum",
    "chrf",
    "bleu",
    "exact_match",
    "token_f1",
    "gen_length",
    "hit_max",
    "perplexity",
)


def base_vs_tuned(metrics: dict) -> list[tuple[str, object, object]]:
    """(metric, base, fine-tuned) of the test split, for the card and the CLI's report."""
    base, tuned = (metrics.get("base") or {}).get("test", {}), metrics.get("test", {})
    return [(k, base.get(k), tuned.get(k)) for k in ROWS if k in tuned or k in base]


def comparison(metrics: dict, fmt: PromptFormat) -> str:
    """The card's sections: base vs fine-tuned on the test split, examples side by side, and how to generate."""
    fmt_value = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    n = metrics.get("test", {}).get("generated")
    text = (
        f"\n## Base model (zero-shot) vs fine-tuned, test split ({n} records, 0–100)\n"
        "| metric | base | fine-tuned |\n|---|---|---|\n"
        + "\n".join(f"| {k} | {fmt_value(b)} | {fmt_value(t)} |" for k, b, t in base_vs_tuned(metrics))
        + "\n"
    )
    for key in ("bleu_signature", "chrf_signature"):
        if metrics.get("test", {}).get(key):
            text += f"\n{key.replace('_', ' ')}: `{metrics['test'][key]}`"
    cell = lambda s: "—" if s is None else " ".join(str(s).split()).replace("|", "\\|")[:300]  # noqa: E731
    if metrics.get("examples"):
        text += (
            "\n\n## Examples (test split, greedy)\n| source | reference | base | fine-tuned |\n|---|---|---|---|\n"
            + "\n".join(
                f"| {cell(e['source'])} | {cell(e['reference'])} | {cell(e['base'])} | {cell(e['tuned'])} |"
                for e in metrics["examples"]
            )
            + "\n"
        )
    return text + usage(fmt)


def usage(fmt: PromptFormat) -> str:
    """How to use the model with plain transformers (there is no summarization/translation pipeline in transformers
    5): the class, the prompt template (also in model/prompt_template.json) and generate."""
    auto = "AutoModelForSeq2SeqLM" if fmt.encoder_decoder else "AutoModelForCausalLM"
    if fmt.encoder_decoder:
        inputs = "tok(prompt, return_tensors='pt')"
        decode = "tok.decode(out[0], skip_special_tokens=True)"
    elif fmt.chat:
        inputs = (
            "tok.apply_chat_template([{'role': 'user', 'content': prompt}], add_generation_prompt=True, "
            "return_tensors='pt', return_dict=True)"
        )
        decode = "tok.decode(out[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True)"
    else:
        inputs = "tok(prompt + '\\n', return_tensors='pt')"
        decode = "tok.decode(out[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True)"
    return (
        "\n\n## Use with transformers\n```python\nimport json\n"
        f"from transformers import AutoTokenizer, {auto}\n"
        f"tok, model = AutoTokenizer.from_pretrained('model'), {auto}.from_pretrained('model')\n"
        f"template = json.load(open('model/{PROMPT_FILE}'))['template']  # {fmt.template[:60]!r}...\n"
        "prompt = template.format(source='your text')\n"
        f"inputs = {inputs}\n"
        "out = model.generate(**inputs, max_new_tokens=128)\n"
        f"print({decode})\n```\n"
    )
