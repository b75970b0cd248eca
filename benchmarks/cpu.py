"""cpu: where this CPU stands — its matmul peaks, then tunelab against the Trainer / TRL on the demo, sft and ner work.

    python benchmarks/cpu.py                     # this machine as it is: about 40 minutes on a 2-core CPU
    python benchmarks/cpu.py --isa avx2          # the ISA held to AVX2 (an AVX2 laptop's figures, on any x86 CPU)
    python benchmarks/cpu.py --workloads classify --repeats 1 --steps 10    # a quick look

One invocation measures the machine (matmul peak in fp32 and bf16, and int8 where VNNI/AMX has it),
then runs the step-capped speed arms of three workloads, each through its own script and harness
(benchmarks/common.py: a fresh child process per arm and seed, arms alternating):

  classify  benchmarks/classify.py — the demo's work: MiniLM-L6 full fine-tuning on the movie-review snippets;
            tunelab vs transformers.Trainer with its defaults (fp32, random order) and tuned for this CPU
            (bf16 where it is native, fp32 where it is emulated, length grouping)
  sft       benchmarks/sft.py — SmolLM2-135M LoRA SFT on the chatterbot pairs; tunelab vs TRL's SFTTrainer defaults
            and TRL tuned (packing, bf16 where native)
  ner       benchmarks/ner.py — MiniLM-L6 token classification on WNUT-16; tunelab vs the Trainer, defaults and tuned

It prints, per arm: real (non-padding) tokens/s, MFU, peak RSS and the quality metric; the ratio of tunelab to each
baseline; and it appends one row per workload and arm to benchmarks/RESULTS.md with the CPU model, ISA and
precision (each workload's script appends its own detailed rows too).

MFU (model FLOPs utilisation) = useful FLOPs of the run / loop seconds / the measured matmul peak of the precision
the arm trained in (fp32 or bf16). Useful FLOPs count only real tokens (padding is waste, not work):
  full fine-tuning (classify):  6 x N x T + 12 x L x d x sum(len^2)
  LoRA (sft):                   4 x N x T + 12 x L x d x sum(len^2) + 4 x d x V x T_trained
where N = non-embedding parameters, T = real tokens, L = layers, d = width, len = each sequence's real length,
V = vocabulary and T_trained = the answer tokens the head is trained on (6 N T: forward 2 N T and backward 4 N T;
LoRA's frozen weights need no weight gradient, so 4 N T). ner.py has no FLOP count yet: its MFU shows "-".

--isa avx2 sets ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2 and MKL_ENABLE_INSTRUCTIONS=AVX2 for this process
and every arm before torch loads, so no AVX-512 or AMX kernel runs and tunelab's precision: auto (and the tuned
baselines) take fp32, as on a laptop without native bf16.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ISA_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}

# workload -> (script, its arms: tunelab first, then the baselines' defaults, then their tuned settings; steps)
WORKLOADS = {
    "classify": ("classify.py", ["tunelab", "trainer", "trainer_tuned"], 60),
    "sft": ("sft.py", ["tunelab", "trl", "trl_tuned"], 25),
    "ner": ("ner.py", ["tunelab", "trainer", "trainer_tuned"], 40),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--isa", choices=["native", "avx2"], default="native", help="hold the ISA to AVX2 (and fp32)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, from: " + ", ".join(WORKLOADS))
    p.add_argument("--repeats", type=int, default=3, help="seeds per arm (the quality spread: 3 for a claim)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per arm (default: each workload's own)")
    p.add_argument("--model", default=None, help="classify/ner model (a local directory; default the built-in)")
    p.add_argument("--sft-model", default=None, help="sft model (a local directory; default the built-in)")
    p.add_argument("--smoke", action="store_true", help="tiny runs into a temp dir; never writes RESULTS.md")
    p.add_argument("--out", type=Path, default=None, help="output dir (default benchmarks/out/cpu-<time>)")
    p.add_argument("--note", default="", help="free text stored with the results")
    return p.parse_args(argv)


def hold_isa(isa: str) -> None:
    """Before torch is imported anywhere in this process; the arms inherit the environment."""
    if isa == "avx2":
        os.environ.update(ISA_AVX2)


def peaks(seconds: float) -> dict:
    """Matmul FLOP/s: fp32 and bf16 from common.matmul_peak (bf16 only where native), and int8 (int8 x int8 ->
    int32, torch._int_mm) where this torch runs it on the CPU (VNNI/AMX make it fast; without them it is slow)."""
    import common
    import torch

    out = common.matmul_peak(seconds=seconds)
    out["int8"] = None
    if not int8_units():
        return out  # no VNNI / AMX: int8 products run on 16-bit multiply-adds, no faster than fp32 (not measured)
    n = 1024
    try:
        a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        torch._int_mm(a, b)
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            torch._int_mm(a, b)
            count += 1
        out["int8"] = 2 * n**3 * count / (time.perf_counter() - t0)
    except (RuntimeError, AttributeError, NotImplementedError):
        pass  # this torch has no CPU int8 matmul
    return out


def int8_units() -> list[str]:
    """The CPU's int8 dot-product units (Linux /proc/cpuinfo flags): AVX-512 VNNI, AVX-VNNI, AMX-INT8."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return [f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags]


