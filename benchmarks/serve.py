"""Serving benchmark: `tunelab serve` against the usual ways, one invocation, one load client for every arm.

    classify   N requests of one text each from C concurrent clients, against
               tunelab   `tunelab serve RUN` (dynamic batching)
               pipeline  a FastAPI endpoint calling a transformers `pipeline` per request (the usual baseline)
               -> requests/s, p50/p99 latency (and that both give the same labels)
    chat       P prompts from 8 concurrent clients to `tunelab serve` (decoded together with one KV cache), against
               sequential `generate` of the same prompts, one at a time (what `tunelab generate` does per prompt)
               -> aggregate generated tokens/s (and that the greedy answers are the same)

Each server runs in its own process on loopback; the load client (asyncio + httpx2) runs in this one, on the same
CPUs, for every arm. The runs are trained first for a few steps (throughput does not depend on what they learned),
or given with --classify-run / --chat-run. Appends its rows to benchmarks/RESULTS.md (not with --smoke).

    python benchmarks/serve.py                      # MiniLM classifier + SmolLM2-135M chat, ~5 minutes on 2 cores
    python benchmarks/serve.py --smoke --model-classify DIR --model-chat DIR   # what the tests run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, cpu_line, run_info  # noqa: E402

PROMPTS = [
    "What is the capital of France?", "Who wrote Hamlet?", "What is an atom?", "How many legs does a spider have?",
    "What is the largest planet?", "Who painted the Mona Lisa?", "What is photosynthesis?", "Why is the sky blue?",
    "What is a computer?", "Who was Albert Einstein?", "What is the speed of light?", "What do bees make?",
    "What is the boiling point of water?", "What is democracy?", "How do airplanes fly?", "What is an ocean?",
]  # fmt: skip
TEXTS = [
    "a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés.", "an utterly charming film.",
    "it's a cookie-cutter movie, a cut-and-paste job.", "a masterpiece four years in the making.",
    "the acting is stiff and the dialogue wooden.", "funny, touching and smart.", "a dull, tedious two hours.",
]  # fmt: skip

BASELINE_SERVER = """
import os
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

pipe = pipeline("text-classification", model=os.environ["BASELINE_MODEL"], device="cpu")
app = FastAPI()

class Body(BaseModel):
    model: str
    input: str

@app.post("/v1/classify")
def classify(body: Body):  # a plain def: FastAPI runs it in its thread pool, one request per call
    out = pipe(body.input)[0]
    return {"data": [{"text": body.input, "label": out["label"], "score": out["score"]}]}

