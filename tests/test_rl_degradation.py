"""Q-Insight's degradation-perception task: where its prompts come from, what answer each expects, the mix."""

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iqabench.contracts.dataset import Record
from iqabench.contracts.trainer import TrainingSet
from iqabench.errors import IQABenchError
from iqabench_plugins.datasets.kadid10k import KADID10k, parse_distortion
from iqabench_plugins.rl.degradation import (
    DEFAULT_DISTORTION_CLASSES,
    DEGRADATION_QUESTION,
    answer_for,
    mix,
    read_degradation_data,
)
from iqabench_plugins.rl.grpo import GRPO, _trl_reward, training_prompt
from iqabench_plugins.rl.rewards import q_insight_degradation, q_insight_format, q_insight_score
from iqabench_plugins.synthetic.dataset import Synthetic


def write_image(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(seed).random((32, 32, 3)) * 255).astype("uint8")).save(path)


def test_question_is_q_insights_word_for_word():
    assert DEGRADATION_QUESTION.startswith('Analyze the given image and determine if it contains any of the following '
                                           'distortions: "noise", "compression", "blur", or "darken".')
    assert DEGRADATION_QUESTION.endswith('and "severity": The severity level (or "null" if none).')
    assert training_prompt("q-insight", "degradation")[1]["content"] == DEGRADATION_QUESTION
    with pytest.raises(IQABenchError, match="prompt: q-insight"):
        training_prompt("visualquality", "degradation")


def test_kadid_and_kadis_file_names_give_type_and_level():
    # KADID-10k's numbering (Lin et al. 2019): 01 Gaussian blur, 03 motion blur, 17 darken, 25 contrast change
    assert parse_distortion("images/I01_01_01.png") == {"type": "gaussian_blur", "level": 1}
    assert parse_distortion("I81_25_05.png") == {"type": "contrast_change", "level": 5}
    # KADIS-700k's generator writes <reference>_<type>_<level>.bmp for references with any name
    assert parse_distortion("dist_imgs/a-fleshy_plant-1464418_17_02.bmp") == {"type": "darken", "level": 2}
    assert parse_distortion("I01.png") is None and parse_distortion("I01_26_01.png") is None


def test_kadid_records_carry_their_distortion(tmp_path):
    root = tmp_path / "kadid10k"
    names = ["I01_03_02.png", "I01_11_05.png", "I02_03_02.png", "I02_11_05.png"]
    root.mkdir()
    with (root / "dmos.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dist_img", "ref_img", "dmos", "var"])
        for i, name in enumerate(names):
            writer.writerow([name, name[:3] + ".png", 1.0 + i, 0.1])
            write_image(root / "images" / name, i)
    records = {r.image.rpartition("/")[2]: r for r in KADID10k(root).load().records}
    assert records["I01_03_02.png"].distortion == {"type": "motion_blur", "level": 2}
    assert records["I02_11_05.png"].distortion == {"type": "white_noise", "level": 5}


def test_synthetic_records_carry_their_distortion(tmp_path):
    index = Synthetic(tmp_path, size=(192, 192), references=["astronaut", "coffee"], distortions=["jpeg"]).load()
    by_name = {r.image.rpartition("/")[2]: r.distortion for r in index.records}
    assert by_name["jpeg_3.png"] == {"type": "jpeg", "level": 3}
    assert by_name["pristine.png"] == {"type": None, "level": 0}


def test_expected_answers_use_the_questions_words():
    classes = DEFAULT_DISTORTION_CLASSES
    assert answer_for({"type": "motion_blur", "level": 2}, classes) == ("blur", "moderate")
    assert answer_for({"type": "jpeg2000", "level": 1}, classes) == ("compression", "slight")
    assert answer_for({"type": "multiplicative_noise", "level": 4}, classes) == ("noise", "serious")
    assert answer_for({"type": "darken", "level": 5}, classes) == ("darken", "catastrophic")
    assert answer_for({"type": None, "level": 0}, classes) == ("null", "null")
    # types the question has no class for, and records that say nothing
    assert answer_for({"type": "contrast_change", "level": 3}, classes) is None
    assert answer_for(None, classes) is None


