"""Distributed evaluation on CPU: two processes (gloo) give exactly what one process gives (issue 17).

The multi-process tests start real launches: ``python -m accelerate.commands.launch --multi_gpu --num_processes 2``
(torch's elastic launcher; on a machine without GPUs iqabench sets up a gloo process group). The child processes
find the test models through a plugin module registered with an entry point, as an installed plugin would be.
Each launch costs two Python start-ups (torch, plugins), so the launches are few and shared between tests.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from iqabench.errors import IQABenchError
from iqabench.registry.discovery import PluginRegistry
from iqabench.run.layout import RunLayout
from iqabench.run.merge import MergeError, merge_runs
from iqabench.run.plan import parse_pairs
from iqabench.run.predictions import Prediction, ShardJournal, journal_header
from iqabench.run.runner import run_suite
from tests.helpers import make_graded_root

#: every test here starts other Python processes
pytestmark = pytest.mark.slow


REPO = Path(__file__).resolve().parent.parent
PLUGIN = "iqabench_disttest_plugin"

PLUGIN_SOURCE = textwrap.dedent('''
    """Test models and trainers for multi-process runs (written by tests/test_distributed.py)."""
    import os
    import signal
    from pathlib import Path

    import torch

    from iqabench import ModelTraits, Score, Trainer, hookimpl
    from tests.helpers import Brightness, GradedSet, Picky

    CALLS = []


    class Tallied(Brightness):
        """Brightness that notes each batch it scores (IQABENCH_TEST_TALLY) and can kill its own process."""

        name = "tallied"

        def score_batch(self, items):
            CALLS.append(len(items))
            rank = os.environ.get("RANK", "0")
            if os.environ.get("IQABENCH_TEST_DIE") == f"{rank}:{len(CALLS)}":
                os.kill(os.getpid(), signal.SIGKILL)
            if os.environ.get("IQABENCH_TEST_TALLY"):
                with open(os.environ["IQABENCH_TEST_TALLY"], "a") as handle:
                    handle.write(f"{rank} {len(items)}\\n")
            return super().score_batch(items)


    class Sampler(Brightness):
        """A generative model whose texts and scores depend on torch's RNG, as a sampling MLLM's do."""

        name = "sampler"
        traits = ModelTraits(generative=True)

        def score_batch(self, items):
            draws = torch.rand(len(items)).tolist()
            return [Score.ok(v + d, text=f"brightness {v:.2f}, draw {d:.6f}") for v, d in zip(items, draws)]


    class Offsetting(Brightness):
        name = "offsetting"
        trainer = "on-main"

        def __init__(self, *, weights: str | None = None, device: str = "cpu", dtype: str = "float32") -> None:
            super().__init__(offset=float(Path(weights).read_text()) if weights else 0.0, device=device, dtype=dtype)
            self.weights = weights


    class OnMain(Trainer):
        """A trainer written for one process: under a launch only the main process may run it."""

        name = "on-main"
        model = "offsetting"

        def __init__(self, *, offset: float = 3.0) -> None:
            self.offset = offset

        def train(self, model_options, datasets, out_dir, *, seed=0, device="cpu"):
            (out_dir / f"trained-by-{os.environ.get('RANK', '0')}").touch()
            if os.environ.get("RANK", "0") == "0":
                (out_dir / "weights.txt").write_text(str(self.offset))
            return {"weights": str(out_dir / "weights.txt")}


    class Everywhere(OnMain):
        """A trainer that shares its work among the processes of a launch."""

        name = "everywhere"
        uses_all_processes = True


    @hookimpl
    def iqabench_models():
        return [Tallied, Sampler, Offsetting, Picky]


    @hookimpl
    def iqabench_datasets():
        return [GradedSet]


    @hookimpl
    def iqabench_trainers():
        return [OnMain, Everywhere]
''')

SUITE = {
    "name": "dist",
    "protocol": "single_domain",
    "batch_size": 2,
    "num_workers": 0,
    "bootstrap": 100,
    "efficiency": {"warmup": 0, "repeats": 1},
    "train": {"datasets": [{"dataset": "graded", "split": "all"}]},
    # 13 and 6 images in batches of 2: 7 and 3 batches, neither divisible by two processes
    "test": [{"dataset": "graded", "split": "all"}, {"dataset": "graded", "split": "test"}],
    "models": [
        {"name": "tallied"},
        {"name": "picky"},
        {"name": "offsetting", "train": True},
        {"name": "offsetting", "label": "offsetting everywhere", "train": True, "trainer": "everywhere"},
    ],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder with the data, the suite, the plugin (importable here and in child processes) and one
    single-process run of the suite: the reference every multi-process result must equal."""
    root = tmp_path_factory.mktemp("dist")
    make_graded_root(root / "data" / "graded", count=13)
    plugin_dir = root / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    info = plugin_dir / f"{PLUGIN}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[iqabench]\ndisttest = {PLUGIN}\n")
    (root / "suite.yaml").write_text(yaml.safe_dump(SUITE))
    sys.path.insert(0, str(plugin_dir))
    try:
        import importlib

        plugin = importlib.import_module(PLUGIN)
        registry = PluginRegistry(load_entry_points=False)
        registry.register(plugin, name="disttest")
        reference = run_suite(root / "suite.yaml", root / "one", data_root=str(root / "data"), registry=registry,
                              progress=False)
        yield {"root": root, "registry": registry, "reference": reference, "plugin": plugin}
    finally:
        sys.path.remove(str(plugin_dir))
        sys.modules.pop(PLUGIN, None)


