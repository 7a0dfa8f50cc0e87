"""Rewards against hand-computed values and the released behaviour (Q-Insight's qinsight_multi_task.py,
VisualQuality-R1)."""

import math

import pytest
from scipy.stats import norm

from iqabench.errors import DuplicateNameError, UnknownNameError
from iqabench_plugins.rl import rewards
from iqabench_plugins.rl.rewards import (
    get_reward,
    q_insight_degradation,
    q_insight_format,
    q_insight_score,
    register_reward,
    reward_tasks,
    visualquality_fidelity,
    visualquality_format,
)


def q_answer(rating: str) -> str:
    return f'<think>\nsharp, well exposed\n</think>\n<answer>\n{{"rating": {rating}}}\n</answer>'


def vq_answer(score: str) -> str:
    return f"<think>fine detail</think><answer>{score}</answer>"


def test_q_insight_score_threshold_is_strict_as_released_and_configurable():
    texts = [q_answer("3.30"), q_answer("3.50"), q_answer("3.60"), "no answer at all", q_answer("2.70")]
    labels = [3.0, 3.0, 3.0, 3.0, 3.0]
    groups = ["a"] * 5
    # |0.30| in, |0.50| out, |0.60| out, unparsable 0, |0.30| in
    assert q_insight_score(texts, labels, groups) == [1.0, 0.0, 0.0, 0.0, 1.0]
    # Q-Insight's `abs(model_score - true_sol) < score_reward_threshold`: exactly on the threshold earns 0
    # (|3.25 - 3.0| = 0.25, representable exactly)
    assert q_insight_score([q_answer("3.25")], [3.0], ["a"], threshold=0.25) == [0.0]
    assert q_insight_score([q_answer("3.20")], [3.0], ["a"], threshold=0.25) == [1.0]


def test_q_insight_score_reads_the_rating_as_the_release_does():
    answers = [
        # the first answer block decides, even if a later one is right
        '<answer>{"rating": 1.00}</answer><answer>{"rating": 3.00}</answer>',
        # the key must be quoted and the value a bare number: 'rating: 3' and '"rating": "3"' do not count
        "<answer>{rating: 3.00}</answer>",
        '<answer>{"rating": "3.00"}</answer>',
        # an unclosed answer is no answer
        '<answer>{"rating": 3.00}',
        # digits and dots that are not a number earn 0 (float("3.0.1") fails)
        '<answer>{"rating": 3.0.1}</answer>',
        # no <think> needed, spaces around the colon allowed, out-of-range values are not refused
        '<answer>{"rating"  :  3.10}</answer>',
        '<answer>{"rating": 5.30}</answer>',
    ]
    labels = [3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 5.0]
    assert q_insight_score(answers, labels, ["a"] * len(answers)) == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]


def d_answer(distortion: str, severity: str) -> str:
    return (f'<think>\nthe edges are soft\n</think>\n<answer>\n{{"distortion_class": "{distortion}", '
            f'"severity": "{severity}"}}\n</answer>')


def test_q_insight_degradation_weights_are_the_papers_alpha1_and_alpha2():
    expected = {"distortion_class": "blur", "severity": "moderate"}
    texts = [d_answer("blur", "moderate"), d_answer("blur", "serious"), d_answer("noise", "moderate"),
             "<answer>blur, moderate</answer>", '<answer>{"severity": "moderate", "distortion_class": "blur"}</answer>']
    # class and severity 0.25 + 0.75; class only 0.25 (alpha1); severity without the class 0; unquoted 0;
    # the release's pattern wants distortion_class before severity
    assert q_insight_degradation(texts, [expected] * 5, ["a"] * 5) == [1.0, 0.25, 0.0, 0.0, 0.0]
    null = {"distortion_class": "null", "severity": "null"}
    assert q_insight_degradation([d_answer("null", "null")], [null], ["a"]) == [1.0]
    assert q_insight_degradation([d_answer("blur", "serious")], [expected], ["a"], class_weight=0.5) == [0.5]


def test_q_insight_format_needs_the_whole_layout():
    good = q_answer("4.10")
    assert q_insight_format([good], [1.0], ["a"]) == [1.0]
    bad = [
        '<think>x</think><answer>{"rating": 4}</answer>',  # no newlines
        good + " trailing",  # not a full match
        '<think>\nx\n</think>\n<answer>\n{"a": {"rating": 4}}\n</answer>',  # nested braces
        "<think>\nx\n</think>\n<answer>\n4.1\n</answer>",  # no JSON object
        'Sure. <think>\nx\n</think>\n<answer>\n{"rating": 4}\n</answer>',  # text before <think>
    ]
    assert q_insight_format(bad, [1.0] * len(bad), ["a"] * len(bad)) == [0.0] * len(bad)


@pytest.mark.parametrize(
    "completion",
    [
        '<think>\nsharp\n</think>\n<answer>\n{"rating": 4.10}\n</answer>\n',  # a trailing newline
        '<think>\nsharp\n</think>\n\n<answer>\n{"rating": 4.10}\n</answer>',  # a blank line between blocks
        '<think>  \nsharp\n</think>  \n<answer>  \n{"rating": 4.10}  \n</answer>  ',  # trailing spaces
        '<think>\nsharp\n  </think>\n<answer>\n{"rating": 4.10}\n  </answer>',  # indented closing tags
        '<think>\nline one\nline two\n</think>\n<answer>\n{"rating": 4.10}\n</answer>',  # multi-line reasoning
    ],
)
def test_q_insight_format_accepts_what_the_released_pattern_accepts(completion):
    assert q_insight_format([completion], [1.0], ["a"]) == [1.0]


