"""Tests of ``iqabench data show`` / ``data check`` and :func:`check_datasets`."""

import json

from iqabench.cli import main
from iqabench.commands.data import CHECK_COLUMNS, check_datasets
from test_datasets import KONIQ_ROWS, expected_mos, make_csiq, make_koniq


def test_show_json_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IQABENCH_DATA", raising=False)
    root = make_koniq(tmp_path / "koniq10k")
    assert main(["data", "show", "koniq10k", "--root", str(root), "--split", "test", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    provenance = lines[0]["provenance"]
    assert provenance["split_source"] == "official" and provenance["rescale_max"] == 88.39
    records = lines[1:]
    assert [r["image"] for r in records] == ["1024x768/4000.jpg", "1024x768/5000.jpg"]
    values = [m for _, m, _, _ in KONIQ_ROWS]
    for record in records:
        assert record["split"] == "test"
        assert record["mos"] == expected_mos(record["mos_raw"], values) or abs(
            record["mos"] - expected_mos(record["mos_raw"], values)
        ) < 1e-9


def test_show_provenance_and_options(tmp_path, capsys):
    root = make_koniq(tmp_path / "koniq10k")
    assert main(["data", "show", "koniq10k", "--root", str(root), "--provenance", "-o", "split_source=all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["provenance"]["splits"] == {"all": 6}
    assert main(["data", "show", "koniq10k", "--root", str(root), "-o", "split_sorce=all"]) == 2
    assert "split_source" in capsys.readouterr().err


def test_show_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "show", "tid2013", "--root", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "mos_with_names.txt" in err and "IQABENCH_DATA" in err


def test_check_table_and_rows(tmp_path, capsys):
    make_koniq(tmp_path / "koniq10k")
    make_csiq(tmp_path / "csiq")
    (tmp_path / "koniq10k" / "1024x768" / "1000.jpg").unlink()
    names = ["koniq10k", "csiq", "spaq", "pipal"]  # not every registered one: some plugins generate data on load
    rows = {row["dataset"]: row for row in check_datasets(tmp_path, names)}
    assert sorted(rows) == sorted(names)
    assert set(rows["koniq10k"]) == set(CHECK_COLUMNS)
    assert rows["koniq10k"]["found"] and (rows["koniq10k"]["images"], rows["koniq10k"]["records"]) == (5, 6)
    assert rows["koniq10k"]["splits"] == "test 2, train 3, val 1" and "1 image files missing" in rows["koniq10k"]["problem"]
    assert rows["csiq"]["found"] and rows["csiq"]["images"] == 6 and rows["csiq"]["splits"] == "all 6"
    assert not rows["spaq"]["found"] and "does not exist" in rows["spaq"]["problem"]
    assert main(["data", "check", *names, "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "5 / 6" in out and "pipal" in out


def test_check_does_not_generate_the_synthetic_dataset(tmp_path, monkeypatch):
    monkeypatch.delenv("IQABENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for data_root, where in ((tmp_path / "data", tmp_path / "data" / "synthetic"), (None, tmp_path / "cache")):
        (row,) = check_datasets(data_root, ["synthetic"])
        assert not row["found"] and row["problem"] == "not generated yet (generated on first use)"
        assert row["root"].startswith(str(where)) and not where.exists()
