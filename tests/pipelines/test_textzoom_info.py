"""textzoom-info: report, JSON, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from glyphsr.pipelines.textzoom_info import main
from tests.conftest import build_lmdb, encode, record, word_image


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_good_lmdb_exit_0_with_report(good_lmdb: Path) -> None:
    res = run(str(good_lmdb), "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["num_samples"] == 5 and s["good"] == 5 and s["bad"] == 0 and s["bad_records"] == []
    assert s["label_length_histogram"] == {"3": 1, "4": 1, "6": 1, "7": 1, ">15": 1}
    assert s["hr_size"]["width"] == {"min": 40, "median": 98.0, "max": 300}
    assert s["lr_size"]["height"]["max"] == 24
    assert s["formats"]["hr"] == {"PNG": 3, "JPEG": 2}
    text = run(str(good_lmdb))
    assert text.exit_code == 0 and "5 samples, 5 good, 0 bad" in text.output


def test_bad_records_exit_1_and_are_all_listed(tmp_path: Path) -> None:
    entries = {}
    for i in range(1, 5):
        entries.update(record(i, f"w{i}", encode(word_image("w", (60, 30))), encode(word_image("w", (30, 15)))))
    entries["image_hr-000000002"] = b"\x89PNG garbage"
    entries["label-000000003"] = b"\xc3\x28"
    path = build_lmdb(tmp_path / "bad", entries, "6")  # records 5 and 6 do not exist
    res = run(str(path), "--json")
    assert res.exit_code == 1
    s = json.loads(res.stdout)
    assert s["good"] == 2 and s["bad"] == 4
    assert [b["index"] for b in s["bad_records"]] == [2, 3, 5, 6]
    assert "image_hr-000000002 cannot be decoded" in s["bad_records"][0]["reason"]
    assert "not UTF-8" in s["bad_records"][1]["reason"]
    assert s["bad_records"][2]["reason"] == "missing key label-000000005"
    text = run(str(path))
    assert text.exit_code == 1 and "record 3:" in text.output and "record 6: missing key" in text.output


def test_not_textzoom_exit_2(tmp_path: Path) -> None:
    res = run(str(tmp_path / "missing"))
    assert res.exit_code == 2 and "no such file or directory" in res.output
    path = build_lmdb(tmp_path / "plain", {"a": b"b"}, None)
    res = run(str(path), "--json")
    assert res.exit_code == 2 and "num-samples" in json.loads(res.stdout)["error"]


def test_error_shows_a_bracketed_path_as_written(tmp_path: Path) -> None:
    """Messages are text, not rich markup: a folder named [exp1] is not swallowed as a style tag."""
    res = run(str(tmp_path / "[exp1]" / "train"))
    assert res.exit_code == 2 and "[exp1]" in res.output, res.output