def test_rewards_say_which_tasks_they_score():
    assert reward_tasks(q_insight_score) == ("score",)
    assert reward_tasks(q_insight_degradation) == ("degradation",)
    assert set(reward_tasks(q_insight_format)) == {"score", "degradation"}
    assert reward_tasks(lambda texts, labels, groups: [0.0]) == ("score",)  # a third-party reward by default


def test_visualquality_format():
    texts = [vq_answer("3"), "<think>a</think>\n\n<answer>3</answer>", "<answer>3</answer>", vq_answer("3") + "x"]
    assert visualquality_format(texts, [1.0] * 4, ["a"] * 4) == [1.0, 1.0, 0.0, 0.0]


def fidelity(prediction, mean_other, var_self, var_other, target, eps=1e-6):
    p = norm.cdf((prediction - mean_other) / math.sqrt(var_self + var_other + eps))
    return math.sqrt(p * target + eps) + math.sqrt((1 - p) * (1 - target) + eps)


def test_visualquality_fidelity_hand_computed():
    # image A (MOS 4) predicted 4 and 3: mean 3.5, unbiased variance 0.5
    # image B (MOS 2) predicted 2 and 2: mean 2, variance 0
    # image C (MOS 2, ties B) predicted 3 and an unparsable answer: mean 3, variance 0 (one prediction)
    texts = [vq_answer("4"), vq_answer("3"), vq_answer("2"), vq_answer("2"), vq_answer("3"), "garbage"]
    labels = [4.0, 4.0, 2.0, 2.0, 2.0, 2.0]
    groups = ["A", "A", "B", "B", "C", "C"]
    expected = [
        (fidelity(4, 2.0, 0.5, 0.0, 1.0) + fidelity(4, 3.0, 0.5, 0.0, 1.0)) / 2,
        (fidelity(3, 2.0, 0.5, 0.0, 1.0) + fidelity(3, 3.0, 0.5, 0.0, 1.0)) / 2,
        (fidelity(2, 3.5, 0.0, 0.5, 0.0) + fidelity(2, 3.0, 0.0, 0.0, 0.5)) / 2,
        (fidelity(2, 3.5, 0.0, 0.5, 0.0) + fidelity(2, 3.0, 0.0, 0.0, 0.5)) / 2,
        (fidelity(3, 3.5, 0.0, 0.5, 0.0) + fidelity(3, 2.0, 0.0, 0.0, 0.5)) / 2,
        0.0,
    ]
    assert visualquality_fidelity(texts, labels, groups, unparsable="exclude") == pytest.approx(expected, abs=1e-12)
    # a spot value worked by hand: A's "4" against B alone is sqrt(Φ(2/sqrt(0.5)) + 1e-6) + sqrt(1e-6)
    assert fidelity(4, 2.0, 0.5, 0.0, 1.0) == pytest.approx(0.99983037, abs=1e-7)


def test_visualquality_fidelity_without_another_image_is_zero():
    assert visualquality_fidelity([vq_answer("4"), vq_answer("3")], [4.0, 4.0], ["A", "A"]) == [0.0, 0.0]


def test_visualquality_fidelity_by_default_is_the_releases_random_substitute_and_signed_numbers():
    # grpo_jsonl.py: no number -> random.randint(1, 5), counted in the image's mean and variance; "-?\\d+(\\.\\d+)?"
    # keeps the sign; without an <answer> block the first number of the whole completion is read
    import random

    substitute = float(random.Random(7).randint(1, 5))
    texts = [vq_answer("4"), "no number at all", vq_answer("-1.5"), "I rate it 2 out of 5"]
    labels = [4.0, 4.0, 2.0, 2.0]
    groups = ["A", "A", "B", "B"]
    a, b = [4.0, substitute], [-1.5, 2.0]
    mean_a, var_a = sum(a) / 2, (a[0] - a[1]) ** 2 / 2  # unbiased variance of two values
    mean_b, var_b = sum(b) / 2, (b[0] - b[1]) ** 2 / 2
    expected = [fidelity(p, mean_b, var_a, var_b, 1.0) for p in a] + [fidelity(p, mean_a, var_b, var_a, 0.0) for p in b]
    assert visualquality_fidelity(texts, labels, groups, rng=random.Random(7)) == pytest.approx(expected, abs=1e-12)
    # iqabench's stricter options: the number-less completion and the negative one earn 0 and leave the moments
    strict = visualquality_fidelity(texts, labels, groups, unparsable="exclude", negative="fail")
    assert strict[1] == 0.0 and strict[2] == 0.0
    assert strict[0] == pytest.approx(fidelity(4.0, 2.0, 0.0, 0.0, 1.0), abs=1e-12)


def test_unknown_reward_names_the_close_and_available_ones():
    with pytest.raises(UnknownNameError) as info:
        get_reward("q_insight_scor")
    message = str(info.value)
    assert "'q_insight_score'" in message and "visualquality_fidelity" in message


def test_register_reward_adds_a_third_party_reward(monkeypatch):
    monkeypatch.setattr(rewards, "_REGISTERED", {})

    def length_reward(texts, mos, groups):
        return [float(len(t)) for t in texts]

    register_reward("length", length_reward)
    assert get_reward("length")(["abc"], [1.0], ["a"]) == [3.0]
    with pytest.raises(DuplicateNameError):
        register_reward("q_insight_format", length_reward)
