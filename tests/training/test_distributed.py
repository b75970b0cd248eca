"""Two processes (torchrun, gloo) give the same losses and the same update as one process at the same global batch,
on one "machine" and on two (two torchrun agents on loopback); a process killed mid-run stops the others within
distributed.timeout_s with its rank named. The torchrun commands are the README's "Scaling out" ones, as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from safetensors.torch import load_file

from tests.conftest import tiny_lm_recipe, tiny_recipe

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)

README = Path(__file__).parents[2] / "README.md"


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}  # as the fixtures left it (the run index under tmp)


def readme_commands() -> dict[str, list[str]]:
    """The torchrun lines of the README's "Scaling out" first code block: one node, fsdp, nodes (several machines)."""
    section = README.read_text().split("## Scaling out", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    lines = [shlex.split(line) for line in block.splitlines() if line.startswith("torchrun ")]
    kind = lambda a: "fsdp" if "distributed.strategy=fsdp" in a else "nodes" if "--nnodes" in a else "one node"  # noqa: E731
    kinds = {kind(a): a for a in lines}
    assert len(kinds) == len(lines) == 3, block
    return kinds


def torchrun(kind: str, recipe: Path, port: int | None = None) -> list[str]:
    """The README's command of that kind, for `recipe` (the head node on loopback at `port`), without a progress bar."""
    argv = readme_commands()[kind]
    assert argv[0] == "torchrun" and "recipe.yaml" in argv
    subs = {"recipe.yaml": str(recipe), "$HEAD:29500": f"127.0.0.1:{port}"}
    return [sys.executable, "-m", "torch.distributed.run", *(subs.get(a, a) for a in argv[1:]), "--quiet"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nodes(recipe: Path, *sets: str, logs: Path | None = None) -> list[subprocess.Popen]:
    """Two "machines" on this one: the README's multi-node line started twice, each in its own process group."""
    command = [*torchrun("nodes", recipe, free_port()), *(a for s in sets for a in ("--set", s))]
    return [
        subprocess.Popen(
            command,
            env=env(),
            start_new_session=True,
            stdout=subprocess.DEVNULL if logs is None else open(logs / f"node{n}.log", "w"),
            stderr=subprocess.STDOUT,
        )
        for n in range(2)
    ]


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    """Their exit codes; any still running after `timeout` seconds is killed with its workers (its process group)."""
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(deadline - time.monotonic(), 0.1)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)


def run_one_and_two(recipe_of, tmp_path, nodes: bool = False) -> dict:
    """Train the same recipe in one process and under torchrun with two (gloo): the run directories. `nodes`: also
    as two one-process "machines" (the README's multi-node line, twice, on loopback)."""
    import yaml

    names = ("one", "two", "nodes") if nodes else ("one", "two")
    paths = {}
    for name in names:
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(recipe_of(tmp_path / name)))
    subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "train", str(paths["one"]), "--quiet"], check=True, env=env(), timeout=300
    )
    subprocess.run(torchrun("one node", paths["two"]), check=True, env=env(), timeout=300)
    if nodes:
        assert wait_all(start_nodes(paths["nodes"]), timeout=300) == [0, 0]
    return {name: tmp_path / name for name in paths}


def losses(run_dir):
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def assert_same_weights(one, two, atol=2e-5):
    a, b = load_file(one / "model" / "model.safetensors"), load_file(two / "model" / "model.safetensors")
    for key in a:
        np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), atol=atol, err_msg=key)


def test_two_processes_match_one(tiny_bert, sentiment_csv, tmp_path):
    """Two processes on one machine, and two machines of one process each (c10d rendezvous on loopback)."""
    runs = run_one_and_two(
        lambda out: tiny_recipe(tiny_bert, sentiment_csv, out, train={"max_steps": 4, "num_threads": 1}),
        tmp_path,
        nodes=True,
    )
    assert len(losses(runs["one"])) == 4
    m1 = json.loads((runs["one"] / "metrics.json").read_text())
    for name in ("two", "nodes"):
        np.testing.assert_allclose(losses(runs[name]), losses(runs["one"]), rtol=1e-5, err_msg=name)
        assert_same_weights(runs["one"], runs[name])
        m2 = json.loads((runs[name] / "metrics.json").read_text())
        assert m1["test"]["n"] == m2["test"]["n"]  # the test set is split across processes, then reduced
        assert abs(m1["test"]["loss"] - m2["test"]["loss"]) < 1e-4
        assert m1["validation"] == pytest.approx(m2["validation"], rel=1e-5), name
        assert json.loads((runs[name] / "run.json").read_text())["distributed"] == {
            "strategy": "ddp",
            "processes": 2,
            "launcher": "torchrun",
        }


