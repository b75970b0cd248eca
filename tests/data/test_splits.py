"""Deduplication and the seeded, stratified train/validation/test split."""

from collections import Counter

from tunelab.config import load_config
from tunelab.data.splits import dedupe, split
from tunelab.tasks.classify.data import read_records


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