def launch(world, *args: str, env: dict[str, str] | None = None, module: bool = True,
           timeout: int = 300) -> subprocess.CompletedProcess:
    """``accelerate launch`` two CPU processes of ``python -m iqabench ARGS`` (or of a script) in the world folder.

    The rendezvous port is a free one picked just before; if another program takes it in between, the launch is
    tried again on another port (that is the machine's doing, not iqabench's).
    """
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(world["root"] / "plugin"), str(REPO)]),
                   "HF_HUB_OFFLINE": "1"}
    environment.update(env or {})
    for _ in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(port), *(["-m", "iqabench"] if module else []), *args]
        done = subprocess.run(command, cwd=world["root"], env=environment, capture_output=True, text=True,
                              timeout=timeout)
        if "address already in use" not in (done.stdout + done.stderr).lower():
            return done
    return done


def predictions(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted((folder / "predictions").rglob("*.csv"))}


def metrics(results: dict) -> list:
    return [(p["model"], p["test_set"], p["status"], p.get("metrics")) for p in results["results"]]


@pytest.fixture(scope="module")
def two_processes(world):
    """One launch of two processes: ``run`` the suite, ``score`` images and ``describe`` them."""
    root = world["root"]
    images = [str(root / "data" / "graded" / f"img{i:02d}.png") for i in range(13)]
    script = root / "three_commands.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from iqabench.cli import main
        codes = [main(["run", "suite.yaml", "--out", "two", "--data-root", "data", "--no-progress"]),
                 main(["score", "tallied", *{images!r}, "--batch-size", "3", "--json"]),
                 main(["describe", "sampler", *{images!r}, "--seeds", "0,1", "--batch-size", "3",
                       "--out", "texts-two.jsonl", "--no-progress"]),
                 main(["score", "tallied", *{images!r}, "--batch-size", "3", "--output", "scores-two.jsonl",
                       "--no-progress"])]
        sys.exit(max(codes))
    """))
    done = launch(world, str(script), module=False, env={"IQABENCH_TEST_TALLY": str(root / "tally-two.txt")})
    assert done.returncode == 0, done.stdout + done.stderr
    return {"stdout": done.stdout, "images": images}


def test_two_processes_give_the_predictions_and_metrics_of_one(world, two_processes):
    root = world["root"]
    assert predictions(root / "two") == predictions(root / "one")
    two = json.loads((root / "two" / "results.json").read_text())
    assert metrics(two) == metrics(world["reference"])
    assert two["launch"]["processes"] == 2 and two["launch"]["per_process"][1]["index"] == 1
    assert "Scored by 2 processes on 1 device;" in (root / "two" / "leaderboard.md").read_text()
    # the images were shared out, not scored twice: each process scored part of each test set
    ranks = [line.split()[0] for line in (root / "tally-two.txt").read_text().splitlines()]
    assert set(ranks) == {"0", "1"}
    # nothing but the merged files is left; the main process held the lock alone and measured efficiency alone
    assert not list((root / "two" / "predictions").rglob("*.jsonl"))
    efficiency = json.loads((root / "two" / "efficiency" / "tallied.json").read_text())
    assert efficiency["measured_by"] == "one process of 2, while the others waited"


def test_an_uneven_split_loses_and_duplicates_nothing(world, two_processes):
    meta = json.loads((world["root"] / "two" / "predictions" / "tallied" / "graded-all.meta.json").read_text())
    # 7 batches of 2 over 2 processes: 3 batches (6 images) and 4 batches (7 images, the last one alone)
    assert [p["images"] for p in meta["per_process"]] == [6, 7] and meta["count"] == 13
    rows = (world["root"] / "two" / "predictions" / "tallied" / "graded-all.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == [f"img{i:02d}.png" for i in range(13)]


def test_a_single_process_trainer_trains_once_and_a_shared_one_in_every_process(world, two_processes):
    on_main = world["root"] / "two" / "checkpoints" / "offsetting"
    everywhere = world["root"] / "two" / "checkpoints" / "offsetting-everywhere"
    assert sorted(p.name for p in on_main.glob("trained-by-*")) == ["trained-by-0"]
    assert sorted(p.name for p in everywhere.glob("trained-by-*")) == ["trained-by-0", "trained-by-1"]
    rows = (on_main.parent.parent / "predictions" / "offsetting" / "graded-test.csv").read_text().splitlines()[1:]
    plain = (world["root"] / "one" / "predictions" / "tallied" / "graded-test.csv").read_text().splitlines()[1:]
    # both processes scored with the offset of 3 the main process trained
    assert [float(r.split(",")[1]) for r in rows] == [float(r.split(",")[1]) + 3.0 for r in plain]


def test_score_and_describe_share_images_and_write_what_one_process_writes(world, two_processes, capsys,
                                                                           monkeypatch):
    import iqabench.registry.discovery
    from iqabench.cli import main

    monkeypatch.setattr(iqabench.registry.discovery, "_DEFAULT", world["registry"])
    lines = [json.loads(line) for line in two_processes["stdout"].splitlines() if line.startswith("{")]
    assert [line["image"] for line in lines] == two_processes["images"]  # each image once, in the order given
    assert main(["score", "tallied", *two_processes["images"], "--batch-size", "3", "--json"]) == 0
    single = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines == single

    root = world["root"]
    args = ["describe", "sampler", *two_processes["images"], "--seeds", "0,1", "--batch-size", "3", "--out",
            str(root / "texts-one.jsonl"), "--no-progress"]
    assert main(args) == 0
    # same texts with the same random draws, line for line: batches and seeds are those of one process
    assert (root / "texts-two.jsonl").read_text() == (root / "texts-one.jsonl").read_text()
    assert not list(root.glob("texts-two.jsonl.shard-*"))

    # --output: written by the main process round by round (a round: one batch of each process), every image once
    assert main(["score", "tallied", *two_processes["images"], "--batch-size", "3", "--output",
                 str(root / "scores-one.jsonl"), "--no-progress"]) == 0
    two = [json.loads(line) for line in (root / "scores-two.jsonl").read_text().splitlines()]
    one = [json.loads(line) for line in (root / "scores-one.jsonl").read_text().splitlines()]
    assert [row["image"] for row in one] == two_processes["images"]
    assert sorted(two, key=lambda row: row["image"]) == one


def test_a_killed_process_loses_only_its_unfinished_batch(world):
    """Process 1 is killed (SIGKILL) while scoring its second batch; a relaunch scores only what was missing."""
    root = world["root"]
    suite = {**SUITE, "efficiency": {"enabled": False}, "models": [{"name": "tallied"}],
             "test": [{"dataset": "graded", "split": "all"}]}
    (root / "kill.yaml").write_text(yaml.safe_dump(suite))
    run = ["run", "kill.yaml", "--out", "killed", "--data-root", "data", "--no-progress"]
    died = launch(world, *run, env={"IQABENCH_TEST_DIE": "1:2"})
    assert died.returncode != 0
    journals = list((root / "killed" / "predictions" / "tallied").glob("graded-all.shard-*-of-2.jsonl"))
    complete = [line for journal in journals for line in journal.read_text().split("\n")[1:-1]]
    kept = sum(len(json.loads(line)["rows"]) for line in complete)
    assert kept >= 2  # process 1's first batch at least, written before it died
    assert not (root / "killed" / "predictions" / "tallied" / "graded-all.csv").exists()

    tally = root / "tally-resume.txt"
    resumed = launch(world, *run, env={"IQABENCH_TEST_TALLY": str(tally)})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rescored = sum(int(line.split()[1]) for line in tally.read_text().splitlines())
    assert rescored == 13 - kept
    final = (root / "killed" / "predictions" / "tallied" / "graded-all.csv").read_text()
    assert final == (root / "one" / "predictions" / "tallied" / "graded-all.csv").read_text()
    assert not list((root / "killed" / "predictions").rglob("*.jsonl"))


def test_an_interrupted_single_process_run_resumes_from_its_last_finished_batch(world, monkeypatch):
    root = world["root"]
    plugin = world["plugin"]
    suite = root / "kill.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "efficiency": {"enabled": False}, "models": [{"name": "tallied"}],
                                     "test": [{"dataset": "graded", "split": "all"}]}))
    original = plugin.Tallied.score_batch

    def interrupted(self, items):
        if len(plugin.CALLS) == 3:
            raise KeyboardInterrupt
        return original(self, items)

    plugin.CALLS.clear()
    monkeypatch.setattr(plugin.Tallied, "score_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, root / "stopped", data_root=str(root / "data"), registry=world["registry"], progress=False)
    monkeypatch.setattr(plugin.Tallied, "score_batch", original)
    plugin.CALLS.clear()
    run_suite(suite, root / "stopped", data_root=str(root / "data"), registry=world["registry"], progress=False)
    assert sum(plugin.CALLS) == 13 - 6  # three batches of two were kept
    assert (root / "stopped" / "predictions" / "tallied" / "graded-all.csv").read_text() == (
        root / "one" / "predictions" / "tallied" / "graded-all.csv").read_text()


@pytest.fixture(scope="module")
def parts(world):
    """The suite run whole, and in three parts (--pairs i/3) into folders of their own."""
    root = world["root"]
    suite = root / "merge.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "efficiency": {"enabled": False}}))
    run = dict(data_root=str(root / "data"), registry=world["registry"], progress=False)
    whole = run_suite(suite, root / "whole", **run)
    return whole, [run_suite(suite, root / f"part{i}", pairs=parse_pairs(f"{i}/3"), **run) for i in range(3)]


def test_merging_the_parts_of_a_split_suite_gives_the_leaderboard_of_one_run(world, parts):
    from iqabench.reports.leaderboard import write_leaderboard

    root = world["root"]
    whole, split = parts
    assert sorted(sum((p["selection"]["held"] for p in split), [])) == sorted(
        [p["model"], p["test_set"]] for p in whole["results"])
    assert "Partial run: holds 2 of the suite's 8" in (root / "part0" / "leaderboard.md").read_text()

    merged = merge_runs([root / "part2", root / "part0", root / "part1"], root / "merged")
    assert metrics(merged) == metrics(whole) and merged["selection"] is None
    assert predictions(root / "merged") == predictions(root / "whole")
    board = write_leaderboard(merged, root / "merged").read_text()
    assert board.split("## Provenance")[0] == (root / "whole" / "leaderboard.md").read_text().split("## Provenance")[0]
    assert board.count("- Merged from") == 3


def test_folders_of_other_suites_or_code_are_refused(world, parts):
    root = world["root"]
    other = root / "other-suite"
    shutil.copytree(root / "part1", other)
    results = json.loads((other / "results.json").read_text())
    results["suite"]["sha256"] = "0" * 64
    (other / "results.json").write_text(json.dumps(results))
    with pytest.raises(MergeError, match="different suite files"):
        merge_runs([root / "part0", other], root / "refused")
    results["suite"]["sha256"] = json.loads((root / "part0" / "results.json").read_text())["suite"]["sha256"]
    results["provenance"]["git_commit"] = "f" * 40
    (other / "results.json").write_text(json.dumps(results))
    with pytest.raises(MergeError, match="different code versions"):
        merge_runs([root / "part0", other], root / "refused")
    edited = root / "edited"
    shutil.copytree(root / "part0", edited)
    results = json.loads((edited / "results.json").read_text())
    results["results"][0]["meta"]["csv_sha256"] = "0" * 64
    (edited / "results.json").write_text(json.dumps(results))
    with pytest.raises(MergeError, match="both .* with different predictions"):
        merge_runs([root / "part0", edited], root / "refused")
    with pytest.raises(MergeError, match="holds the results of a run"):
        merge_runs([root / "part0", root / "part1"], root / "whole")
    interrupted = root / "interrupted"  # a run killed before its results: its predictions must survive
    (interrupted / "predictions").mkdir(parents=True)
    (interrupted / "predictions" / "journal.jsonl").write_text("{}\n")
    with pytest.raises(MergeError, match="not empty and holds no merged results"):
        merge_runs([root / "part0", root / "part1"], interrupted)
    assert (interrupted / "predictions" / "journal.jsonl").exists()


def test_selections_are_checked(world):
    with pytest.raises(IQABenchError, match="PART/PARTS"):
        parse_pairs("3/3")
    with pytest.raises(IQABenchError, match="PART/PARTS"):
        parse_pairs("a/b")
    root = world["root"]
    with pytest.raises(IQABenchError, match="--tests names \\['koniq'\\]"):
        run_suite(root / "suite.yaml", root / "x", data_root=str(root / "data"), registry=world["registry"],
                  only_tests=["koniq"], progress=False)
    with pytest.raises(IQABenchError, match="only 8 .* pair"):
        run_suite(root / "suite.yaml", root / "x", data_root=str(root / "data"), registry=world["registry"],
                  pairs=(0, 9), progress=False)
    results = run_suite(root / "suite.yaml", root / "tests-only", data_root=str(root / "data"),
                        registry=world["registry"], only_tests=["graded-test"], only_models=["tallied"],
                        progress=False)
    assert [(p["model"], p["test_set"]) for p in results["results"]] == [("tallied", "graded-test")]
    assert results["selection"]["held"] == [["tallied", "graded-test"]]


def test_a_journal_keeps_only_intact_batches_of_its_own_settings(tmp_path):
    header = journal_header("abc", 2, ["a", "b", "c"])
    journal = ShardJournal(tmp_path / "t.shard-0-of-1.jsonl")
    journal.open(header)
    journal.append(0, [Prediction("a", 1.0, 2.0, 2.0), Prediction("b", None, 3.0, 3.0, "unreadable")])
    journal.append(1, [Prediction("c", 0.5, 4.0, 4.0)])
    journal.close()
    assert sorted(journal.read(header)) == [0, 1]
    assert journal.read(header)[0][1] == Prediction("b", None, 3.0, 3.0, "unreadable")
    assert journal.read(journal_header("other", 2, ["a", "b", "c"])) == {}  # other settings: nothing is trusted

    lines = journal.path.read_text().splitlines(keepends=True)
    journal.path.write_text(lines[0] + lines[1].replace("1.0", "9.0", 1) + lines[2][:20])  # edited, then cut
    assert journal.read(header) == {}
    journal.open(header)  # reopening drops the cut line and appends after the intact ones
    journal.append(1, [Prediction("c", 0.5, 4.0, 4.0)])
    journal.close()
    assert sorted(journal.read(header)) == [1]
    assert RunLayout(tmp_path).journals("x", "t") == []  # only files of the pair's own folder and name count


def test_the_two_node_launch_config_makes_a_valid_launch():
    """The documented two-machine config, read by accelerate as `accelerate launch --config_file` reads it."""
    from accelerate.commands.launch import (
        _validate_launch_command,
        launch_command_parser,
    )
    from accelerate.utils.launch import prepare_multi_gpu_env

    config = REPO / "examples" / "distributed" / "two-nodes.yaml"
    for machine in (0, 1):
        args = launch_command_parser().parse_args(
            ["--config_file", str(config), "--machine_rank", str(machine), "-m", "iqabench", "run", "suite.yaml"])
        args, _, _ = _validate_launch_command(args)
        prepare_multi_gpu_env(args)  # what `accelerate launch` hands torch's launcher
        assert args.multi_gpu and not args.use_cpu
        assert (args.nnodes, args.nproc_per_node, args.node_rank) == ("2", "8", machine)
        assert args.rdzv_endpoint == "10.0.0.1:29500" and args.rdzv_backend == "static"
        assert args.module and args.training_script == "iqabench" and args.training_script_args == ["run",
                                                                                                    "suite.yaml"]


def test_the_slurm_scripts_are_valid_shell_and_split_by_array_task():
    scripts = REPO / "examples" / "distributed" / "slurm"
    for script in sorted(scripts.glob("*.sh")):
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0, script
    array = (scripts / "array.sh").read_text()
    assert '--pairs "$part/$SLURM_ARRAY_TASK_COUNT"' in array
    assert 'iqabench leaderboard --merge "$RUN"/part-* --out "$RUN/merged"' in (scripts / "merge.sh").read_text()


def test_a_single_process_run_needs_no_accelerate(world, monkeypatch):
    """accelerate is an optional dependency (the `train` extra): without a launcher it is never imported."""
    monkeypatch.setitem(sys.modules, "accelerate", None)  # `import accelerate` now raises ImportError
    root = world["root"]
    suite = root / "plain.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "models": SUITE["models"][:2]}))
    results = run_suite(suite, root / "plain", data_root=str(root / "data"), registry=world["registry"],
                        progress=False)
    assert {p["status"] for p in results["results"]} == {"ok"} and results["launch"]["processes"] == 1


def test_a_process_that_fails_fails_the_pair_and_a_run_with_other_processes_completes_it(world, monkeypatch):
    """Process 1 of 2 cannot score (its GPU ran out of memory): the pair is reported failed with its traceback
    and keeps process 0's batches; a later run, here with one process, scores only the batches still missing."""
    import iqabench.run.runner
    from iqabench.run.distributed import Processes

    root = world["root"]
    plugin = world["plugin"]
    traceback = root / "process-1-traceback.txt"
    traceback.write_text("Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory on process 1\n")
    failed_report = {"index": 1, "images": 0, "seconds": None, "peak_memory_mib": None, "memory_method": None,
                     "model_config": None, "preprocessing": None, "error": "RuntimeError: CUDA out of memory",
                     "traceback": str(traceback)}

    def gather(value):  # what process 1 would contribute to each exchange
        return [value, failed_report if isinstance(value, dict) and "images" in value else value]

    main_of_two = Processes(0, 2, lambda: None, lambda value: value, gather)
    monkeypatch.setattr(iqabench.run.runner, "processes", lambda: main_of_two)
    suite = root / "failing.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "efficiency": {"enabled": False}, "models": [{"name": "tallied"}],
                                     "test": [{"dataset": "graded", "split": "all"}]}))
    run = dict(data_root=str(root / "data"), registry=world["registry"], progress=False)
    plugin.CALLS.clear()
    first = run_suite(suite, root / "failing", **run)
    pair = first["results"][0]
    assert pair["status"] == "failed" and "CUDA out of memory on process 1" in pair["error"]
    assert "process 1 of 2 failed" in (root / "failing" / "failures" / "tallied" / "graded-all.txt").read_text()
    assert sum(plugin.CALLS) == 6  # process 0's three batches, kept in its journal

    monkeypatch.undo()
    plugin.CALLS.clear()
    second = run_suite(suite, root / "failing", **run)
    assert second["results"][0]["status"] == "ok" and sum(plugin.CALLS) == 7
    assert (root / "failing" / "predictions" / "tallied" / "graded-all.csv").read_text() == (
        root / "one" / "predictions" / "tallied" / "graded-all.csv").read_text()
    assert not (root / "failing" / "failures" / "tallied" / "graded-all.txt").exists()


