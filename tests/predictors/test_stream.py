"""Streaming prediction (predictors/stream.py, data/stream.py): windows aligned to row numbers, resume after a kill
byte for byte, shards that concatenate to the whole run, error records, and malformed files stopped at file:line."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, make_sentiment, tiny_recipe, write_csv
from tunelab.data.stream import TextFile, complete_records
from tunelab.errors import TunelabError
from tunelab.predictors.stream import parse_shard, predict_file, shard_rows

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)


class Fake:
    """A predictor whose answer is a function of the text alone; it records the lists of texts it is given."""

    def __init__(self):
        self.calls = []

    def predict(self, texts, batch_size=64):
        self.calls.append(list(texts))
        return [{"label": ("short", "long")[len(t) > 9], "score": len(t) / 7, "scores": {"n": len(t)}} for t in texts]


def texts(n: int) -> list[str]:
    """Texts of varied length, some with the characters CSV quotes (comma, quote, newline), some empty or blank."""
    out = []
    for i in range(n):
        if i % 41 == 7:
            out.append("" if i % 2 else "   ")
        elif i % 29 == 3:
            out.append(f'naïve, "quoted"\nsecond line {i}')
        else:
            out.append("word " * (i * 7 % 11) + str(i))
    return out


def write_input(path: Path, items: list[str]) -> Path:
    write_csv(path, [{"id": i, "text": t} for i, t in enumerate(items)])
    return path


def run(source, out, **kw) -> bytes:
    predict_file(Fake(), source, out, progress=False, **{"window": 64, **kw})
    return Path(out).read_bytes()


# ---------------------------------------------------------------------- the loop, with a fake predictor


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_resume_after_a_cut_anywhere_gives_the_uninterrupted_bytes(tmp_path, suffix):
    source = TextFile(write_input(tmp_path / "in.csv", texts(300)), "text")
    out = tmp_path / f"out{suffix}"
    whole = run(source, out)
    for cut in [0, 1, 5, *range(37, len(whole), len(whole) // 23), len(whole) - 1, len(whole)]:
        out.write_bytes(whole[:cut])  # a run killed after writing `cut` bytes: a torn last record, mostly
        assert run(source, out, resume=True) == whole, cut


def test_a_resumed_window_is_batched_as_in_the_uninterrupted_run(tmp_path):
    source = TextFile(write_input(tmp_path / "in.csv", texts(300)), "text")
    whole, resumed = Fake(), Fake()
    predict_file(whole, source, tmp_path / "a.jsonl", progress=False, window=64)
    lines = (tmp_path / "a.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "b.jsonl").write_text("".join(lines[:150]))  # row 150 is in window 2 (rows 128-191)
    predict_file(resumed, source, tmp_path / "b.jsonl", resume=True, progress=False, window=64)
    assert resumed.calls == whole.calls[2:]  # windows 2, 3, 4 again, each with the same texts in the same order
    assert all(call == sorted(call, key=len, reverse=True) for call in whole.calls)  # longest first
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_shards_concatenated_in_order_are_the_whole_run(tmp_path, suffix):
    source = TextFile(write_input(tmp_path / "in.csv", texts(1000)), "text")
    whole = run(source, tmp_path / f"whole{suffix}")
    for n in (1, 3, 7, 20):  # 20 shards of 16 windows: some empty
        parts = [run(source, tmp_path / f"{k}-{n}{suffix}", shard=(k, n)) for k in range(1, n + 1)]
        if suffix == ".csv":  # each shard has the header; keep the first
            parts = [parts[0], *(p[p.index(b"\n") + 1 :] for p in parts[1:])]
        assert b"".join(parts) == whole, n
    assert shard_rows(1000, (2, 3), 64) == (320, 640) and shard_rows(1000, (3, 3), 64) == (640, 1000)


def test_a_row_without_text_gets_an_error_record_and_the_run_goes_on(tmp_path):
    items = ["fine", "", "  ", "also fine"]
    (tmp_path / "in.jsonl").write_text(
        '{"text": "fine"}\n{"text": ""}\n\n{"text": "  "}\n{"other": 1}\n{"text": null}\n{"text": "also fine"}\n'
    )
    got = [json.loads(x) for x in run(TextFile(tmp_path / "in.jsonl", "text"), tmp_path / "o.jsonl").splitlines()]
    assert [r["row"] for r in got] == [0, 1, 2, 3, 4, 5]  # the blank line is no row
    assert got[1] == {"row": 1, "error": f"no text in column 'text' ({tmp_path / 'in.jsonl'}, line 2)"}
    assert [("error" in r) for r in got] == [False, True, True, True, True, False]
    assert got[5]["text"] == "also fine" and got[5]["label"] == "short"
    # CSV: the error column last, the prediction columns empty
    rows = list(csv.reader(run(TextFile(write_input(tmp_path / "in.csv", items), "text"), tmp_path / "o.csv")
                           .decode().splitlines()))  # fmt: skip
    assert rows[0] == ["row", "text", "label", "score", "scores", "error"]
    assert rows[2] == ["1", "", "", "", "", f"no text in column 'text' ({tmp_path / 'in.csv'}, line 3)"]
    assert rows[4][:3] == ["3", "also fine", "short"] and rows[4][4] == '{"n": 9}'


class Tagger:
    """Like a ner predictor: a list of spans per text."""

    def predict(self, texts, batch_size=64):
        return [[{"text": w, "type": "X", "start": t.index(w)} for w in t.split() if w.isdigit()] for t in texts]


class Writer:
    """Like a summarization/translation predictor: {"generated"}, reporting each batch to on_batch."""

    def __init__(self):
        self.reported = 0

    def predict(self, texts, batch_size=16, on_batch=None):
        for start in range(0, len(texts), batch_size):
            on_batch(len(texts[start : start + batch_size]))
            self.reported += len(texts[start : start + batch_size])
        return [{"generated": t.upper()} for t in texts]


def test_span_and_text_predictors_stream_too(tmp_path, capsys):
    source = TextFile(write_input(tmp_path / "in.csv", texts(200)), "text")
    predict_file(Tagger(), source, tmp_path / "ner.csv", window=64, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "ner.csv", encoding="utf-8", newline="")))
    assert list(rows[0]) == ["row", "text", "entities", "error"] and len(rows) == 200
    assert json.loads(rows[5]["entities"]) == [{"text": "5", "type": "X", "start": rows[5]["text"].index("5")}]
    writer = Writer()
    done = predict_file(writer, source, tmp_path / "gen.jsonl", batch_size=16, window=64)  # with its progress bar
    got = [json.loads(x) for x in (tmp_path / "gen.jsonl").read_text(encoding="utf-8").splitlines()]
    assert writer.reported == 200 - done.errors == 200 - sum("error" in r for r in got)
    assert all(r["generated"] == r["text"].upper() for r in got if "error" not in r)
    shown = capsys.readouterr().out  # the progress bar: rows done of the total, rows/s, ETA
    assert "predicting" in shown and "200/200" in shown and "rows/s" in shown and "ETA" in shown


def test_every_input_format_gives_the_same_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    items = [t for t in texts(200) if "\n" not in t]  # .txt: one text a line
    write_input(tmp_path / "in.csv", items)
    with open(tmp_path / "in.tsv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t").writerows([["text", "id"], *([t, i] for i, t in enumerate(items))])
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in items), encoding="utf-8")
    (tmp_path / "in.json").write_text(json.dumps([{"text": t} for t in items]), encoding="utf-8")
    pq.write_table(pa.table({"text": items}), tmp_path / "in.parquet", row_group_size=17)
    (tmp_path / "in.txt").write_text("".join(t + "\n" for t in items if t.strip()), encoding="utf-8")
    want = [t if t.strip() else None for t in items]
    for suffix in (".csv", ".tsv", ".jsonl", ".json", ".parquet"):
        source = TextFile(tmp_path / f"in{suffix}", "text")
        assert source.count() == len(items), suffix
        assert [r.text for r in source.rows()] == want, suffix
        assert [(r.row, r.text) for r in source.rows(50, 120)] == list(enumerate(want))[50:120], suffix
    txt = TextFile(tmp_path / "in.txt", "text")  # blank lines are no rows
    assert [r.text for r in txt.rows()] == [t for t in items if t.strip()] == [r.text for r in txt.rows(0, 10**6)]
    assert txt.count() == len([t for t in items if t.strip()])


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("a.csv", 'id,text\n1,fine\n2,"broken\n', "a.csv, line 3: malformed CSV"),
        ("b.csv", "id,text\n1,fine\n2,too,many\n3,fine\n", "b.csv, line 3: 3 fields but the header has 2"),
        ("c.jsonl", '{"text": "fine"}\n\n{"text": "x",}\n', "c.jsonl, line 3: not valid JSON"),
        ("d.jsonl", '{"text": "fine"}\n["text"]\n', "d.jsonl, line 2: expected a JSON object"),
        ("e.csv", b"id,text\n1,fine\n2,caf\xe9\n", "e.csv, line 3: bytes that are not UTF-8"),
        ("f.csv", "id,review\n1,fine\n", "f.csv: no column 'text'. It has: 'id', 'review'."),
    ],
)
def test_a_malformed_file_stops_at_once_with_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(TunelabError, match=message.replace("(", r"\(").replace("[", r"\[")):
        predict_file(Fake(), TextFile(path, "text"), tmp_path / "o.jsonl", progress=False)


def test_resume_refuses_the_output_of_another_input_or_shard(tmp_path):
    source = TextFile(write_input(tmp_path / "in.csv", texts(300)), "text")
    run(source, tmp_path / "s2.jsonl", shard=(2, 3))  # rows 64-191
    with pytest.raises(TunelabError, match="line 1: row 64 where row 0 comes next"):
        run(source, tmp_path / "s2.jsonl", resume=True, shard=(1, 3))
    assert complete_records(tmp_path / "s2.jsonl", 64).records == 128  # refused, not cut
    run(source, tmp_path / "s2.jsonl", resume=True, shard=(2, 3))  # the right shard: nothing left to do
    assert complete_records(tmp_path / "s2.jsonl", 64).records == 128


def test_bad_shards_and_resume_without_a_streaming_output_are_user_errors(tmp_path, monkeypatch, capsys):
    for bad in ("0/3", "4/3", "2", "a/b", "-1/2"):
        with pytest.raises(TunelabError, match=f"--shard {bad}: give K/N"):
            parse_shard(bad)
    assert parse_shard("3/3") == (3, 3)
    from tunelab.cli import main

    for args, message in [
        (["--input", "in.csv", "--resume"], "--resume continues or splits a file of predictions: give --input FILE"),
        (["--input", "in.csv", "--output", "o.json", "--resume"], "or .csv (not .json)"),
        (["x", "--output", "o.jsonl", "--shard", "1/2"], "--shard continues or splits"),
        (["--input", "in.csv", "--output", "o.csv", "--shard", "3/2"], "--shard 3/2: give K/N"),
    ]:
        monkeypatch.setattr(sys, "argv", ["tunelab", "predict", str(tmp_path / "no-run"), *args])
        with pytest.raises(SystemExit) as e:
            main()
        assert e.value.code == 2 and message in " ".join(capsys.readouterr().err.split()), args


# ---------------------------------------------------------------------- a tiny real run through the CLI


@pytest.fixture(scope="module")
def tiny_run(tiny_bert, tmp_path_factory) -> Path:
    import torch

    import tunelab

    d = tmp_path_factory.mktemp("stream-run")
    recipe = tiny_recipe(tiny_bert, write_csv(d / "train.csv", make_sentiment(64)), d / "run", train={"max_steps": 2})
    run = tunelab.train(recipe, show_progress=False).dir
    # one thread, here and in the child: a tiny model is all overhead, which a second thread on a busy CPU multiplies
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield run
    torch.set_num_threads(threads)


def cli(monkeypatch, capsys, *args) -> str:
    from tunelab.cli import main

    monkeypatch.setattr(sys, "argv", ["tunelab", *map(str, args), "--batch-size", "256"])
    with pytest.raises(SystemExit) as e:
        main()
    captured = capsys.readouterr()
    assert e.value.code == 0, captured.err
    return " ".join(captured.err.split())


def test_50k_rows_killed_mid_run_and_resumed_give_the_uninterrupted_file(tiny_run, tmp_path, monkeypatch, capsys):
    items = [r["text"] for r in make_sentiment(50_000, seed=1)]
    items[123], items[45_678] = "", " "
    source = write_input(tmp_path / "in.csv", items)
    whole, out = tmp_path / "whole.jsonl", tmp_path / "out.jsonl"
    said = cli(monkeypatch, capsys, "predict", tiny_run, "--input", source, "--output", whole)
    assert said == f"50000 predictions (2 of them error records: rows without text) -> {whole}"

    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])  # this tree's tunelab
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    args = [sys.executable, "-m", "tunelab.cli", "predict", str(tiny_run), "--input", str(source), "--output", str(out),
            "--batch-size", "256"]  # fmt: skip
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if out.exists() and out.stat().st_size > 0:  # a window written
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    assert proc.wait(30) == -signal.SIGKILL, proc.stderr.read().decode()
    at_kill = out.read_bytes()
    assert at_kill.count(b"\n") < 50_000  # killed mid-run (after its first window, mostly)

    said = cli(monkeypatch, capsys, "predict", tiny_run, "--input", source, "--output", out, "--resume")
    kept = at_kill.count(b"\n")  # complete records; a torn last one is cut
    assert said.startswith(f"{kept} kept, {50_000 - kept} predictions")
    assert out.read_bytes() == whole.read_bytes()

    # the records are what the run's predictor gives each text, in input order
    import tunelab

    records = [json.loads(line) for line in whole.read_text().splitlines()]
    assert [r["row"] for r in records] == list(range(50_000)) and "error" in records[123] and "error" in records[45_678]
    sample = [0, 1, 999, 1024, 30_000, 49_999]
    direct = tunelab.load(tiny_run).predict([items[i] for i in sample])
    for i, d in zip(sample, direct):
        assert records[i]["text"] == items[i] and records[i]["label"] == d["label"]
        assert records[i]["score"] == pytest.approx(d["score"], abs=1e-5)


def test_shards_of_a_real_run_through_the_cli(tiny_run, tmp_path, monkeypatch, capsys):
    items = [r["text"] for r in make_sentiment(3000, seed=2)]
    source = write_input(tmp_path / "in.csv", items)
    cli(monkeypatch, capsys, "predict", tiny_run, "--input", source, "--output", tmp_path / "whole.csv")
    parts = []
    for k in (1, 2):
        said = cli(monkeypatch, capsys, "predict", tiny_run, "--input", source, "--output", tmp_path / f"{k}.csv",
                   "--shard", f"{k}/2")  # fmt: skip
        assert said.endswith(f"(rows {(0, 1024)[k - 1]}-{(1023, 2999)[k - 1]} of shard {k}/2) -> {tmp_path}/{k}.csv")
        parts.append((tmp_path / f"{k}.csv").read_bytes())
    assert parts[0] + parts[1][parts[1].index(b"\n") + 1 :] == (tmp_path / "whole.csv").read_bytes()
