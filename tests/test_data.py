from collections import Counter

import numpy as np
import pytest

from tunelab.config import load_config
from tunelab.data.classify import build_label_space, read_records
from tunelab.data.readers import read_table
from tunelab.data.sampler import StepSampler, micro_batches
from tunelab.data.splits import dedupe, split
from tunelab.errors import TunelabError


def test_sms_spam_duplicates_are_dropped_before_a_stratified_split():
    splits = read_records(load_config({"data": {"dataset": "sms_spam"}}))
    texts = [r["text"] for part in (splits.train, splits.validation, splits.test) for r in part]
    assert len(texts) == len(set(texts)) == 4522
    assert splits.dropped_duplicates == 4837 - 4522
    share = lambda part: Counter(r["label"] for r in part)["spam"] / len(part)  # noqa: E731
    assert abs(share(splits.train) - share(splits.test)) < 0.01
    assert abs(len(splits.test) / 4522 - 0.1) < 0.002


def test_movie_reviews_drop_neutral_and_split_80_10_10():
    splits = read_records(load_config({}))
    assert {r["label"] for r in splits.train} == {"positive", "negative"}
    n = len(splits.train) + len(splits.validation) + len(splits.test)
    assert n == 10566 and abs(len(splits.validation) - n * 0.1) < 3


def test_split_is_seeded():
    rows = list(range(100))
    assert split(rows, (0.1, 0.1), seed=1) == split(rows, (0.1, 0.1), seed=1)
    assert split(rows, (0.1, 0.1), seed=1) != split(rows, (0.1, 0.1), seed=2)
    assert dedupe([{"t": 1}, {"t": 1}, {"t": 2}], key=lambda r: r["t"])[1] == 1


def test_training_seed_does_not_move_the_split():
    """Runs that differ only in train.seed (ensembles, seed spreads) are validated and tested on the same examples."""

    def test_texts(**sections):
        return [r["text"] for r in read_records(load_config({"data": {"dataset": "sms_spam"}, **sections})).test]

    assert test_texts(train={"seed": 1}) == test_texts(train={"seed": 2})
    assert test_texts(data={"dataset": "sms_spam", "split_seed": 1}) != test_texts(
        data={"dataset": "sms_spam", "split_seed": 2}
    )


def test_step_sampler_covers_every_example_once_per_epoch_and_is_deterministic():
    lengths = list(np.random.default_rng(0).integers(3, 60, 103))
    s = StepSampler(lengths, batch_size=10, seed=3)
    batches = s.epoch(0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    assert len(batches) == s.steps_per_epoch() == 11
    assert all((a == b).all() for a, b in zip(batches, s.epoch(0)))
    assert not all((a == b).all() for a, b in zip(batches, s.epoch(1)))
    # grouping: a step's examples have similar lengths (less padding than random batches)
    spread = np.mean([np.ptp(np.asarray(lengths)[b]) for b in batches])
    random_spread = np.mean(
        [np.ptp(np.asarray(lengths)[b]) for b in StepSampler(lengths, 10, 3, group_by_length=False).epoch(0)]
    )
    assert spread < random_spread / 2
    mbs = micro_batches(batches[0], 3, lengths)
    assert [len(m) for m in mbs] == [3, 3, 3, 1]


def test_readers_keep_line_numbers(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "x", "label": 1}\n\n{"text": "y", "label": 0}\n')
    assert [r.line for r in read_table(tmp_path / "a.jsonl").rows] == [1, 3]
    (tmp_path / "a.tsv").write_text("text\tlabel\nhello\t1\nbye\t0\n")
    assert read_table(tmp_path / "a.tsv").rows[1].values == {"text": "bye", "label": "0"}


def test_parquet_and_json_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["a", "b"], "label": [1, 0]}), tmp_path / "d.parquet")
    assert read_table(tmp_path / "d.parquet").rows[1].values == {"text": "b", "label": 0}
    (tmp_path / "d.json").write_text('[{"text": "a", "label": "x"}]')
    assert read_table(tmp_path / "d.json").columns == ["text", "label"]


def _cfg(tmp_path, **data):
    return load_config({"data": data})


def test_unseen_validation_label_is_an_error(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\na,x\nb,y\nc,x\n")
    (tmp_path / "v.csv").write_text("text,label\nd,x\ne,z\n")
    cfg = _cfg(
        tmp_path,
        train=str(tmp_path / "t.csv"),
        validation=str(tmp_path / "v.csv"),
        test=str(tmp_path / "t.csv"),
        dedupe=False,
    )
    with pytest.raises(TunelabError, match=r"v.csv, line 3: label 'z' in the validation data never occurs in training"):
        build_label_space(read_records(cfg), "classification")


def test_multilabel_and_regression_labels(tmp_path):
    (tmp_path / "m.csv").write_text("text,label\na,x|y\nb,y\nc,\nd,x\n")
    cfg = load_config(
        {"task": "multilabel", "data": {"train": str(tmp_path / "m.csv"), "validation_fraction": 0, "test_fraction": 0}}
    )
    splits = read_records(cfg)
    space = build_label_space(splits, "multilabel")
    assert space.names == ["x", "y"] and space.encode(["x", "y"]) == [1.0, 1.0] and space.encode([]) == [0.0, 0.0]
    (tmp_path / "r.csv").write_text("text,label\na,1.5\nb,oops\n")
    with pytest.raises(TunelabError, match=r"r.csv, line 3: label 'oops' .* not a finite number"):
        read_records(load_config({"task": "regression", "data": {"train": str(tmp_path / "r.csv")}}))
