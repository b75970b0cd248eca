"""What the benchmark scripts share. classify.py, ner.py, sft.py and demo.py time training arms (tunelab against
its baselines) through main(), the harness below; augment.py, doctor.py, ensemble.py, insight.py, serve.py and tune.py
use only its run_info, out_dir, cpu_line, machine and RESULTS.

Harness: one invocation = one parent process that never trains. It starts a fresh child process per arm and
repeat (so each arm's peak memory is its own), alternating arms A/B/C/A/B/C..., each repeat with its own
seed (0, 1, 2, ...): the repeats give the timing spread and the seed spread of quality at once.
A child runs one arm and writes one JSON with what the arm measured:

    tokens        real (non-padding) tokens trained on          samples      examples trained on
    train_s       seconds of the training loop (no setup/eval)  final_loss   mean train loss of the last 10 steps
    metric        validation metric after training              args         the exact arguments the tool used
    rss_loaded    RSS (bytes) once model and data are loaded

and the harness adds peak RSS (ru_maxrss), its rise over rss_loaded, and the child's wall time.
The parent prints medians (with min..max), ratios of tunelab to each baseline, an MFU estimate, writes all
of it as JSON under benchmarks/out/ and appends a row per arm to benchmarks/RESULTS.md.
`--smoke` writes to a temp dir and never touches RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent
RESULTS = Path(os.environ.get("TUNELAB_BENCH_RESULTS", ROOT / "RESULTS.md"))  # the tests point it elsewhere


# ------------------------------------------------------------------ child side


def rss() -> int:
    """Current resident set size in bytes."""
    import psutil

    return psutil.Process().memory_info().rss


def loaded_rss(model) -> int:
    """RSS with the model's weights really in memory. Weights loaded from safetensors are memory-mapped and page in
    on first use, which would otherwise count as the first training step's rise (~430 MB for SmolLM2-135M)."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.sum()  # reads every page of the tensor
    return rss()


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def train_tunelab(recipe: dict):
    """tunelab.train(recipe), instrumented the way every tunelab arm measures it (every task story calls fit through
    tunelab.tasks.common). When fit starts: the loop's start time and the RSS with model + data loaded (and the model,
    for FLOP counts); after each optimizer step: its time and the peak RSS so far. Returns (run, marks)."""
    import tunelab
    import tunelab.tasks.common as task

    marks: dict = {"steps": [], "peaks": []}
    fit = task.fit

    def timed_fit(model, *a, **k):  # instrumentation only
        marks["rss_loaded"], marks["model"] = loaded_rss(model), model
        marks["start"] = time.perf_counter()
        return fit(model, *a, **k)

    def on_step(step):
        marks["steps"].append(time.perf_counter())
        marks["peaks"].append(peak_rss())

    task.fit = timed_fit
    try:
        run = tunelab.train(recipe, show_progress=False, on_step=on_step)
    finally:
        task.fit = fit
    return run, marks


def loop_before_final_validation(marks: dict) -> tuple[float, int]:
    """(loop seconds, peak RSS) of a run whose last on_step follows its final validation: the mean time of steps
    1..N-1 x N, and the peak as of step N-1."""
    t, peaks = marks["steps"], marks["peaks"]
    if len(t) < 2:
        return t[-1] - marks["start"], peak_rss()
    return (t[-2] - marks["start"]) / (len(t) - 1) * len(t), peaks[-2]


