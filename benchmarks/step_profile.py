"""step_profile: where a training step's time goes — matmuls against everything else (issue 34: what bounds MFU).

    python benchmarks/step_profile.py                          # the demo recipe, 20 steps profiled after 10
    python benchmarks/step_profile.py --isa avx2               # the ISA held to AVX2 (as benchmarks/cpu.py --isa avx2)
    python benchmarks/step_profile.py --recipe recipes/sft_smollm2_lora.yaml --skip 3 --steps 5
    python benchmarks/step_profile.py --smoke --model DIR    # a tiny local HF model, 64 texts

One process: tunelab.train() on the recipe, capped at skip + 2 + steps optimizer steps; torch.profiler records the
`steps` optimizer steps after the first `skip` (start-up, the first allocations) and one warm-up step; the last step
and the validation after it stay outside. The operators' own CPU time (self time, children excluded) is summed by kind:

  matmul      mm, addmm, bmm, baddbmm, linear's products and mkldnn's: the work MFU counts
  attention   scaled dot-product attention, forward and backward (its products and softmax fused)
  optimizer   the fused AdamW step, gradient clipping's norms, zeroing the gradients
  embedding   embedding look-ups and their (dense) backward
  elementwise everything else: layer norms, GELU, dropout, softmax, adds, copies, casts, the loss, the reductions

and printed as shares of the profiled self time with the step's wall time and the top operators. The profile is the
"show what bounds it" of issue 34: what is not matmul is time MFU cannot count. Appends a section to
benchmarks/RESULTS.md (never under --smoke). The profiler itself adds a little time per operator call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (standard library only at import: torch loads after the ISA is held)

KINDS = {
    "attention": ("scaled_dot_product", "flash_attention", "_efficient_attention"),
    "matmul": (
        "aten::mm",
        "aten::addmm",
        "aten::bmm",
        "aten::baddbmm",
        "aten::_addmm_activation",
        "mkldnn_",
        "aten::linear",
        "aten::matmul",
    ),  # fmt: skip
    "optimizer": ("adam", "optimizer", "clip_grad", "_foreach_norm", "aten::zero_", "zero_grad"),
    "embedding": ("embedding",),
}


def kind(name: str) -> str:
    lowered = name.lower()
    for k, needles in KINDS.items():
        if any(n.lower() in lowered for n in needles):
            return k
    return "elementwise"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default=None, help="a recipe file (default: the demo's)")
    p.add_argument("--model", default=None, help="model.name override (a local HF directory for --smoke)")
    p.add_argument("--skip", type=int, default=10, help="optimizer steps before the profiled ones")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps profiled")
    p.add_argument("--isa", choices=["native", "avx2"], default="native", help="hold the ISA to AVX2 (and fp32)")
    p.add_argument("--top", type=int, default=12, help="operators listed")
    p.add_argument("--smoke", action="store_true", help="tiny run; never writes RESULTS.md")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--note", default="")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    if args.isa == "avx2":
        from cpu import ISA_AVX2  # the same three variables, before torch loads

        os.environ.update(ISA_AVX2)
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    import tunelab

    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    # one step more than profiled: the run's last step is followed by its final validation, which stays outside
    overrides = {"train.max_steps": args.skip + 2 + args.steps, "train.output_dir": str(work / "run")}
    if args.model:
        overrides["model.name"] = args.model
    if args.smoke:
        overrides["data.limit"] = 64
    stamps: list[float] = []
    prof = profile(
        activities=[ProfilerActivity.CPU], schedule=schedule(wait=args.skip, warmup=1, active=args.steps, repeat=1)
    )

    def on_step(step: int) -> None:
        stamps.append(time.perf_counter())
        prof.step()

    prof.start()
    run = tunelab.train(args.recipe, overrides=overrides, show_progress=False, on_step=on_step)
    prof.stop()

    rows = [(e.key, e.self_cpu_time_total, e.count) for e in prof.key_averages()]
    total = sum(t for _, t, _ in rows) or 1
    shares: dict[str, float] = {}
    for name, t, _ in rows:
        shares[kind(name)] = shares.get(kind(name), 0.0) + t / total
    profiled = stamps[args.skip : args.skip + 1 + args.steps]  # the end of the warm-up step, then each profiled one
    step_s = (profiled[-1] - profiled[0]) / (len(profiled) - 1) if len(profiled) > 1 else float("nan")
    top = sorted(rows, key=lambda r: -r[1])[: args.top]
    info = {
        **common.run_info("profile", args, recipe=args.recipe or "demo", isa=args.isa),
        "precision": (run.info.get("preprocessing") or {}).get("precision", "?"),
        "threads": torch.get_num_threads(),
        "step_s": step_s,
        "shares": dict(sorted(shares.items(), key=lambda kv: -kv[1])),
        "top": [{"op": n, "share": t / total, "calls_per_step": c / args.steps, "kind": kind(n)} for n, t, c in top],
    }
    text = report(info)
    print(text)
    out = common.out_dir(args, "profile-" + time.strftime("%Y%m%d-%H%M%S"))
    (out / "results.json").write_text(json.dumps(info, indent=2))
    if not args.smoke:
        with open(common.RESULTS, "a", encoding="utf-8") as f:
            date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            f.write(f"\n### profile — {date} — {common.cpu_line(info['machine'])}, {info['threads']} threads — "
                    f"{args.note}\n\n`{' '.join(sys.argv[1:])}`\n\n```\n{text}\n```\n")  # fmt: skip
    return info


def report(info: dict) -> str:
    lines = [f"profile of {info['recipe']} | {common.cpu_line(info['machine'])} | isa {info['isa']} | "
             f"{info['precision']} | {info['threads']} threads",
             f"step: {info['step_s'] * 1000:.0f} ms wall (mean over the profiled steps)",
             "self CPU time by kind: " + ", ".join(f"{k} {v:.1%}" for k, v in info["shares"].items()),
             f"{'operator':<48} {'share':>7} {'calls/step':>10}  kind"]  # fmt: skip
    lines += [f"{t['op'][:48]:<48} {t['share']:>7.1%} {t['calls_per_step']:>10.1f}  {t['kind']}" for t in info["top"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