def test_two_processes_match_one_for_lora_sft(tiny_llama, chat_jsonl, tmp_path):
    """Token-normalised loss over both processes' micro-batches: the same update as one process (LoRA, packed chats)."""
    recipe = lambda out: tiny_lm_recipe(  # noqa: E731
        tiny_llama,
        chat_jsonl,
        out,
        method={"name": "lora", "r": 4, "dropout": 0.0},
        data={"packing": True},
        train={"max_steps": 3, "batch_size": 4, "log_every": 1},
    )
    runs = run_one_and_two(recipe, tmp_path)
    assert len(losses(runs["one"])) == 3
    np.testing.assert_allclose(losses(runs["two"]), losses(runs["one"]), rtol=1e-5)
    assert_same_weights(runs["one"], runs["two"])
    m1 = json.loads((runs["one"] / "metrics.json").read_text())
    m2 = json.loads((runs["two"] / "metrics.json").read_text())
    assert m1["test"]["tokens"] == m2["test"]["tokens"] and abs(m1["test"]["loss"] - m2["test"]["loss"]) < 1e-4


def test_a_killed_process_stops_the_others_with_its_rank(tiny_bert, sentiment_csv, tmp_path):
    """Two machines; rank 1 is killed (-9) after the first logged step. Rank 0 stops at once, exit 1, with one
    paragraph naming rank 1, not a traceback, and both launchers exit non-zero within distributed.timeout_s."""
    import yaml

    recipe, out = tmp_path / "recipe.yaml", tmp_path / "run"
    train = {"max_steps": 100_000, "num_threads": 1, "eval_every": 100_000}  # runs until killed
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_bert, sentiment_csv, out, train=train)))
    nodes = start_nodes(recipe, "distributed.timeout_s=20", logs=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().strip()):
            assert time.monotonic() < deadline and all(p.poll() is None for p in nodes), "no step logged"
            time.sleep(0.1)
        workers = [w for p in nodes for w in psutil.Process(p.pid).children(recursive=True)]
        (victim,) = [w for w in workers if w.environ().get("RANK") == "1"]
        victim.kill()
        killed = time.monotonic()
    finally:
        codes = wait_all(nodes, timeout=20 + 15)  # the timeout, and the launchers' own shutdown
    took = time.monotonic() - killed
    logs = "\n".join((tmp_path / f"node{n}.log").read_text() for n in range(2))
    assert all(code != 0 for code in codes) and took < 20, (codes, took, logs)
    said = re.search(r"error: (rank 0: .*)", logs)
    assert said and "lost the connection to rank 1" in said.group(1), logs
    assert "[rank0]: Traceback" not in logs  # the survivor's error is one paragraph
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and info["error"].startswith("rank 0: lost the connection to rank 1")
    print(f"survivors exited {took:.1f} s after the kill: {said.group(1)}")


def test_the_readmes_fsdp_line_is_the_one_test_fsdp_runs():
    """test_fsdp.py launches the README's one-node line with --set distributed.strategy=fsdp: its FSDP line."""
    from tests.training.test_fsdp import TORCHRUN

    commands = readme_commands()
    assert commands["fsdp"] == [*commands["one node"], "--set", "distributed.strategy=fsdp"]
    assert TORCHRUN[3:] == commands["one node"][1 : commands["one node"].index("-m")]


def test_the_timeout_reaches_the_process_group_and_failures_name_the_ranks(monkeypatch, capsys, tmp_path):
    """distributed.timeout_s on the group, also one made before; peer_lost's paragraphs for gloo's two failures (a
    peer gone, a peer silent for the timeout) and nothing for other errors; under torchrun an error names its rank."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    from tests.test_errors import run_cli
    from tunelab.training.distributed import make_accelerator, peer_lost

    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    try:
        make_accelerator(timeout_s=17)
        assert dist.group.WORLD._get_backend(torch.device("cpu")).options._timeout == timedelta(seconds=17)
        reset = RuntimeError(
            "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [10.0.0.7]:63706: Connection reset "
            "by peer. This is typically caused by a remote worker hanging or bugs in the application."
        )
        timeout = RuntimeError(
            "[/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 17000ms for recv "
            "operation to complete"
        )
        assert peer_lost(reset) is None  # one process: no peer to lose
        monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
        lost = peer_lost(reset)
        assert lost.exit_code == 1 and str(lost).startswith("rank 0: lost the connection to rank 1 (the other "
                                                            "process) at 10.0.0.7: it stopped")  # fmt: skip
        try:  # as the loop meets it: wrapped in another error
            raise ValueError("during backward") from timeout
        except ValueError as e:
            said = str(peer_lost(e))
        assert said.startswith("rank 0: no answer from rank 1 (the other process) within distributed.timeout_s (17 s)")
        assert peer_lost(ValueError("label 'x' is not a class")) is None
        assert peer_lost(RuntimeError("[c10d] collective mismatch: rank 1 called all_reduce, rank 0 barrier")) is None
        monkeypatch.setattr(dist, "get_world_size", lambda group=None: 4)
        assert str(peer_lost(reset)).startswith("rank 0: lost the connection to another process at 10.0.0.7")
    finally:
        dist.destroy_process_group()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    code, text = run_cli(monkeypatch, capsys, "train", tmp_path / "missing.yaml")
    assert code == 2 and "error: rank 1: " in text, text
