"""Table readers: CSV/TSV/JSONL/JSON/Parquet with line numbers for error messages."""

from tunelab.data.readers import read_table


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