def run_workload(name: str, args, out: Path) -> dict:
    script, arms, steps = WORKLOADS[name]
    argv = ["--arms", ",".join(arms), "--repeats", str(args.repeats), "--steps", str(args.steps or steps),
            "--out", str(out / name), "--note", f"benchmarks/cpu.py --isa {args.isa} {args.note}".strip()]  # fmt: skip
    model = args.sft_model if name == "sft" else args.model
    if model:
        argv += ["--model", model]
    if args.smoke:
        argv.append("--smoke")
    print(f"\n== {name}: {script} {' '.join(argv)}", flush=True)
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name(script)), *argv])
    if proc.returncode != 0:
        raise SystemExit(f"{script} failed with exit code {proc.returncode}")
    return json.loads((out / name / "results.json").read_text())


def rows(name: str, result: dict) -> list[dict]:
    """One row per arm: what the table and RESULTS.md show, with tunelab's ratio to it."""
    _, arms, _ = WORKLOADS[name]
    summary, ratios = result["summary"], result.get("ratios", {})
    out = []
    for arm in arms:
        s = summary.get(arm)
        if not s or "skipped" in s:
            continue
        mfu = s.get("mfu") or {}
        used = mfu.get("vs_bf16_peak") if s["precision"] == "bf16" else mfu.get("vs_fp32_peak")
        ratio = ratios.get(f"tunelab/{arm}", {}).get("tokens_per_s")
        out.append({
            "workload": name, "arm": arm, "precision": s["precision"],
            "tokens_per_s": s["tokens_per_s"]["median"], "mfu": used, "peak_rss_mb": s["peak_rss_mb"]["median"],
            "metric_name": s["metric_name"], "metric_mean": s["metric"]["mean"], "metric_sd": s["metric"]["sd"],
            "n": s["metric"]["n"], "tunelab_x": ratio,
        })  # fmt: skip
    return out


def table(machine: dict, peak: dict, all_rows: list[dict], isa: str) -> str:
    gf = lambda v: "-" if v is None else f"{v / 1e9:,.0f}"  # noqa: E731
    head = (
        f"{machine['cpu']}, {machine['cores']} cores, ISA {machine['isa']}"
        + (" (held to AVX2)" if isa == "avx2" else "")
        + f", native bf16 {'yes' if machine['native_bf16'] else 'no'}; matmul peak GFLOP/s: fp32 {gf(peak['fp32'])}"
        + f", bf16 {gf(peak['bf16'])}, int8 {gf(peak.get('int8'))}"
    )
    lines = [head, "", "| workload | arm | precision | real tok/s | MFU | peak RSS MB | metric mean ± sd (n) | "
             "tunelab x |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in all_rows:
        mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        x = "" if r["arm"] == "tunelab" or r["tunelab_x"] is None else f"x{r['tunelab_x']:.2f}"
        lines.append(
            f"| {r['workload']} | {r['arm']} | {r['precision']} | {r['tokens_per_s']:,.0f} | {mfu} | "
            f"{r['peak_rss_mb']:,.0f} | {r['metric_name']} {r['metric_mean']:.4f} ± {r['metric_sd']:.4f} ({r['n']}) | "
            f"{x} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    hold_isa(args.isa)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import common  # after hold_isa: it imports torch

    names = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; known: {', '.join(WORKLOADS)}")
    out = args.out or (
        Path(tempfile.mkdtemp(prefix="bench-cpu-"))
        if args.smoke
        else common.ROOT / "out" / f"cpu-{dt.datetime.now():%Y%m%d-%H%M%S}"
    )
    out.mkdir(parents=True, exist_ok=True)
    machine, t0 = common.machine(), time.perf_counter()
    peak = peaks(0.3 if args.smoke else 1.5)
    shown = {k: v and round(v / 1e9) for k, v in peak.items()}
    print(f"{machine['cpu']}: ISA {machine['isa']}, matmul peak GFLOP/s {json.dumps(shown)}", flush=True)
    all_rows = [r for name in names for r in rows(name, run_workload(name, args, out))]
    text = table(machine, peak, all_rows, args.isa)
    minutes = round((time.perf_counter() - t0) / 60, 1)
    info = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "isa": args.isa,
            "machine": machine, "versions": common.versions(), "matmul_peak_flops": peak, "rows": all_rows,
            "minutes": minutes, "argv": sys.argv[1:] if argv is None else argv}  # fmt: skip
    (out / "cpu.json").write_text(json.dumps(info, indent=1, default=str))
    print("\n" + text + f"\n\n{info['minutes']} minutes; JSON: {out / 'cpu.json'}")
    if not args.smoke:
        with open(common.RESULTS, "a", encoding="utf-8") as f:
            f.write(f"\n### cpu — {info['date']} — isa {args.isa} — {info['minutes']} min\n\n"
                    f"`{' '.join(info['argv'])}`{'; ' + args.note if args.note else ''}\n\n{text}\n")  # fmt: skip


if __name__ == "__main__":
    main()
