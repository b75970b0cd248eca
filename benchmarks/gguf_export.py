"""GGUF benchmark: llama.cpp (llama-cpp-python) on a run's GGUF exports against `tunelab generate` on the run itself,
the same held-out prompts (those the export was checked on), greedy.

    equal    llama.cpp's greedy answer (f16 file) == `tunelab generate`'s (the run's model, fp32), prompt by prompt
             (the text each prints: special tokens dropped, cut at the run's end-of-turn tokens)
    speed    generated tokens/s, one prompt at a time: llama.cpp f16, llama.cpp q8_0 (where given), tunelab generate

Needs llama-cpp-python (pip install -e ".[llamacpp]": it builds llama.cpp from source with cmake, several minutes).

    tunelab export RUN --format gguf --out exports/f16
    tunelab export RUN --format gguf --quantize q8_0 --out exports/q8_0
    python benchmarks/gguf_export.py RUN --f16 exports/f16 --q8 exports/q8_0 --prompts 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="The run directory the exports were made from.")
    parser.add_argument("--f16", type=Path, required=True, help="Its f16 export folder (tunelab export --format gguf).")
    parser.add_argument("--q8", type=Path, default=None, help="Its q8_0 export folder (speed only).")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument(
        "--check-data", type=Path, default=None, help="Held-out prompts (default: the run's test split)."
    )
    parser.add_argument("--out", type=Path, default=None, help="Write results.json there.")
    args = parser.parse_args()
    try:
        import llama_cpp
    except ImportError:
        sys.exit('llama-cpp-python is not installed: pip install -e ".[llamacpp]" (builds llama.cpp with cmake).')

    import tunelab
    from tunelab.exports.gguf import _chat, encode, held_out
    from tunelab.models.decode import stop_ids

    generator = tunelab.load(args.run)
    tokenizer, chat = generator.tokenizer, _chat(args.run)
    stops = set(stop_ids(generator.model, tokenizer))
    prompts = [p for p, _ in held_out(args.run, args.check_data)[: args.prompts]]
    ids = [encode(tokenizer, p, "", chat)[0] for p in prompts]

    def llama_cpp_answers(folder: Path) -> tuple[list[str], float, int]:
        name = json.loads((folder / "manifest.json").read_text())["files"][0]
        llm = llama_cpp.Llama(str(folder / name), n_ctx=2048, n_threads=os.cpu_count(), verbose=False)
        texts, tokens, seconds = [], 0, 0.0
        for prompt in ids:
            out, start = [], time.perf_counter()
            for token in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, repeat_penalty=1.0, reset=True):
                if token in stops:
                    break
                out.append(token)
                if len(out) == args.max_new_tokens:
                    break
            seconds += time.perf_counter() - start
            tokens += len(out)
            texts.append(tokenizer.decode(out, skip_special_tokens=True).strip())
        return texts, seconds, tokens

    results = {}
    ours, tunelab_tokens, start = [], 0, time.perf_counter()
    for prompt in prompts:
        ours += generator.generate([prompt], max_new_tokens=args.max_new_tokens, batch_size=1)
    seconds = time.perf_counter() - start
    tunelab_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in ours)
    results["tunelab generate"] = {
        "seconds": seconds,
        "tokens": tunelab_tokens,
        "tokens_per_s": tunelab_tokens / seconds,
    }
    for label, folder in (("llama.cpp f16", args.f16), ("llama.cpp q8_0", args.q8)):
        if folder is None:
            continue
        texts, seconds, tokens = llama_cpp_answers(folder)
        results[label] = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}
        if label == "llama.cpp f16":
            same = [a == b for a, b in zip(texts, ours)]
            results["equal"] = {"prompts": len(same), "same": sum(same),
                                "differ": [{"prompt": str(p)[:200], "tunelab": a, "llama.cpp": b}
                                           for p, a, b, s in zip(prompts, ours, texts, same) if not s]}  # fmt: skip
    print(json.dumps(results, indent=2, ensure_ascii=False))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    if results.get("equal", {}).get("same") != len(prompts):
        sys.exit(1)


if __name__ == "__main__":
    main()
