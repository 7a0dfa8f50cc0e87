"""``iqabench data download`` against a local Hub (tests/hubserver.py), through huggingface_hub itself.

The archives are laid out as the real sources are (pyiqa's ``kadid10k.tgz``
unpacks to ``kadid10k/images`` and ``kadid10k/dmos.csv``; Data-DeQA-Score has
``KADID10K/metas/<split>_kadid_*.json`` whose ``image`` paths read
``KADID10K/images/<name>``), small enough to be made here. Expected values are
counted by hand from what the tests write.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iqabench import progress
from iqabench.cli import main
from iqabench.data import archive as archive_module
from iqabench.data import download as download_module
from iqabench.data.check import check_datasets
from iqabench.data.download import MANIFEST, WORK_DIR, download_datasets
from iqabench.data.sources import ACCEPT_ENV, DatasetSource, HubFile, HubMetas, download_command
from iqabench.errors import DownloadError, SourceChangedError, UnknownNameError, UnsafeArchiveError
from iqabench_plugins.datasets.downloads import DEQA_REPO, PYIQA_REPO
from iqabench_plugins.datasets.kadid10k import KADID10k
from tests.helpers import registry_with
from tests.hubserver import FakeHub

#: KADID-style labels: 2 references x 3 distorted images
DMOS = {"I01_01_01.png": 4.5, "I01_01_02.png": 3.5, "I01_02_01.png": 2.5,
        "I02_01_01.png": 4.0, "I02_01_02.png": 3.0, "I02_02_01.png": 2.0}
#: files in the archive's images/: 6 distorted + 2 references
IMAGE_FILES = 8


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def kadid_members(top: str = "kadid10k") -> dict[str, bytes]:
    """The archive's files as pyiqa's configuration implies them: <top>/images/*.png and <top>/dmos.csv."""
    members = {f"{top}/images/{name}": _png(10 * i) for i, name in enumerate(DMOS)}
    members.update({f"{top}/images/I01.png": _png(200), f"{top}/images/I02.png": _png(220)})
    lines = ["dist_img,ref_img,dmos,var"] + [f"{name},{name[:3]}.png,{mos},0.25" for name, mos in DMOS.items()]
    members[f"{top}/dmos.csv"] = ("\n".join(lines) + "\n").encode()
    return members


def tgz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            bundle.addfile(info)
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def meta(names: list[str]) -> bytes:
    return json.dumps([{"id": f"{n}->{DMOS[n]}", "image": f"KADID10K/images/{n}", "gt_score": DMOS[n]}
                       for n in names]).encode()


def serve_kadid(hub: FakeHub, *, archive: bytes | None = None, path: str = "kadid10k.tgz",
                announced: str | None = None, folder: str | None = None) -> DatasetSource:
    """Put the KADID files on the fake Hub; the table row that describes them."""
    data = tgz(kadid_members()) if archive is None else archive
    sha = hub.add(PYIQA_REPO, path, data, announced=announced)
    hub.add(DEQA_REPO, "KADID10K/metas/train_kadid_8k.json", meta(list(DMOS)[:3]))
    hub.add(DEQA_REPO, "KADID10K/metas/test_kadid_2k.json", meta(list(DMOS)[3:]))
    hub.add(DEQA_REPO, "KADID10K/metas/mos.json", json.dumps({"I01_01_01.png": 4.5}).encode())
    return DatasetSource(
        IMAGE_FILES,
        HubFile(PYIQA_REPO, path, size=len(data), sha256=announced or sha, evidence="the test's LFS pointer",
                terms="the archive's terms (test)"),
        HubMetas(DEQA_REPO, "KADID10K/metas", required=("test_kadid_2k.json", "train_kadid_8k.json")),
        "research use only (test)", archive_folder=folder,
    )


def registry_for(row: DatasetSource):
    """The KADID plugin as a third party would make it downloadable: a class whose ``download`` is ``row``."""
    return registry_with(datasets=[type("KADIDHere", (KADID10k,), {"download": row})])


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A local Hub that huggingface_hub talks to (HF_ENDPOINT), with the user's cache and token in tmp_path."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_iqabench_test")
    monkeypatch.delenv(ACCEPT_ENV, raising=False)
    was = progress.enabled()
    progress.set_enabled(False)
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        yield fake
    progress.set_enabled(was)


def download(root: Path, row: DatasetSource, **options):
    options.setdefault("accept_terms", True)
    return download_datasets(["kadid10k"], root, registry=registry_for(row), say=lambda line: None, **options)


def only_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# -- download, check, skip ----------------------------------------------------------------------------
def test_deqa_download_installs_a_folder_that_data_check_reports_complete(hub, tmp_path):
    row = serve_kadid(hub)
    root = tmp_path / "data"
    [outcome] = download(root, row)
    assert (outcome.status, outcome.records, outcome.images) == ("downloaded", 6, IMAGE_FILES)
    folder = root / "kadid10k"
    # the archive's top folder is gone; the metas sit next to the images; mos.json (no split prefix) is not fetched
    assert sorted(p.name for p in (folder / "metas").iterdir()) == ["test_kadid_2k.json", "train_kadid_8k.json"]
    assert (folder / "dmos.csv").is_file() and len(list((folder / "images").iterdir())) == IMAGE_FILES
    [check] = check_datasets(root, ["kadid10k"], registry_for(row))
    assert (check["found"], check["images"], check["records"], check["problem"]) == (True, 6, 6, "")
    assert (check["split_source"], check["splits"]) == ("deqa", "test 3, train 3")
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["source"] == "deqa-score" and manifest["records"] == 6
    assert {f["path"] for f in manifest["files"]} == {
        "kadid10k.tgz", "KADID10K/metas/test_kadid_2k.json", "KADID10K/metas/train_kadid_8k.json"}
    assert not (root / WORK_DIR / "files" / "kadid10k").exists()  # archives removed after installing
    assert not (root / WORK_DIR / "staging" / "kadid10k").exists()
    # the user's token went to the Hub, never to the CDN's signed address
    assert {e.authorization for e in hub.requests("hub", "HEAD")} == {"Bearer hf_iqabench_test"}
    assert {e.authorization for e in hub.requests("cdn")} == {None}


def test_a_second_call_skips_a_complete_dataset_without_the_network(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    row = serve_kadid(hub)
    root = tmp_path / "data"
    download(root, row)
    before = len(hub.log)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    [outcome] = download(root, row, accept_terms=False)  # complete: no terms asked, nothing requested
    assert (outcome.status, outcome.records) == ("complete", 6)
    assert len(hub.log) == before


def test_a_second_download_into_the_same_root_is_refused_while_the_first_runs(hub, tmp_path):
    """Two downloads into one root would share partial files and staging folders: the second stops at once."""
    import multiprocessing

    from filelock import FileLock

    row = serve_kadid(hub)
    root = tmp_path / "data"
    (root / WORK_DIR).mkdir(parents=True)
    # another process holds the root's download lock (flock locks are per open file, so a child process is needed)
    ready, release = multiprocessing.Event(), multiprocessing.Event()

    def hold() -> None:
        with FileLock(root / WORK_DIR / "download.lock"):
            ready.set()
            release.wait(30)

    holder = multiprocessing.get_context("fork").Process(target=hold)
    holder.start()
    try:
        assert ready.wait(30)
        requests = len(hub.log)
        with pytest.raises(DownloadError, match="another download into .* is running") as exc:
            download(root, row)
        only_line(exc)
        assert len(hub.log) == requests and not (root / "kadid10k").exists()
    finally:
        release.set()
        holder.join(30)
    [outcome] = download(root, row)  # once the first is done, the same command goes on
    assert outcome.status == "downloaded"


def test_the_folder_the_table_names_is_installed_and_what_lies_beside_it_is_left_out(hub, tmp_path):
    members = {**kadid_members(), "meta_info/meta_info_KADID10kDataset.csv": b"ref_name,dist_name,dmos\n"}
    row = serve_kadid(hub, archive=tgz(members), folder="kadid10k")
    download(tmp_path, row)
    folder = tmp_path / "kadid10k"
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "dmos.csv", "images", "metas"]
    assert not list(tmp_path.rglob("meta_info_KADID10kDataset.csv"))


def test_pyiqa_source_reads_the_archive_with_its_own_label_file(hub, tmp_path):
    row = serve_kadid(hub)
    [outcome] = download(tmp_path, row, source="pyiqa")
    assert (outcome.status, outcome.records) == ("downloaded", 6)
    [check] = check_datasets(tmp_path, ["kadid10k"], registry_for(row))
    assert check["found"] and check["images"] == check["records"] == 6
    assert check["split_source"].startswith("random")  # KADID's default without metas: a seeded split
    assert not (tmp_path / "kadid10k" / "metas").exists()
    assert not hub.requests("hub", "GET")  # no tree listing, no meta file: the DeQA repository is not asked


def test_an_archive_already_in_the_users_cache_is_not_downloaded_again(hub, tmp_path):
    from huggingface_hub import hf_hub_download

    row = serve_kadid(hub)
    hf_hub_download(PYIQA_REPO, "kadid10k.tgz", repo_type="dataset", endpoint=hub.endpoint)  # as pyiqa leaves it
    assert len(hub.requests("cdn")) == 1
    [outcome] = download(tmp_path / "data", row)
    assert outcome.status == "downloaded"
    assert len(hub.requests("cdn")) == 1  # our download read the cached copy


# -- interrupted, changed, unsafe ----------------------------------------------------------------------
def test_a_cut_connection_leaves_a_partial_file_that_the_next_call_resumes(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    # huggingface_hub writes what it received in chunks (10 MB by default); 100 bytes makes 1000 a whole number of them
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 100)
    # 20 kB that gzip cannot shrink, so the archive is much larger than the 1000 bytes the cut lets through
    noise = np.random.default_rng(0).bytes(20_000)
    row = serve_kadid(hub, archive=tgz({**kadid_members(), "kadid10k/readme.bin": noise}))
    root = tmp_path / "data"
    size = row.archive.size
    # the connection drops after 1000 bytes; huggingface_hub 2.x retries at once with a Range and gets a 503
    # (older versions give up on the cut itself): the call fails either way
    hub.fail_next(("cut", 1000), ("status", 503))
    with pytest.raises(DownloadError) as failed:
        download(root, row)
    only_line(failed)
    hub.faults.clear()
    [part] = (root / WORK_DIR / "files" / "kadid10k").rglob("*.part")
    assert part.stat().st_size == 1000
    assert not (root / "kadid10k").exists() and not check_datasets(root, ["kadid10k"], registry_for(row))[0]["found"]
    [outcome] = download(root, row)
    assert outcome.status == "downloaded"
    ranges = [e.range for e in hub.requests("cdn")]
    # the first GET from byte 0, every later one from byte 1000: the next call continued, it did not start again
    assert ranges[0] is None and len(ranges) >= 2 and set(ranges[1:]) == {"bytes=1000-"}
    assert size > 1000  # the cut fell inside the file
    assert check_datasets(root, ["kadid10k"], registry_for(row))[0]["problem"] == ""


def test_bytes_that_do_not_match_the_hubs_checksum_are_refused_and_removed(hub, tmp_path):
    good = tgz(kadid_members())
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # one byte changed in transit (or on the server)
    row = serve_kadid(hub, archive=bytes(bad), announced=hashlib.sha256(good).hexdigest())
    root = tmp_path / "data"
    with pytest.raises(SourceChangedError) as refused:
        download(root, row)
    assert "does not match the Hub's" in only_line(refused)
    assert not (root / "kadid10k").exists()
    assert not list((root / WORK_DIR / "files" / "kadid10k").rglob("kadid10k.tgz*"))  # removed, not reused


def test_a_file_that_differs_from_the_table_is_refused_before_downloading(hub, tmp_path):
    row = serve_kadid(hub)
    stale = DatasetSource(row.images, HubFile(PYIQA_REPO, "kadid10k.tgz", size=row.archive.size,
                                              sha256="0" * 64, evidence="HF commit abc"), row.metas, row.terms)
    with pytest.raises(SourceChangedError) as refused:
        download(tmp_path, stale)
    assert "the source changed" in only_line(refused) and "HF commit abc" in str(refused.value)
    assert not hub.requests("cdn")


def test_a_file_that_changes_after_a_verified_download_is_noticed(hub, tmp_path):
    row = serve_kadid(hub)
    download(tmp_path, row)
    shutil.rmtree(tmp_path / "kadid10k")
    hub.add(DEQA_REPO, "KADID10K/metas/test_kadid_2k.json", meta(list(DMOS)[3:5]))  # the publisher edits a meta
    with pytest.raises(SourceChangedError) as changed:
        download(tmp_path, row)
    assert "changed since iqabench verified it" in only_line(changed) and "checksums.json" in str(changed.value)


def test_an_archive_with_fewer_images_than_the_official_count_is_not_installed(hub, tmp_path):
    row = serve_kadid(hub)
    short = DatasetSource(IMAGE_FILES + 1, row.archive, row.metas, row.terms)
    with pytest.raises(SourceChangedError) as refused:
        download(tmp_path, short)
    assert f"holds {IMAGE_FILES} image files, the official count is {IMAGE_FILES + 1}" in only_line(refused)
    assert not (tmp_path / "kadid10k").exists()
    assert not (tmp_path / WORK_DIR / "staging" / "kadid10k").exists()


def test_a_missing_meta_named_by_the_publisher_is_a_changed_source(hub, tmp_path):
    row = serve_kadid(hub)
    del hub.files[(DEQA_REPO, "KADID10K/metas/train_kadid_8k.json")]
    with pytest.raises(SourceChangedError, match="no longer has train_kadid_8k.json"):
        download(tmp_path, row)


def test_a_zip_slip_archive_is_refused_and_writes_nothing_outside(hub, tmp_path):
    members = kadid_members()
    members["../../escaped.txt"] = b"outside"
    row = serve_kadid(hub, archive=zipped(members), path="kadid10k.zip")
    root = tmp_path / "data"
    with pytest.raises(UnsafeArchiveError) as refused:
        download(root, row)
    assert "outside the target folder" in only_line(refused)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (root / "kadid10k").exists() and not (root / WORK_DIR / "staging" / "kadid10k").exists()


@pytest.mark.parametrize("name, links, message", [
    ("/etc/evil", None, "absolute path"),
    ("kadid10k/images/../../../evil", None, "outside the target folder"),
    ("kadid10k/link", {"kadid10k/link": "/etc"}, "is a link"),
])
def test_tar_members_that_leave_the_target_are_refused(tmp_path, name, links, message):
    members = {} if links else {name: b"x"}
    source = tmp_path / "a.tgz"
    source.write_bytes(tgz({"kadid10k/ok.txt": b"ok", **members}, links))
    with pytest.raises(UnsafeArchiveError, match=message):
        archive_module.unpack(source, tmp_path / "target")
    assert not (tmp_path / "evil").exists()


# -- terms, disk, names, other people's folders --------------------------------------------------------
def test_terms_must_be_accepted_before_the_first_download(hub, tmp_path, monkeypatch):
    row = serve_kadid(hub)
    lines: list[str] = []
    with pytest.raises(DownloadError) as refused:
        download_datasets(["kadid10k"], tmp_path, registry=registry_for(row), say=lines.append)
    assert "--accept-terms" in only_line(refused) and ACCEPT_ENV in str(refused.value)
    # the terms were printed: the archive repository's, then the dataset's
    assert [line.strip() for line in lines[1:]] == ["- the archive's terms (test)",
                                                    "- kadid10k: research use only (test)"]
    assert not hub.log
    monkeypatch.setenv(ACCEPT_ENV, "1")
    [outcome] = download_datasets(["kadid10k"], tmp_path, registry=registry_for(row), say=lines.append)
    assert outcome.status == "downloaded"


def test_not_enough_free_space_is_one_line_before_anything_is_downloaded(hub, tmp_path, monkeypatch):
    from collections import namedtuple

    row = serve_kadid(hub)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(download_module.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 5000, 5000))
    with pytest.raises(DownloadError) as refused:
        download(tmp_path, row)
    assert "not enough free space" in only_line(refused) and "nothing was downloaded" in str(refused.value)
    assert not hub.requests("cdn")


def test_a_disk_that_fills_while_unpacking_leaves_no_dataset_folder(hub, tmp_path, monkeypatch):
    row = serve_kadid(hub)
    written = []

    def fill_up(source, target, relative):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(relative)
        real_write(source, target, relative)

    real_write = archive_module._write_member
    monkeypatch.setattr(archive_module, "_write_member", fill_up)
    with pytest.raises(DownloadError) as full:
        download(tmp_path, row)
    assert "no space left" in only_line(full) and "nothing was installed" in str(full.value)
    assert not (tmp_path / "kadid10k").exists()
    assert not (tmp_path / WORK_DIR / "staging" / "kadid10k").exists()
    assert [p.name for p in (tmp_path / WORK_DIR / "files" / "kadid10k").rglob("*.tgz")] == ["kadid10k.tgz"]  # kept
    monkeypatch.setattr(archive_module, "_write_member", real_write)
    cdn_gets = len(hub.requests("cdn"))
    assert download(tmp_path, row)[0].status == "downloaded"
    assert len(hub.requests("cdn")) == cdn_gets


def test_an_incomplete_folder_iqabench_did_not_make_is_left_alone(hub, tmp_path):
    row = serve_kadid(hub)
    (tmp_path / "kadid10k").mkdir()
    (tmp_path / "kadid10k" / "notes.txt").write_text("mine")
    with pytest.raises(DownloadError) as refused:
        download(tmp_path, row)
    assert "was not made by `iqabench data download`" in only_line(refused)
    assert (tmp_path / "kadid10k" / "notes.txt").read_text() == "mine"
    assert not hub.log


def test_unknown_names_are_one_line_with_the_close_match():
    with pytest.raises(UnknownNameError) as unknown:
        download_datasets(["kadid"], "/nonexistent", say=lambda line: None)
    assert "Did you mean 'kadid10k'" in only_line(unknown)


def test_offline_mode_is_one_line(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    row = serve_kadid(hub)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DownloadError) as offline:
        download(tmp_path, row)
    assert "offline mode (HF_HUB_OFFLINE=1)" in only_line(offline)


# -- the command line and the paper suites -------------------------------------------------------------
def test_list_prints_every_source_size_count_and_terms_offline(capsys):
    assert main(["data", "download", "--list"]) == 0
    out = capsys.readouterr().out
    # sizes: the LFS pointers' byte counts in GB/MB (6,348,641,188 -> 6.35 GB); counts: docs/datasets.md
    expected = [("koniq10k", "6.35 GB", "10073"), ("spaq", "34.84 GB", "11125"), ("livew", "326 MB", "1169"),
                ("kadid10k", "3.07 GB", "10125"), ("csiq", "379 MB", "866"), ("tid2013", "1.23 GB", "3000"),
                ("pipal", "5.84 GB", "23200"), ("agiqa3k", "98 MB", "2982")]
    for name, size, count in expected:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert size in line and count in line and "restricted" in line
        assert any(entry.startswith(f"  - {name}: ") for entry in out.splitlines())
    assert PYIQA_REPO in out and DEQA_REPO in out and "--accept-terms" in out
    assert main(["data", "download", "--list", "--json"]) == 0
    rows = {row["dataset"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert len(rows) == 8
    assert rows["koniq10k"]["archive_bytes"] == 6348641188  # the size in the LFS pointer of koniq10k.tgz
    assert rows["livew"]["sources"]["deqa-score"] == [f"datasets/{PYIQA_REPO}/live_challenge.tgz",
                                                      f"datasets/{DEQA_REPO}/LIVE-WILD/metas/"]


def test_the_command_installs_and_prints_the_check_table(hub, tmp_path, capsys, monkeypatch):
    # the built-in KADID plugin, its download pointed at the test's files
    monkeypatch.setattr(KADID10k, "download", serve_kadid(hub))
    code = main(["data", "download", "kadid10k", "--root", str(tmp_path), "--accept-terms", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "kadid10k: installed at" in out and "images found / expected" in out and "6 / 6" in out


def test_the_download_command_is_named_for_missing_suite_datasets():
    assert download_command(["koniq10k", "livew", "graded"], Path("/data")) == (
        "iqabench data download koniq10k livew --root /data")
    assert download_command(["graded"], None) == ""
    # a third-party dataset with a download is named too; one without is not
    row = DatasetSource(1, HubFile("o/r", "a.zip"), HubMetas("o/m", "A/metas", ()), "terms")
    assert download_command(["kadid10k"], None, registry_for(row)) == "iqabench data download kadid10k --root DIR"


def test_a_paper_suite_with_missing_data_names_the_download_command(tmp_path):
    import yaml

    from iqabench.run.plan import DataMissingError, plan_run
    from iqabench_plugins.datasets.csiq import CSIQ
    from iqabench_plugins.datasets.livew import LiveWild
    from tests.helpers import Brightness, registry_with

    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "t", "protocol": "single_domain", "models": [{"name": "brightness"}],
                                     "test": [{"dataset": "livew"}, {"dataset": "csiq"}]}))
    with pytest.raises(DataMissingError) as missing:
        plan_run(suite, tmp_path / "out", data_root=str(tmp_path / "data"), progress=False,
                 registry=registry_with(Brightness, datasets=[LiveWild, CSIQ]))
    last = str(missing.value).splitlines()[-1]
    assert last == f"  iqabench data download csiq livew --root {tmp_path / 'data'}"
