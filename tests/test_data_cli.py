"""Tests of ``iqabench data show`` / ``data check`` and :func:`check_datasets`."""

import json

from test_datasets import KONIQ_ROWS, expected_mos, make_csiq, make_koniq

from iqabench.cli import main
from iqabench.data.check import CHECK_COLUMNS, check_datasets


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
    assert rows["koniq10k"]["splits"] == "test 2, train 3, val 1"
    assert "1 image files missing" in rows["koniq10k"]["problem"]
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


def test_show_says_which_direction_a_meta_was_assumed_to_have(tmp_path, capsys):
    from test_datasets import CSIQ_ROWS, write_image, write_meta

    root = tmp_path / "CSIQ"
    for *_, path in CSIQ_ROWS:
        write_image(root / "images" / path.rpartition("/")[2])
    write_meta(root / "metas" / "test_csiq_866.json",
               [{"image": f"images/{row[5].rpartition('/')[2]}", "gt_score": row[4]} for row in CSIQ_ROWS])
    assert main(["data", "show", "csiq", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "direction: lower_better" in out
    assert "note: official label files not found" in out and "assumed lower_better" in out


def test_rescale_range_on_the_command_line(tmp_path, capsys):
    from test_datasets import write_image, write_meta

    root = tmp_path / "m"
    write_image(root / "x.png")
    write_image(root / "y.png")
    write_meta(root / "m.json", [{"image": "x.png", "gt_score": 40.0}, {"image": "y.png", "gt_score": 70.0}])
    for flag in ("rescale_range=3.9,88.4", "rescale_range=[3.9, 88.4]"):
        assert main(["data", "show", "deqa-meta", "--root", str(root), "-o", "meta=m.json", "-o", flag,
                     "--provenance"]) == 0
        provenance = json.loads(capsys.readouterr().out)["provenance"]
        assert (provenance["rescale_min"], provenance["rescale_max"]) == (3.9, 88.4)
    assert main(["data", "show", "deqa-meta", "--root", str(root), "-o", "meta=m.json", "-o", "rescale_range=3.9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iqabench: error: dataset 'deqa-meta': option 'rescale_range' must be tuple[float, float]")
    assert err.count("\n") == 1


def test_check_shows_the_provenance_warnings(tmp_path):
    from test_datasets import write_meta

    root = make_koniq(tmp_path / "koniq10k")
    write_meta(root / "metas" / "test_koniq_2k.json", [{"image": "4000.jpg", "gt_score": 88.39},
                                                       {"image": "5000.jpg", "gt_score": 75.0}])
    (row,) = check_datasets(tmp_path, ["koniq10k"])
    assert row["found"] and row["split_source"] == "deqa"
    assert row["problem"].startswith("meta gt_score differs from the official label for 1 of 2 images")