@app.get("/health")
def health():
    return {"status": "ok"}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on loopback, up once /health answers."""

    def __init__(self, argv: list[str], port: int, env: dict | None = None):
        import httpx2

        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
        )
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx2.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server {argv} did not start: {self.proc.stderr.read()[-3000:]}")
            time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def tunelab_server(run: Path, name: str) -> Server:
    port = free_port()
    cli = [sys.executable, "-m", "tunelab.cli", "serve", "--name", f"{name}={run}", "--port", str(port)]
    return Server(cli + ["--max-queue", "4096"], port)


async def load(url: str, path: str, bodies: list[dict], clients: int) -> tuple[list[float], list[dict], float]:
    """`clients` concurrent clients send the bodies (each the next one left): latencies, answers in order, wall."""
    import httpx2

    todo = list(enumerate(bodies))
    latencies: list[float] = []
    answers: list = [None] * len(bodies)

    async def client(http):
        while todo:
            i, body = todo.pop(0)
            start = time.perf_counter()
            answer = await http.post(path, json=body)
            latencies.append(time.perf_counter() - start)
            answer.raise_for_status()
            answers[i] = answer.json()

    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return latencies, answers, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _median_runs(runs: list[dict]) -> dict:
    """One arm over its repeats: the median of each number, and the repeats themselves."""
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
    median = {k: statistics.median(r[k] for r in runs) for k in keys}
    counts = {k: runs[0][k] for k in keys if isinstance(runs[0][k], int)}  # requests, clients, prompts: the same
    return {**median, **counts, "repeats": len(runs), "runs": runs}


def classify_arms(run: Path, requests: int, clients: int, tmp: Path, repeats: int) -> dict:
    bodies = [{"model": "clf", "input": TEXTS[i % len(TEXTS)]} for i in range(requests)]
    (tmp / "baseline_server.py").write_text(BASELINE_SERVER)
    port = free_port()
    baseline = [sys.executable, "-m", "uvicorn", "--app-dir", str(tmp), "baseline_server:app", "--port", str(port),
                "--log-level", "warning"]  # fmt: skip
    arms = {
        "tunelab": lambda: tunelab_server(run, "clf"),
        "pipeline": lambda: Server(baseline, port, env={"BASELINE_MODEL": str(run / "model")}),
    }
    runs: dict[str, list] = {arm: [] for arm in arms}
    labels = {}
    for _ in range(repeats):  # arms alternate: a machine that slows down mid-way slows both
        for arm, start in arms.items():
            server = start()
            try:
                asyncio.run(load(server.url, "/v1/classify", bodies[: min(64, requests)], clients))  # warm-up
                latencies, answers, wall = asyncio.run(load(server.url, "/v1/classify", bodies, clients))
            finally:
                server.stop()
            labels[arm] = [a["data"][0]["label"] for a in answers]
            runs[arm].append({"requests": requests, "clients": clients, "wall_s": wall,
                              "requests_per_s": requests / wall, "p50_ms": 1000 * percentile(latencies, 0.5),
                              "p99_ms": 1000 * percentile(latencies, 0.99)})  # fmt: skip
    return {
        "arms": {arm: _median_runs(r) for arm, r in runs.items()},
        "same_labels": labels["tunelab"] == labels["pipeline"],
    }


SEQUENTIAL = """
import json, sys, time
import tunelab
gen = tunelab.load(sys.argv[1])
prompts, max_tokens = json.loads(sys.argv[2]), int(sys.argv[3])
gen.generate(prompts[0], max_new_tokens=4)  # warm-up
start = time.perf_counter()
answers = [gen.generate(p, max_new_tokens=max_tokens)[0] for p in prompts]  # one prompt at a time
print(json.dumps({"wall_s": time.perf_counter() - start, "answers": answers}))
"""


def chat_arms(run: Path, prompts: list[str], clients: int, max_tokens: int, repeats: int) -> dict:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    count = lambda texts: sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)  # noqa: E731
    bodies = [{"model": "bot", "messages": [{"role": "user", "content": p}], "max_tokens": max_tokens} for p in prompts]
    runs: dict[str, list] = {"tunelab": [], "sequential_generate": []}
    answers = {}
    for _ in range(repeats):  # arms alternate, as in classify
        server = tunelab_server(run, "bot")
        try:
            asyncio.run(load(server.url, "/v1/chat/completions", bodies[:clients], clients))  # warm-up
            latencies, replies, wall = asyncio.run(load(server.url, "/v1/chat/completions", bodies, clients))
        finally:
            server.stop()
        answers["tunelab"] = [a["choices"][0]["message"]["content"] for a in replies]
        runs["tunelab"].append({"prompts": len(prompts), "clients": clients, "wall_s": wall,
                                "tokens": count(answers["tunelab"]), "tokens_per_s": count(answers["tunelab"]) / wall,
                                "completion_tokens": sum(a["usage"]["completion_tokens"] for a in replies),
                                "p50_s": percentile(latencies, 0.5), "p99_s": percentile(latencies, 0.99)})  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-c", SEQUENTIAL, str(run), json.dumps(prompts), str(max_tokens)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        seq = json.loads(proc.stdout.strip().splitlines()[-1])
        answers["sequential_generate"] = seq["answers"]
        runs["sequential_generate"].append({"prompts": len(prompts), "clients": 1, "wall_s": seq["wall_s"],
                                            "tokens": count(seq["answers"]),
                                            "tokens_per_s": count(seq["answers"]) / seq["wall_s"]})  # fmt: skip
    return {"arms": {arm: _median_runs(r) for arm, r in runs.items()}, "max_tokens": max_tokens,
            "same_answers": answers["tunelab"] == answers["sequential_generate"]}  # fmt: skip


def quick_run(task: str, model: str, out: Path, smoke: bool) -> Path:
    """A run trained for a few steps: serving speed does not depend on what it learned."""
    import tunelab

    overrides = {"task": task, "model.name": model, "train.output_dir": str(out), "train.max_steps": 2 if smoke else 5,
                 "train.precision": "fp32"}  # fmt: skip
    if task in ("sft", "lm", "mlm"):  # fields of the generative family (another task would warn that it ignores them)
        overrides.update({"eval.compare_base": False, "eval.num_generate": 0})
    if task == "sft":
        overrides.update({"data.max_length": 128, "train.batch_size": 2})
    if smoke:
        overrides["data.max_length"] = 32
    return Path(tunelab.train(overrides=_nested(overrides), show_progress=False).dir)


def _nested(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def append_results(info: dict) -> None:
    m = info["machine"]
    c, g = info["classify"], info["chat"]
    lines = [
        f"\n### serve — {info['date']} — {cpu_line(m)}, torch {m['torch']}, {m['threads']} threads, load avg "
        f"{m['load_avg_at_start']:.1f} at start{' — ' + info['note'] if info['note'] else ''}\n",
        f"`{' '.join(info['argv']) or '(defaults)'}`; versions "
        f"{', '.join(f'{k} {v}' for k, v in info['versions'].items())}; fp32; server and client on the same cores; "
        f"medians of {c['arms']['tunelab']['repeats']} alternating repeats per arm\n",
        "| workload | arm | clients | requests/s | p50 | p99 | generated tok/s | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, r in c["arms"].items():
        lines.append(f"| classify, {r['requests']} requests of 1 text | {arm} | {r['clients']} | "
                     f"{r['requests_per_s']:.1f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | - | "
                     f"{r['wall_s']:.1f} |")  # fmt: skip
    for arm, r in g["arms"].items():
        p50 = f"{r['p50_s']:.2f} s" if "p50_s" in r else "-"
        p99 = f"{r['p99_s']:.2f} s" if "p99_s" in r else "-"
        lines.append(f"| chat, {r['prompts']} prompts, max {g['max_tokens']} tokens | {arm} | {r['clients']} | - | "
                     f"{p50} | {p99} | {r['tokens_per_s']:.1f} | {r['wall_s']:.1f} |")  # fmt: skip
    lines.append(
        f"\n**classify**: requests/s ×{info['ratios']['classify_throughput']:.2f} the pipeline server, p99 "
        f"×{info['ratios']['classify_p99']:.2f} (lower is better), same labels: {c['same_labels']}. "
        f"**chat**: generated tokens/s ×{info['ratios']['chat_tokens_per_s']:.2f} sequential generate, same greedy "
        f"answers: {g['same_answers']}"
    )
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classify-run", type=Path, help="A finished classification run (default: train one).")
    parser.add_argument("--chat-run", type=Path, help="A finished sft run (default: train one).")
    parser.add_argument("--model-classify", default="minilm", help="Encoder for the classification run it trains.")
    parser.add_argument("--model-chat", default="smollm2", help="Causal LM for the sft run it trains.")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--chat-clients", type=int, default=8)
    parser.add_argument("--chat-prompts", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="Alternating repeats per arm (medians reported).")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--only", choices=["classify", "chat"], help="One workload (for quick checks; no RESULTS.md row)."
    )
    parser.add_argument("--smoke", action="store_true", help="Tiny numbers; never writes RESULTS.md.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "serve")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.clients, args.chat_prompts, args.max_tokens, args.repeats = 40, 8, 8, 8, 1

    info = run_info("serve", args)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.only != "chat":
            clf = args.classify_run or quick_run("classification", args.model_classify, tmp / "clf", args.smoke)
            info["classify"] = classify_arms(clf, args.requests, args.clients, tmp, args.repeats)
        if args.only != "classify":
            bot = args.chat_run or quick_run("sft", args.model_chat, tmp / "bot", args.smoke)
            prompts = (PROMPTS * 8)[: args.chat_prompts]
            info["chat"] = chat_arms(bot, prompts, args.chat_clients, args.max_tokens, args.repeats)
    ratios = info["ratios"] = {}
    if "classify" in info:
        c = info["classify"]["arms"]
        ratios["classify_throughput"] = c["tunelab"]["requests_per_s"] / c["pipeline"]["requests_per_s"]
        ratios["classify_p99"] = c["tunelab"]["p99_ms"] / c["pipeline"]["p99_ms"]
    if "chat" in info:
        g = info["chat"]["arms"]
        ratios["chat_tokens_per_s"] = g["tunelab"]["tokens_per_s"] / g["sequential_generate"]["tokens_per_s"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(info, indent=2))
    print(f"CPU: {cpu_line(info['machine'])}")
    for workload in ("classify", "chat"):
        for arm, r in info.get(workload, {}).get("arms", {}).items():
            print(f"{workload:9s} {arm:20s} " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                         for k, v in r.items() if k != "runs"))  # fmt: skip
    print("  ".join(f"{k} x{v:.2f}" for k, v in ratios.items()),
          {k: info[w][k] for w, k in (("classify", "same_labels"), ("chat", "same_answers")) if w in info})  # fmt: skip
    if not args.smoke and not args.only:
        append_results(info)


if __name__ == "__main__":
    main()
