"""`tunelab generate` and `tunelab chat`: text from a fine-tuned causal LM (a run whose task generates)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tunelab.cli import render
from tunelab.errors import TunelabError


def generate(
    run: Path = typer.Argument(..., help="Run directory of an sft, lm, summarization or translation run."),
    prompts: List[str] = typer.Argument(
        ...,
        help="Prompts (sft: user messages, answered with the chat template; lm: text to continue; summarization, "
        "translation: source texts, put in the run's template).",
    ),
    max_new_tokens: int = typer.Option(128, help="Upper bound on generated tokens (generation also stops at EOS)."),
    temperature: float = typer.Option(0.0, help="0 = greedy; > 0 samples."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling: keep the smallest token set with this much probability."),
    seed: Optional[int] = typer.Option(None, help="Seed for sampling."),
):
    """Generate one answer per prompt with a fine-tuned causal LM."""

    generator = _generator(run)
    for prompt, answer in zip(
        prompts,
        generator.generate(
            list(prompts), max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed
        ),
    ):
        if len(prompts) > 1:
            render.out.print(f"[bold]> {prompt}[/bold]", highlight=False)
        print(answer)


def chat(
    run: Path = typer.Argument(..., help="Run directory of an sft run."),
    max_new_tokens: int = typer.Option(256, help="Upper bound on tokens per reply."),
    temperature: float = typer.Option(0.0, help="0 = greedy; > 0 samples."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling threshold."),
    system: Optional[str] = typer.Option(None, help="System message that starts the conversation."),
):
    """Talk to a fine-tuned chat model; replies stream as they are generated. Empty line or Ctrl-D ends."""

    generator = _generator(run)
    if not hasattr(generator, "stream"):  # a text-to-text run (summarization, translation): one text in, one out
        raise TunelabError(
            f'{run}: turns one text into another and does not chat. Use tunelab generate {run} "a text" (or '
            "tunelab predict, which also takes a file)."
        )
    messages = [{"role": "system", "content": system}] if system else []
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not line:
            break
        messages.append({"role": "user", "content": line})
        print("bot> ", end="", flush=True)
        reply = generator.stream(
            messages if generator.chat else line,
            lambda text: print(text, end="", flush=True),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
        )
        print()
        messages.append({"role": "assistant", "content": reply})


def _generator(run: Path):
    """The run's predictor, if its task generates text: the registry says so (its `generate` endpoint), before any
    model is loaded."""
    from tunelab import api
    from tunelab.registry import TASKS
    from tunelab.runs.rundir import RunDir

    task = RunDir(run).info.get("task")  # run.json's: not every predictor keeps its task
    family = TASKS.get(task)
    if family is None or "generate" not in family.endpoints:
        raise TunelabError(
            f"{run}: is a {task} run; generate and chat need an sft or lm run. Use `tunelab predict` for classifiers."
        )
    return api.load(run)
