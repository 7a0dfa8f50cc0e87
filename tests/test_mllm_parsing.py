r"""Parsers of Q-Insight / RACT and VisualQuality-R1 completions on realistic outputs.

What the official parsers read is written out here with their own regular
expressions (bytedance/Q-Insight ``qinsight_multi_task.py``: ``<answer>(.*?)</answer>``
then ``"rating"\s*:\s*([\d\.]+)``; TianheWu/VisualQuality-R1 README: last
``<answer>``, first ``\d+(\.\d+)?``), as the independent expectation for ratings
outside [1, 5].
"""

import re

import pytest

from iqabench_plugins.mllm.parsing import parse_q_insight, parse_visualquality

WELL_FORMED = (
    "<think>\nThe image shows a street at dusk. There is visible sensor noise in the sky and the edges of the "
    "buildings are slightly soft, but the exposure is balanced and colours are natural.\n</think>\n"
    '<answer>\n{"rating": 3.46}\n</answer>'
)


class TestQInsight:
    def test_well_formed(self):
        parsed = parse_q_insight(WELL_FORMED)
        assert parsed.score == pytest.approx(3.46)
        assert parsed.error is None
        assert parsed.reasoning.startswith("The image shows a street at dusk.")
        assert "<answer>" not in parsed.reasoning

    @pytest.mark.parametrize(
        "answer, expected",
        [
            ('{"rating": 4}', 4.0),
            ('{"rating": "2.75"}', 2.75),  # number as a string
            ("{rating: 3.10}", 3.10),  # key without quotes: not JSON
            ("{'rating': 1.5}", 1.5),  # single quotes: not JSON
            ('```json\n{"rating": 4.25}\n```', 4.25),  # fenced code block
            ('The final score is as follows. {"rating": 2.90, "reason": "blurry"}', 2.90),  # extra text and keys
            ('{"Rating": 3.3}', 3.3),  # capitalised key
            ('{"rating": 3.5/5}', 3.5),  # score out of 5
            ('{"rating": 5.00}', 5.0),  # upper bound inclusive
            ('{"rating": 1}', 1.0),  # lower bound inclusive
        ],
    )
    def test_tolerates_what_models_write(self, answer, expected):
        parsed = parse_q_insight(f"<think>noise, blur</think><answer>{answer}</answer>")
        assert parsed.error is None, parsed.error
        assert parsed.score == pytest.approx(expected)

    def test_missing_closing_answer_tag(self):
        assert parse_q_insight('<think>ok</think><answer>{"rating": 3.2}').score == pytest.approx(3.2)

    def test_tags_with_spaces_and_case(self):
        parsed = parse_q_insight('< think >sharp</ think >< Answer >{"rating": 4.4}</ANSWER>')
        assert parsed.score == pytest.approx(4.4)
        assert parsed.reasoning == "sharp"

    def test_several_answers_the_last_rating_decides(self):
        text = ('<think>a</think><answer>{"rating": 2.0}</answer>'
                '<think>on reflection</think><answer>{"rating": 3.75}</answer>')
        parsed = parse_q_insight(text)
        assert parsed.score == pytest.approx(3.75)
        assert parsed.reasoning == "a\n\non reflection"

    def test_last_answer_without_rating_falls_back_to_earlier_one(self):
        text = '<answer>{"rating": 2.5}</answer><answer>done</answer>'
        assert parse_q_insight(text).score == pytest.approx(2.5)

    def test_json_without_answer_tags_outside_reasoning(self):
        parsed = parse_q_insight('<think>looks fine</think>\n{"rating": 4.1}')
        assert parsed.score == pytest.approx(4.1)

    def test_number_in_reasoning_is_not_a_rating(self):
        parsed = parse_q_insight('<think>I would say "rating": 4 at first</think> no answer given')
        assert parsed.score is None
        assert "no <answer>" in parsed.error

    @pytest.mark.parametrize(
        "answer, reason",
        [
            ('{"rating": -3}', "negative"),  # the official pattern cannot read it either
            ('{"rating": "good"}', "not a number"),
            ('{"rating": null}', "not a number"),
            ('{"rating": true}', "not a number"),
            ('{"rating": "N/A"}', "not a number"),
            ('{"rating": "3-4"}', "not a number"),  # a range is not one rating
            ('{"quality": 3.5}', 'no "rating" key'),
            ("The image quality is good.", 'no "rating" key'),
            ("", 'no "rating" key'),
        ],
    )
    def test_strict_about_what_is_not_a_rating(self, answer, reason):
        parsed = parse_q_insight(f"<think>r</think><answer>{answer}</answer>")
        assert parsed.score is None
        assert reason in parsed.error
        assert parsed.reasoning == "r"  # the reasoning survives a failed answer

    def test_random_bytes_fail(self):
        parsed = parse_q_insight("\n\n\x00ÿ garbage 3.5 ")
        assert parsed.score is None and parsed.error

    @pytest.mark.parametrize("answer", ['{"rating": 5.2}', '{"rating": 7.2}', '{"rating": 0.5}', '{"rating": 72}'])
    def test_ratings_outside_the_prompt_range_are_read_as_the_official_parser_reads_them(self, answer):
        text = f"<think>r</think><answer>{answer}</answer>"
        official = float(re.search(r'"rating"\s*:\s*([\d\.]+)', re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
                                   .group(1)).group(1))
        parsed = parse_q_insight(text)
        assert parsed.error is None and parsed.score == official
        assert parsed.outside((1, 5))
        assert not parse_q_insight('<answer>{"rating": 5.0}</answer>').outside((1, 5))


