"""peak_rss_mb: the highest RSS of the run itself. A planted allocation inside the block is seen; one made and freed
before it is not (ru_maxrss, the process's peak, would carry it: tune workers, folds and test sessions run many)."""

from __future__ import annotations

import mmap
import resource
import time

import numpy as np

import tunelab
from tests.conftest import tiny_recipe
from tunelab.training.memory import PeakRSS, rss_bytes

MB = 2**20


def _hold(mb: int, seconds: float = 0.3) -> None:
    """mb MiB made resident for `seconds`, then given back. An anonymous mmap, not malloc: in a long test session the
    allocator may hand out freed pages that are still resident (no RSS rise); a fresh mapping is always new pages."""
    with mmap.mmap(-1, mb * MB) as block:
        view = np.frombuffer(block, dtype=np.uint8)
        view[:] = 1  # every page touched, so resident
        time.sleep(seconds)
        del view


def test_a_planted_allocation_is_the_peak_and_is_gone_from_the_next_block():
    base = rss_bytes()
    with PeakRSS() as peak:
        _hold(300, 0.5)
    assert peak.samples >= 5, "the sampling thread did not run while the block held its memory"
    assert peak.peak - base >= 280 * MB
    with PeakRSS() as after:
        time.sleep(0.1)
    assert after.peak < peak.peak - 250 * MB  # freed memory is not carried into the next run's peak


def test_run_json_records_the_run_peak_not_the_process_peak(tiny_bert, sentiment_csv, tmp_path):
    _hold(1000, 0.05)  # an earlier, bigger peak in the same process (as an earlier trial's)
    process_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    run = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", train={"max_steps": 4}),
                        show_progress=False)  # fmt: skip
    peak = run.info["peak_rss_mb"]
    assert isinstance(peak, int) and rss_bytes() / MB * 0.5 < peak < process_peak_mb - 400


def _generation_rise(model, tokenizer, n: int, options, rng) -> int:
    from tunelab.tasks.seq2seq.generation import generate

    prompts = [rng.integers(3, 40_000, size=int(rng.integers(8, 40))).tolist() for _ in range(n)]
    before = rss_bytes()
    with PeakRSS() as peak:
        texts, _ = generate(model, tokenizer, prompts, options, encoder_decoder=False)
    assert len(texts) == n
    return peak.peak - before


def test_generation_memory_is_flat_in_the_number_of_records(tiny_llama):
    """Evaluating 200 records takes no more memory than 20 (greedy's continuous batching, and the transformers
    generate path of beams and encoder-decoders): nothing per record is kept but its text. Keeping each step's
    logits (8 rows x 49,152 x 4 bytes) or each batch's outputs would add over 100 MB here and fail it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.tasks.seq2seq.generation import Options

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    rng = np.random.default_rng(0)
    for beams in (1, 2):
        options = Options(max_new_tokens=4, num_beams=beams, batch_size=8)
        _generation_rise(model, tokenizer, 20, options, rng)  # warm: the allocator's pools and the first caches
        small = _generation_rise(model, tokenizer, 20, options, rng)
        large = _generation_rise(model, tokenizer, 200, options, rng)
        assert large <= small + 24 * MB, (beams, small / MB, large / MB)
