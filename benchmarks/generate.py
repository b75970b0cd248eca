"""Generation benchmark: how text-to-text runs generate (greedy) against transformers' generate, same prompts, same
model, one invocation.

    tunelab   tasks/seq2seq/generation.generate: continuous batching (a finished row leaves, the next prompt joins),
              the prompts' common head (system prompt, instruction) prefilled once, skinny-input matmuls
    batched   transformers' generate on batches of the same size sorted by prompt length (what the Hugging Face
              examples and evaluation loops do), left-padded, each row stopping at its EOS
    -> wall seconds and generated tokens/s of each, the ratio, and how many outputs are identical (greedy, fp32:
       all of them, but for the rare token a matmul's order of summation flips).

The prompts are the Bible test split (French -> English, 268 verses) in the translate_fr_en recipe's template, for the
built-in SmolLM2-135M-Instruct (untuned: its outputs vary in length, the case continuous batching is for).

    python benchmarks/generate.py                   # all 268 prompts, ~10 minutes on 2 cores (fp32)
    python benchmarks/generate.py --prompts 16 --smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, cpu_line, run_info  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=None, help="The first N test prompts (default: all).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--smoke", action="store_true", help="Never writes RESULTS.md.")
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    import torch

    from tunelab.config import load_config
    from tunelab.models.load import load_text_generator, load_tokenizer, plain, resolve
    from tunelab.tasks.seq2seq.data import pair_splits, template
    from tunelab.tasks.seq2seq.encode import PromptFormat, encode
    from tunelab.tasks.seq2seq.generation import Options, batched, generate
    from tunelab.training.precision import resolve as resolve_precision

    cfg = load_config({"task": "translation", "model": {"name": args.model}, "data": {"limit": 1}})
    local = plain(resolve(cfg.model))
    tokenizer = load_tokenizer(local)
    model = load_text_generator(local, cfg.model, "AutoModelForCausalLM").eval()
    fmt = PromptFormat(template(cfg), False, bool(tokenizer.chat_template), 160)
    test = pair_splits(cfg).test[: args.prompts]
    prompts = [item["prompt_ids"] for item in encode(test, tokenizer, fmt, 128)[1]]
    precision = resolve_precision("auto", torch.device("cpu"))
    options = Options(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)

    results = {}
    for arm, run in (("tunelab", generate), ("batched", batched)):
        start = time.perf_counter()
        outputs, lengths = run(model, tokenizer, prompts, options, False, precision)
        wall = time.perf_counter() - start
        results[arm] = {"wall_s": wall, "tokens": sum(lengths), "tokens_per_s": sum(lengths) / wall,
                        "outputs": outputs}  # fmt: skip
        print(f"{arm:8s} {wall:7.1f} s  {sum(lengths):6d} tokens  {sum(lengths) / wall:6.1f} tokens/s", flush=True)
    same = sum(a == b for a, b in zip(results["tunelab"]["outputs"], results["batched"]["outputs"]))
    ratio = results["batched"]["wall_s"] / results["tunelab"]["wall_s"]
    print(f"tunelab is {ratio:.2f}x faster; {same} of {len(prompts)} outputs identical ({precision})")

    info = run_info("generate", args, precision=precision, prompts=len(prompts), ratio=ratio, identical=same,
                    arms={k: {x: v for x, v in r.items() if x != "outputs"} for k, r in results.items()})  # fmt: skip
    print(json.dumps({k: v for k, v in info.items() if k != "versions"}, indent=1)[:2000])
    if not args.smoke:
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(
                f"\n### generate — {info['date']} — {cpu_line(info['machine'])}, {precision}\n\n"
                f"{len(prompts)} Bible test prompts (translate_fr_en template), SmolLM2-135M-Instruct untuned, greedy, "
                f"max {args.max_new_tokens} new tokens, {args.batch_size} rows at a time.\n\n"
                "| arm | wall s | generated tokens | tokens/s |\n|---|---|---|---|\n"
                + "".join(
                    f"| {arm} | {r['wall_s']:.1f} | {r['tokens']} | {r['tokens_per_s']:.1f} |\n"
                    for arm, r in results.items()
                )  # fmt: skip
                + f"\ntunelab {ratio:.2f}x faster than transformers' generate on length-sorted batches; {same} of "
                f"{len(prompts)} outputs identical.\n"
            )


if __name__ == "__main__":
    main()