def loop_timer(marks: dict):
    """A Trainer callback that marks the start of training and the end of each optimizer step in `marks`."""
    from transformers import TrainerCallback

    class LoopTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            marks["start"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            marks["end"] = time.perf_counter()

    return LoopTimer()


def run_child(arms: dict[str, Callable], args) -> None:
    import torch

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    result = arms[args.child](args)
    if result.get("skipped"):
        Path(args.result).write_text(json.dumps(result | {"arm": args.child}))
        return
    result["peak_rss"] = (
        result.pop("peak_rss_train", None) or peak_rss()
    )  # arms measure it right after training, before evaluation
    result |= {
        "arm": args.child,
        "seed": args.seed,
        "child_wall_s": time.perf_counter() - started,
        "threads": torch.get_num_threads(),
        "tunelab_file": _tunelab_file(),
    }
    result["rss_rise"] = result["peak_rss"] - result["rss_loaded"]
    Path(args.result).write_text(json.dumps(result, indent=1, default=str))


def _tunelab_file() -> str:
    import tunelab

    return tunelab.__file__


# ------------------------------------------------------------------ parent side


def fast_bf16() -> bool:
    """Whether tunelab's `precision: auto` picks bf16 here: the tuned baselines use bf16 exactly where tunelab would.
    (On a CPU without native bf16, e.g. AVX2-only Zen 3, bf16 matmuls are emulated at ~0.3 GFLOP/s.)"""
    import torch

    from tunelab.training.precision import has_fast_bf16

    return has_fast_bf16(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def tunelab_sections(args, *, work, batch: int, lr: float, weight_decay: float, warmup: int, **train) -> dict:
    """The optim and train sections of a tunelab arm's recipe: the same hyper-parameters trainer_args gives the
    Trainer arms (one epoch, linear decay after the warm-up, clipping at 1.0); `train` adds to the train section."""
    optim = {
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup_steps": warmup,
        "scheduler": "linear",
        "max_grad_norm": 1.0,
    }
    loop = {"batch_size": batch, "epochs": 1, "seed": args.seed, "output_dir": str(Path(work) / "run"),
            "log_every": min(10, args.steps)}  # fmt: skip
    return {"optim": optim, "train": loop | train}


def trainer_args(
    args, *, work: str, batch: int, eval_batch: int, lr: float, weight_decay: float, warmup: int, tuned: bool
) -> dict:
    """The TrainingArguments every Trainer arm gives: the harness's hyper-parameters, one epoch, no saving or
    evaluation in the loop; `tuned` adds the speed flags a knowledgeable user sets on a CPU (length grouping, and bf16
    only where tunelab's precision: auto would take it: emulated bf16 is ~600x slower than fp32)."""
    targs = dict(output_dir=work, per_device_train_batch_size=batch, per_device_eval_batch_size=eval_batch,
                 num_train_epochs=1, learning_rate=lr, weight_decay=weight_decay, lr_scheduler_type="linear",
                 warmup_steps=warmup, max_grad_norm=1.0, logging_steps=min(10, args.steps), save_strategy="no",
                 eval_strategy="no", report_to="none", seed=args.seed, use_cpu=True, disable_tqdm=True)  # fmt: skip
    if tuned:
        targs |= dict(bf16=fast_bf16(), train_sampling_strategy="group_by_length")
    return targs


def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": fast_bf16(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg()[0],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("tunelab", "torch", "transformers", "accelerate", "peft", "trl", "datasets"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def matmul_peak(n: int = 2048, seconds: float = 1.5) -> dict:
    """Measured matmul FLOP/s (fp32 and bf16, n x n), the denominator of MFU. bf16 only where it is native: emulated,
    one 2048 x 2048 bf16 matmul takes about a minute."""
    import torch

    out = {"bf16": None}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))[: 2 if fast_bf16() else 1]:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b  # warm-up
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            count += 1
        out[name] = 2 * n**3 * count / (time.perf_counter() - t0)
    return out


