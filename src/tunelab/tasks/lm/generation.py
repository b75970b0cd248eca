"""Generation-based evaluation of sft (and of preference runs): exact match, token F1, ROUGE-L and contains-answer
(tunelab.metrics.text, 0–100, SQuAD normalisation), base-vs-tuned rows, and a table of samples."""

from __future__ import annotations

from typing import Optional

from tunelab.metrics.text import text_metrics

GENERATION = ("exact_match", "token_f1", "rougeL", "contains_answer")  # the rows the reports show, in this order
# the test split's rows, where the run has them: sft and lm (perplexity), preference (pairs: metrics.py there)
TEST_ROWS = {
    "perplexity": "test perplexity (sft: of the reference answers)",
    "reward_accuracy": "reward accuracy (test pairs: chosen answer more likely per token)",
    "chosen_logp": "chosen answers' mean log-probability per token",
    "rejected_logp": "rejected answers' mean log-probability per token",
    "dpo_reward_accuracy": "DPO implicit-reward accuracy (0 for the starting model)",
    "reward_margin": "DPO implicit-reward margin (0 for the starting model)",
}


def generation_metrics(
    predictions: list[str], references: list[str], lengths: Optional[list[int]] = None, max_new_tokens=None
) -> dict:
    """sft's held-out generation metrics, each 0–100 (runs before them hold exact_match and contains_answer as
    0–1 fractions of the old normalisation), how many answers were generated and, given their lengths in tokens,
    gen_length and hit_max (the share, in %, cut at max_new_tokens: a bound too tight for the answers)."""
    m = text_metrics(predictions, references, which=("em", "f1", "rougeL", "contains"), lengths=lengths,
                     max_new_tokens=max_new_tokens)  # fmt: skip
    lengths_ = {k: m[k] for k in ("gen_length", "hit_max") if k in m}
    return {k: m[k] for k in GENERATION} | lengths_ | {"generated": len(predictions)}


def base_vs_tuned(metrics: dict) -> list[tuple[str, Optional[float], Optional[float]]]:
    """The base-vs-fine-tuned rows every report shows (the model card, the CLI's report): (what, base, fine-tuned)."""
    base, generation = metrics.get("base") or {}, metrics.get("generation") or {}
    test, base_test = metrics.get("test", {}), base.get("test", {})
    rows = [(what, base_test.get(key), test.get(key)) for key, what in TEST_ROWS.items() if key in test] or [
        (TEST_ROWS["perplexity"], base_test.get("perplexity"), test.get("perplexity"))
    ]
    if generation:
        n = generation.get("generated")
        scale = "0–100, " if "token_f1" in generation else ""  # an older run: 0–1 fractions, no token_f1 or rougeL
        for key in (k for k in GENERATION if k in generation):
            rows.append(
                (f"{key} ({scale}{n} held-out prompts)", base.get("generation", {}).get(key), generation.get(key))
            )
        for key, what in (("gen_length", "tokens per answer"), ("hit_max", "% of answers cut at max_new_tokens")):
            if key in generation:
                rows.append((f"{key} ({what})", base.get("generation", {}).get(key), generation[key]))
    return rows


def sample_table(
    prompts: list[str], references: list[str], predictions: list[str], limit: int = 10, width: int = 100
) -> str:
    """A Markdown table of the first `limit` samples: prompt, reference, prediction."""

    def cell(s: str) -> str:
        s = " ".join(s.split()).replace("|", "\\|")
        return s if len(s) <= width else s[: width - 1] + "…"

    rows = [f"| {cell(p)} | {cell(r)} | {cell(g)} |" for p, r, g in list(zip(prompts, references, predictions))[:limit]]
    return "\n".join(["| prompt | reference | prediction |", "|---|---|---|", *rows])