class TestVisualQuality:
    def test_thinking_output(self):
        text = (
            "<think>The photo is sharp with good contrast; slight overexposure in the top left.</think>\n"
            "<answer>3.87</answer>"
        )
        parsed = parse_visualquality(text)
        assert parsed.score == pytest.approx(3.87)
        assert parsed.reasoning.startswith("The photo is sharp")

    def test_non_thinking_output(self):
        parsed = parse_visualquality("<answer>4.12</answer>")
        assert parsed.score == pytest.approx(4.12)
        assert parsed.reasoning is None

    def test_last_answer_first_number(self):
        text = "<answer>2.00</answer> wait <answer>The score is 3.45 out of 5.</answer>"
        assert parse_visualquality(text).score == pytest.approx(3.45)

    def test_integer_and_unclosed(self):
        assert parse_visualquality("<think>x</think><answer> 4").score == 4.0

    @pytest.mark.parametrize("answer", ["9.1", "5.2", "0.75", "The score is 5.30."])
    def test_scores_outside_the_prompt_range_are_read_as_the_official_parser_reads_them(self, answer):
        text = f"<think>x</think><answer>{answer}</answer>"
        official = float(re.search(r"\d+(\.\d+)?", re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)[-1]).group())
        parsed = parse_visualquality(text)
        assert parsed.error is None and parsed.score == official and parsed.outside((1, 5))

    def test_a_bare_number_without_tags_counts_but_a_number_in_the_reasoning_does_not(self):
        assert parse_visualquality("3.45").score == pytest.approx(3.45)  # non-thinking output without its tags
        assert parse_visualquality("<think>blur</think>\n 2.10 ").score == pytest.approx(2.10)
        assert parse_visualquality("<think>I count 2 people</think>").score is None

    @pytest.mark.parametrize(
        "text, reason",
        [
            ("<think>Overall about 3.5.</think> I think it is fair.", "no <answer>"),
            ("<answer>fair</answer>", "no number"),
            ("<answer>-2</answer>", "negative"),  # the official pattern would drop the sign and read 2
            ("<answer>3 - 4</answer>", "range"),
        ],
    )
    def test_failures(self, text, reason):
        parsed = parse_visualquality(text)
        assert parsed.score is None
        assert reason in parsed.error