def test_released_meta_layout_is_read(tmp_path):
    """KADIS-700K refA_sd_brief: metas/train_dist.json beside dist_imgs/, images relative to refA_sd_brief/."""
    root = tmp_path / "refA_sd_brief"
    for i in range(4):
        write_image(root / "dist_imgs" / f"{i}.jpg", i)
    entries = [
        {"image": "dist_imgs/0.jpg", "distortion_class": "blur", "severity": "obvious"},
        {"image": "dist_imgs/1.jpg", "distortion_class": "noise", "severity": 2},  # DepictQA's numeric level
        {"image": "dist_imgs/2.jpg", "distortion_class": None, "severity": 0},  # no distortion
        {"image": "dist_imgs/3.jpg", "distortion_class": "brighten", "severity": 3},  # outside the four classes
    ]
    (root / "metas").mkdir()
    (root / "metas" / "train_dist.json").write_text(json.dumps(entries))
    samples, kinds = read_degradation_data(root / "metas" / "train_dist.json", DEFAULT_DISTORTION_CLASSES)
    # bytedance/Q-Insight @08308fd qinsight_multi_task.py: every entry is a prompt and its answers are the JSON
    # values themselves (no mapping, nothing dropped)
    assert [(s.path.name, s.distortion_class, s.severity) for s in samples] == [
        ("0.jpg", "blur", "obvious"), ("1.jpg", "noise", 2), ("2.jpg", None, 0), ("3.jpg", "brighten", 3)]
    assert kinds == {"unmatchable_answer": 3, "class_outside_the_four": 0}
    entries.append({"image": "dist_imgs/missing.jpg", "distortion_class": "blur", "severity": "slight"})
    (root / "metas" / "train_dist.json").write_text(json.dumps(entries))
    with pytest.raises(IQABenchError, match="missing.jpg.*keep the release's layout"):
        read_degradation_data(root / "metas" / "train_dist.json", DEFAULT_DISTORTION_CLASSES)



def test_meta_images_relative_to_the_data_root_are_found(tmp_path):
    """Q-Insight's script joins `image` to the data root (Data-DeQA-Score/), three levels above the JSON."""
    meta = tmp_path / "kadis700k" / "refA_sd_brief" / "metas" / "train_dist.json"
    write_image(tmp_path / "kadis700k" / "refA_sd_brief" / "dist_imgs" / "0.jpg", 0)
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps([{"image": "kadis700k/refA_sd_brief/dist_imgs/0.jpg", "distortion_class": "blur",
                                 "severity": "obvious"}]))
    samples, _ = read_degradation_data(meta, DEFAULT_DISTORTION_CLASSES)
    assert [s.path.resolve() for s in samples] == [(tmp_path / "kadis700k/refA_sd_brief/dist_imgs/0.jpg").resolve()]


def test_kadis_style_folder_is_read(tmp_path):
    for name in ("ref-a_01_03.bmp", "ref-a_10_05.bmp", "ref-a_25_01.bmp"):
        write_image(tmp_path / "dist_imgs" / name)
    samples, left_out = read_degradation_data(tmp_path, DEFAULT_DISTORTION_CLASSES)
    assert sorted((s.distortion_class, s.severity) for s in samples) == [("blur", "obvious"),
                                                                         ("compression", "catastrophic")]
    assert left_out == 1
    with pytest.raises(IQABenchError, match="not a KADIS-700k-style folder"):
        read_degradation_data(tmp_path / "dist_imgs" / "..", {})


def test_mix_ratio():
    samples = list(range(3))
    assert mix(samples, 10, None, seed=0) == samples  # the release: every prompt of both tasks
    # degradation a fraction r of all prompts: r / (1 - r) * score prompts of them
    assert len(mix(samples, 9, 0.25, seed=0)) == 3
    quarter = mix(samples, 4, 0.2, seed=0)  # 0.2 / 0.8 * 4 = 1: a subsample
    assert len(quarter) == 1 and quarter[0] in samples
    doubled = mix(samples, 7, 0.5, seed=0)  # 7 wanted: two whole copies and one more
    assert sorted(Counter(doubled).values()) == [2, 2, 3]
    assert mix(samples, 7, 0.5, seed=0) == doubled
    with pytest.raises(IQABenchError, match="strictly between 0 and 1"):
        GRPO(degradation_ratio=1.0).check([TrainingSet("a", Path("."), [Record("x", 1, 1, "train")])])


def image_set(root: Path, name: str, distortions) -> TrainingSet:
    records = []
    for i, distortion in enumerate(distortions):
        write_image(root / name / f"{i}.png", i)
        records.append(Record(f"{i}.png", mos_raw=float(i), mos=1.0 + i, split="train", distortion=distortion))
    return TrainingSet(name=name, root=root / name, records=records)