def test_a_resumed_describe_writes_the_texts_of_an_uninterrupted_one(world, monkeypatch):
    from iqabench.reasoning.describe import ImageToDescribe, describe

    plugin = world["plugin"]
    images = [ImageToDescribe(image=f"img{i:02d}.png", path=world["root"] / "data" / "graded" / f"img{i:02d}.png")
              for i in range(7)]
    whole = world["root"] / "texts-whole.jsonl"
    describe(plugin.Sampler(), images, [0, 1], whole, batch_size=2, progress=False)
    calls = []
    original = plugin.Sampler.score_batch

    def interrupted(self, items):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, items)

    resumed = world["root"] / "texts-resumed.jsonl"
    monkeypatch.setattr(plugin.Sampler, "score_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        describe(plugin.Sampler(), images, [0, 1], resumed, batch_size=2, progress=False)
    monkeypatch.setattr(plugin.Sampler, "score_batch", original)
    assert len(resumed.read_text().splitlines()) == 4  # two batches written before the interruption
    describe(plugin.Sampler(), images, [0, 1], resumed, batch_size=2, progress=False)
    assert resumed.read_text() == whole.read_text()


@pytest.mark.slow
def test_every_process_destroys_its_process_groups_before_it_exits(world):
    # An atexit hook registered before the groups exist runs after iqabench's teardown (atexit is last in, first
    # out): it sees no process group left. Groups left alive made a process abort at exit now and then
    # ("terminate called without an active exception"), failing a launch whose work was done.
    script = world["root"] / "teardown.py"
    script.write_text(textwrap.dedent("""
        import atexit
        import os

        import torch.distributed as dist

        from iqabench.run.distributed import processes

        def report():  # a file per process: the two processes' stdout may interleave
            with open(f"exit-{os.environ['RANK']}.txt", "w") as handle:
                handle.write(f"initialized at exit: {dist.is_initialized()}")

        atexit.register(report)
        group = processes()
        assert dist.is_initialized() and group.gather(group.index) == [0, 1]
    """))
    done = launch(world, str(script), module=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(world["root"] / f"exit-{rank}.txt").read_text() for rank in (0, 1)] == [
        "initialized at exit: False", "initialized at exit: False"]