def base_parser(
    description: str, arms: list[str], steps: int, default_arms: list[str] | None = None
) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=steps, help="optimizer steps per arm (batch 32: samples = 32 x steps)")
    p.add_argument(
        "--repeats", type=int, default=3, help="child processes per arm, alternating arms; repeat i uses seed i"
    )
    p.add_argument("--arms", default=",".join(default_arms or arms), help="comma-separated, from: " + ", ".join(arms))
    p.add_argument("--smoke", action="store_true", help="tiny run into a temp dir; never writes RESULTS.md")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output dir (default benchmarks/out/<name>-<time>, a temp dir with --smoke)",
    )
    p.add_argument("--note", default="", help="free text stored with the results (e.g. what changed)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    return p


def run_parent(
    name: str,
    args,
    argv: list[str],
    script: str,
    flops: Callable[[dict], float] | None = None,
    reference: str = "tunelab",
    baselines: tuple[str, ...] = (),
    arm_functions: dict[str, Callable] | None = None,
) -> dict:
    """Every arm and repeat in a fresh child process; with --smoke (the tests' runs, where nothing is measured) in
    this process, when `arm_functions` are given: the same code, without a Python and torch start-up per arm."""
    out = args.out or (
        Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        if args.smoke
        else ROOT / "out" / f"{name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    )
    out.mkdir(parents=True, exist_ok=True)
    arms = [a for a in args.arms.split(",") if a]
    info = {
        "workload": name,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "argv": argv,
        "note": args.note,
    }
    info["matmul_peak_flops"] = matmul_peak(seconds=0.3 if args.smoke else 1.5)
    env = dict(os.environ)
    env["TUNELAB_CACHE"] = env.get("TUNELAB_CACHE") or str(out / "cache")
    runs, skipped = [], set()
    for r in range(args.repeats):
        for arm in [a for a in arms if a not in skipped]:  # alternate: A B C A B C ...
            path = out / f"{arm}-{r}.json"
            cmd = [sys.executable, script, *argv, "--child", arm, "--seed", str(r), "--result", str(path)]
            t0 = time.perf_counter()
            if args.smoke and arm_functions is not None:
                os.environ["TUNELAB_CACHE"] = env["TUNELAB_CACHE"]
                run_child(arm_functions, argparse.Namespace(**{**vars(args), "child": arm, "seed": r,
                                                               "result": str(path)}))  # fmt: skip
                proc = subprocess.CompletedProcess(cmd, 0, "", "")
            else:
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0 or not path.exists():
                sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
                raise SystemExit(f"arm {arm} (repeat {r}) failed with exit code {proc.returncode}")
            res = json.loads(path.read_text())
            if res.get("skipped"):
                print(f"  {arm}: skipped — {res['skipped']}", flush=True)
                runs.append(res)
                skipped.add(arm)
                continue
            res["wall_s"] = wall
            runs.append(res)
            print(
                f"  {arm} seed {r}: {res['tokens'] / res['train_s']:.0f} real tok/s, {res['train_s']:.1f} s loop, "
                f"{wall:.1f} s wall, loss {res['final_loss']:.4f}, {res['metric_name']} {res['metric']:.4f}",
                flush=True,
            )
    summary = summarise(runs, info["matmul_peak_flops"], flops)
    ratios = compare(summary, reference, [b for b in baselines if b in summary])
    info |= {"summary": summary, "ratios": ratios, "runs": runs}
    (out / "results.json").write_text(json.dumps(info, indent=1, default=str))
    print_table(info)
    if not args.smoke:
        append_results(info)
    print(f"\nJSON: {out / 'results.json'}" + ("" if args.smoke else f"; a row per arm appended to {RESULTS}"))
    return info


def _spread(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def summarise(runs: list[dict], peak: dict, flops: Callable[[dict], float] | None) -> dict:
    summary = {}
    for arm in dict.fromkeys(r["arm"] for r in runs):
        rs = [r for r in runs if r["arm"] == arm and not r.get("skipped")]
        if not rs:
            summary[arm] = {"skipped": next(r["skipped"] for r in runs if r["arm"] == arm)}
            continue
        s = {
            "tokens_per_s": _spread([r["tokens"] / r["train_s"] for r in rs]),
            "samples_per_s": _spread([r["samples"] / r["train_s"] for r in rs]),
            "train_s": _spread([r["train_s"] for r in rs]),
            "wall_s": _spread([r["wall_s"] for r in rs]),
            "peak_rss_mb": _spread([r["peak_rss"] / 2**20 for r in rs]),
            "rss_rise_mb": _spread([r["rss_rise"] / 2**20 for r in rs]),
            "final_loss": _spread([r["final_loss"] for r in rs]),
            "metric": _spread([r["metric"] for r in rs]),
            "metric_name": rs[0]["metric_name"],
            "tokens": rs[0]["tokens"],
            "samples": rs[0]["samples"],
            "precision": rs[0].get("precision", "?"),
            "args": rs[0].get("args", {}),
        }
        if len({(r["tokens"], r["samples"]) for r in rs}) > 1:
            s["warning"] = "arms saw different token/sample counts across repeats"
        if flops is not None:
            f = flops(rs[0])  # FLOPs of the whole run (same data every repeat)
            achieved = f / s["train_s"]["median"]
            s["mfu"] = {
                "flops": f,
                "achieved_flops_per_s": achieved,
                "vs_fp32_peak": achieved / peak["fp32"],
                "vs_bf16_peak": achieved / peak["bf16"] if peak["bf16"] else None,
            }
        summary[arm] = s
    return summary


def compare(summary: dict, reference: str, baselines: list[str]) -> dict:
    ref = summary.get(reference)
    if not ref or "skipped" in ref:
        return {}
    out = {}
    for b in baselines:
        base = summary[b]
        if "skipped" in base:
            continue
        if (base["tokens"], base["samples"]) != (ref["tokens"], ref["samples"]):
            out[f"{reference}/{b}_warning"] = (
                f"unequal work: {ref['tokens']}/{ref['samples']} vs {base['tokens']}/{base['samples']} tokens/samples"
            )
        out[f"{reference}/{b}"] = {
            "tokens_per_s": ref["tokens_per_s"]["median"] / base["tokens_per_s"]["median"],
            # spread of the ratio: worst and best pairing of the repeats
            "tokens_per_s_range": [
                ref["tokens_per_s"]["min"] / base["tokens_per_s"]["max"],
                ref["tokens_per_s"]["max"] / base["tokens_per_s"]["min"],
            ],
            "rss_rise": ref["rss_rise_mb"]["median"] / max(base["rss_rise_mb"]["median"], 1e-9),
            "metric_delta": ref["metric"]["mean"] - base["metric"]["mean"],
        }
    return out


def _fmt(s: dict, key: str, fmt: str) -> str:
    v = s[key]
    return f"{v['median']:{fmt}} ({v['min']:{fmt}}..{v['max']:{fmt}})"


def run_info(workload: str, args, **extra) -> dict:
    """What a one-process benchmark's results.json starts with: the workload, when, how it was called (argv, --note),
    the machine and the library versions; then its own fields."""
    return {"workload": workload, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "argv": sys.argv[1:], "note": getattr(args, "note", ""), "machine": machine(), "versions": versions(),
            **extra}  # fmt: skip


def out_dir(args, name: str) -> Path:
    """--out, or a scratch directory under --smoke, or benchmarks/out/<name>; created."""
    out = args.out or (Path(tempfile.mkdtemp()) if args.smoke else ROOT / "out" / name)
    out.mkdir(parents=True, exist_ok=True)
    return out


def cpu_line(m: dict) -> str:
    """The CPU a row was measured on: its vector unit, and whether it has native bf16 (what `precision: auto` reads)."""
    bf16 = "native bf16" if m.get("native_bf16") else "no native bf16 (fp32 everywhere)"
    return f"{m['cpu']}, {m['cores']} cores, {m.get('isa', '?')}, {bf16}"


def peaks_line(info: dict) -> str:
    peak = info["matmul_peak_flops"]
    bf16 = f"{peak['bf16'] / 1e9:.0f}" if peak.get("bf16") else "not measured (emulated)"
    return f"matmul peak fp32 {peak['fp32'] / 1e9:.0f} / bf16 {bf16} GFLOP/s"


def _mfu(mfu: dict | None, sep: str) -> str:
    if not mfu:
        return "-"
    bf16 = format(mfu["vs_bf16_peak"], ".1%") if mfu.get("vs_bf16_peak") is not None else "-"
    return f"{mfu['vs_fp32_peak']:.1%}{sep}{bf16}"


def print_table(info: dict) -> None:
    m = info["machine"]
    print(f"\n{info['workload']}  |  {cpu_line(m)}, torch {m['torch']}, {m['threads']} threads  |  {peaks_line(info)}")
    head = (
        f"{'arm':<16}{'real tok/s':>24}{'samples/s':>20}{'loop s':>20}{'wall s':>8}{'peak RSS MB':>13}{'rise MB':>9}"
        f"{'final loss':>12}{'metric (mean±sd)':>20}{'MFU fp32/bf16':>15}"
    )
    print(head)
    for arm, s in info["summary"].items():
        if "skipped" in s:
            print(f"{arm:<16}skipped: {s['skipped']}")
            continue
        mfu = s.get("mfu")
        print(
            f"{arm:<16}{_fmt(s, 'tokens_per_s', '.0f'):>24}{_fmt(s, 'samples_per_s', '.1f'):>20}"
            f"{_fmt(s, 'train_s', '.1f'):>20}"
            f"{s['wall_s']['median']:>8.1f}{s['peak_rss_mb']['median']:>13.0f}{s['rss_rise_mb']['median']:>9.0f}"
            f"{s['final_loss']['median']:>12.4f}{s['metric']['mean']:>13.4f}±{s['metric']['sd']:.4f}"
            f"{_mfu(mfu, '/'):>15}"
        )
    for k, v in info["ratios"].items():
        if isinstance(v, dict):
            lo, hi = v["tokens_per_s_range"]
            print(
                f"{k}: real tokens/s x{v['tokens_per_s']:.2f} (range x{lo:.2f}..x{hi:.2f}), RSS rise "
                f"x{v['rss_rise']:.2f}, metric delta {v['metric_delta']:+.4f}"
            )
        else:
            print(f"{k}: {v}")


def append_results(info: dict) -> None:
    m = info["machine"]
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nRows appended by `python benchmarks/<name>.py` (classify, ner, sft); the reading "
            "of them is at the top.\n\n"
        )
    lines = [
        f"\n### {info['workload']} — {info['date']} — {cpu_line(m)}, torch {m['torch']}, "
        f"{m['threads']} threads, "
        f"load avg {m['load_avg_at_start']:.1f} at start{' — ' + info['note'] if info['note'] else ''}\n",
        f"`{' '.join(info['argv']) or '(defaults)'}`; versions "
        f"{', '.join(f'{k} {v}' for k, v in info['versions'].items())}; "
        f"{peaks_line(info)}\n",
        "| arm | precision | real tok/s median (min..max) | samples/s | loop s | wall s | peak RSS MB | RSS rise MB | "
        "final loss | metric mean ± sd | MFU fp32/bf16 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, s in info["summary"].items():
        if "skipped" in s:
            lines.append(f"| {arm} | skipped: {s['skipped']} |||||||||| |")
            continue
        mfu = s.get("mfu")
        lines.append(
            f"| {arm} | {s['precision']} | {_fmt(s, 'tokens_per_s', '.0f')} | {s['samples_per_s']['median']:.1f} | "
            f"{s['train_s']['median']:.1f} | "
            f"{s['wall_s']['median']:.1f} | {s['peak_rss_mb']['median']:.0f} | {s['rss_rise_mb']['median']:.0f} | "
            f"{s['final_loss']['median']:.4f} | "
            f"{s['metric_name']} {s['metric']['mean']:.4f} ± {s['metric']['sd']:.4f} (n={s['metric']['n']}) | "
            + f"{_mfu(mfu, ' / ')} |"
        )
    for k, v in info["ratios"].items():
        if isinstance(v, dict):
            lo, hi = v["tokens_per_s_range"]
            lines.append(
                f"\n**{k}**: real tokens/s ×{v['tokens_per_s']:.2f} (×{lo:.2f}..×{hi:.2f}), RSS rise "
                f"×{v['rss_rise']:.2f}, metric Δ {v['metric_delta']:+.4f}"
            )
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main(
    name: str,
    description: str,
    arms: dict[str, Callable],
    steps: int,
    add_args: Callable | None = None,
    flops: Callable[[dict], float] | None = None,
    baselines: tuple[str, ...] = (),
    prepare: Callable | None = None,
    name_of: Callable | None = None,
    default_arms: list[str] | None = None,
) -> None:
    parser = base_parser(description, list(arms), steps, default_arms)
    if add_args:
        add_args(parser)
    args = parser.parse_args()
    if args.child:
        run_child(arms, args)
        return
    argv = sys.argv[1:]
    if prepare:
        prepare(args)  # once, in the parent (e.g. convert a model the children then load)
    run_parent(name_of(args) if name_of else name, args, argv, str(Path(sys.argv[0]).resolve()), flops,
               baselines=baselines, arm_functions=arms)  # fmt: skip