def test_prompts_of_both_tasks(tmp_path):
    koniq = image_set(tmp_path, "koniq", [None, None])
    kadid = image_set(tmp_path, "kadid", [{"type": "jpeg", "level": 1}, {"type": "contrast_change", "level": 2},
                                          {"type": "gaussian_blur", "level": 5}])
    prompts = GRPO(degradation_datasets=["kadid"]).prompts([koniq, kadid])
    assert prompts.counts() == {"score": 5, "degradation": 2, "degradation_left_out": {"kadid": 1},
                                "degradation_kept_as_released": {}}
    rows = prompts.rows()
    assert rows["task"] == ["score"] * 5 + ["degradation"] * 2
    assert [json.loads(a) for a in rows["answer"][5:]] == [
        {"distortion_class": "compression", "severity": "slight"},
        {"distortion_class": "blur", "severity": "catastrophic"}]
    # Q-Insight's split: scores from one dataset, degradation from another
    only = GRPO(score_datasets=["koniq"], degradation_datasets=["kadid"]).prompts([koniq, kadid])
    assert only.counts()["score"] == 2
    with pytest.raises(IQABenchError, match="degradation_datasets names spaq"):
        GRPO(degradation_datasets=["spaq"]).check([koniq])
    with pytest.raises(IQABenchError, match="no degradation prompt"):
        GRPO(degradation_datasets=["koniq"]).check([koniq])
    with pytest.raises(IQABenchError, match="degradation_data 'nowhere.json' not found"):
        GRPO(degradation_data="nowhere.json").check([koniq])
    with pytest.raises(IQABenchError, match="no reward applies to the degradation task"):
        GRPO(degradation_datasets=["kadid"], rewards=("q_insight_score",)).check([koniq, kadid])


def test_trl_adapter_gives_each_reward_its_own_tasks():
    """Q-Insight's accuracy reward is one function over both tasks; here two, whose sum is the same."""
    answer = ('<think>\nx\n</think>\n<answer>\n'
              '{"rating": 3.10, "distortion_class": "blur", "severity": "slight"}\n</answer>')
    columns = dict(prompts=[None] * 2, completions=[[{"content": answer}]] * 2, task=["score", "degradation"],
                   mos=[3.0, None], answer=[None, json.dumps({"distortion_class": "blur", "severity": "moderate"})],
                   image_id=["a", "b"])
    score = _trl_reward("q_insight_score", q_insight_score, {})(**columns)
    degradation = _trl_reward("q_insight_degradation", q_insight_degradation, {})(**columns)
    form = _trl_reward("q_insight_format", q_insight_format, {})(**columns)
    assert score == [1.0, None] and degradation == [None, 0.25] and form == [1.0, 1.0]


def test_released_meta_answers_are_compared_exactly_as_the_release_does(tmp_path):
    """A JSON null never equals the model's "null"; a class outside the four is kept and rewarded when named."""
    root = tmp_path / "refA_sd_brief"
    entries = [{"image": "dist_imgs/0.jpg", "distortion_class": None, "severity": None},
               {"image": "dist_imgs/1.jpg", "distortion_class": "null", "severity": "null"},
               {"image": "dist_imgs/2.jpg", "distortion_class": "contrast", "severity": "moderate"}]
    for i in range(3):
        write_image(root / "dist_imgs" / f"{i}.jpg", i)
    (root / "metas").mkdir()
    (root / "metas" / "train_dist.json").write_text(json.dumps(entries))
    prompts = GRPO(degradation_data=str(root / "metas" / "train_dist.json")).prompts(
        [image_set(tmp_path, "koniq", [None])])
    assert prompts.counts()["degradation"] == 3
    assert list(prompts.counts()["degradation_kept_as_released"].values()) == [
        {"unmatchable_answer": 1, "class_outside_the_four": 1}]
    rows = prompts.rows()

    def reply(kind, severity):
        return (f'<think>\nx\n</think>\n<answer>\n{{"distortion_class": "{kind}", "severity": "{severity}"}}\n'
                "</answer>")

    completions = [[{"content": reply("null", "null")}], [{"content": reply("null", "null")}],
                   [{"content": reply("contrast", "moderate")}]]
    columns = dict(prompts=[None] * 3, completions=completions, task=rows["task"][1:], mos=rows["mos"][1:],
                   answer=rows["answer"][1:], image_id=rows["image_id"][1:])
    # the release: "null" == None is False (0); "null" == "null" (0.25 + 0.75); "contrast" kept and matched
    assert _trl_reward("q_insight_degradation", q_insight_degradation, {})(**columns) == [0.0, 1.0, 1.0]
