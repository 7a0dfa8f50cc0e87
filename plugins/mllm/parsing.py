r"""Reading a score out of what a reasoning model wrote, or saying why there is none.

Real completions are messier than the format the model was trained on: tags
repeated, a closing tag missing, the JSON key unquoted, "3.5/5", a sentence
after the number. Those still carry one clear rating and are accepted. What is
not a rating is a failure with a reason, never a guess: no answer, a word
instead of a number, a range ("3-4"), a negative number. The runner counts
failures per dataset; a default or random score would hide them.

A rating outside the [1, 5] the prompt asks for (5.2, 0.8, 7) is a rating:
the official parsers read it as written (Q-Insight's ``"rating"\s*:\s*([\d\.]+)``,
VisualQuality-R1's first ``\d+(\.\d+)?``), and so do these. The scorer counts
such ratings (:meth:`ParsedAnswer.outside`) so that results can report them.
Negative numbers are failures: Q-Insight's pattern cannot read one, and
VisualQuality-R1's would silently drop the sign (``-2`` read as 2).

Rules shared by both parsers:

* tags are matched case-insensitively and may contain spaces (``< answer >``);
* an ``<answer>`` without its closing tag runs to the next ``<answer>`` or the end;
* the reasoning is the text of every ``<think>`` block, joined; without think tags
  it is the text outside the answers (None when empty).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

_THINK_OPEN = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)
_ANSWER_OPEN = re.compile(r"<\s*answer\s*>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"<\s*/\s*answer\s*>", re.IGNORECASE)
_THINK_BLOCK = re.compile(r"<\s*think\s*>(.*?)(?:<\s*/\s*think\s*>|(?=<\s*answer\s*>)|\Z)", re.IGNORECASE | re.DOTALL)

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
#: a number standing alone: nothing after it but whitespace, "/ 5"-style scales or prose after a space
_LEADING_NUMBER = re.compile(rf"^\s*({_NUMBER})(?=$|\s|/|,|;|\.\s|\.$)")
_RATING_KEY = re.compile(
    r"""["']?rating["']?\s*[:=]\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^,}\n]*))""",
    re.IGNORECASE,
)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_FIRST_NUMBER = re.compile(_NUMBER)
_BARE_NUMBER = re.compile(rf"\s*({_NUMBER})\s*")


@dataclass(frozen=True)
class ParsedAnswer:
    """A parsed completion: ``score`` or ``error`` is set, ``reasoning`` when the model wrote any."""

    score: float | None
    reasoning: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.score is not None

    def outside(self, score_range: tuple[float, float]) -> bool:
        """True for a rating that parsed but lies outside ``score_range`` (kept as a score, and counted)."""
        return self.score is not None and not score_range[0] <= self.score <= score_range[1]


def extract_reasoning(text: str) -> str | None:
    """The reasoning: all ``<think>`` blocks joined, else the text outside the answers."""
    blocks = [block.strip() for block in _THINK_BLOCK.findall(text)]
    blocks = [block for block in blocks if block]
    if blocks:
        return "\n\n".join(blocks)
    if _THINK_OPEN.search(text):
        return None
    outside = _ANSWER_BLOCK_SPAN.sub(" ", text)
    outside = _THINK_CLOSE.sub(" ", outside).strip()
    return outside or None


_ANSWER_BLOCK_SPAN = re.compile(r"<\s*answer\s*>.*?(?:<\s*/\s*answer\s*>|(?=<\s*answer\s*>)|\Z)",
                                re.IGNORECASE | re.DOTALL)


def extract_answers(text: str) -> list[str]:
    """The contents of every ``<answer>`` block, in order; an unclosed one runs to the next or the end."""
    answers = []
    opens = list(_ANSWER_OPEN.finditer(text))
    for index, match in enumerate(opens):
        end = opens[index + 1].start() if index + 1 < len(opens) else len(text)
        body = text[match.end() : end]
        close = _ANSWER_CLOSE.search(body)
        answers.append(body[: close.start()] if close else body)
    return answers


def _number(raw: object, what: str) -> tuple[float | None, str | None]:
    """Turn a JSON value or a string into a finite, non-negative float, or say why it is not one."""
    if isinstance(raw, bool) or raw is None:
        return None, f"{what} {json.dumps(raw)} is not a number"
    if isinstance(raw, (int, float)):
        value = float(raw)
    else:
        match = _LEADING_NUMBER.match(str(raw))
        if not match:
            return None, f"{what} {str(raw).strip()!r} is not a number"
        value = float(match.group(1))
    if not math.isfinite(value):
        return None, f"{what} {value} is not a finite number"
    if value < 0:
        return None, f"{what} {value:g} is negative"
    return value, None


def _rating_in(answer: str) -> tuple[bool, float | None, str | None]:
    """``(has_rating_key, value, error)`` for one answer body: JSON first, then a tolerant key match."""
    for candidate in _JSON_OBJECT.findall(answer):
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict):
            for key, raw in obj.items():
                if str(key).strip().lower() == "rating":
                    return (True, *_number(raw, "rating"))
    match = _RATING_KEY.search(answer)
    if match is None:
        return False, None, None
    raw = next(group for group in (match.group("dq"), match.group("sq"), match.group("bare")) if group is not None)
    return (True, *_number(raw, "rating"))


def _outside_think(text: str) -> str:
    return _THINK_BLOCK.sub(" ", text)


def parse_q_insight(text: str) -> ParsedAnswer:
    """Q-Insight / RACT: the JSON ``rating`` inside ``<answer>``.

    With several answers the last one holding a ``rating`` key decides. Without
    any answer tag the text outside ``<think>`` is searched for the key, so a
    bare ``{"rating": 3.2}`` still counts, but a number in the reasoning never does.
    """
    reasoning = extract_reasoning(text)
    answers = extract_answers(text)
    places = answers if answers else [_outside_think(text)]
    for answer in reversed(places):
        found, value, error = _rating_in(answer)
        if found:
            return ParsedAnswer(score=value, reasoning=reasoning, error=error)
    if answers:
        return ParsedAnswer(None, reasoning, 'no "rating" key in the <answer>')
    return ParsedAnswer(None, reasoning, 'no <answer> tag and no "rating" key')


def parse_visualquality(text: str) -> ParsedAnswer:
    """VisualQuality-R1: the first number of the last ``<answer>``.

    Without an answer tag, the authors' script takes the first number of the
    whole output (and, failing that, a random score). Here such an output
    counts only when all it holds outside ``<think>`` is one number (``3.45``
    alone); otherwise it is a failure, because a number in the reasoning ("2
    people", "a 3x3 grid") is not the model's rating.
    """
    reasoning = extract_reasoning(text)
    answers = extract_answers(text)
    if not answers:
        bare = _BARE_NUMBER.fullmatch(_outside_think(text))
        if bare:
            value, error = _number(float(bare.group(1)), "score")
            return ParsedAnswer(value, reasoning if _THINK_OPEN.search(text) else None, error)
        return ParsedAnswer(None, reasoning, "no <answer> tag")
    last = answers[-1]
    match = _FIRST_NUMBER.search(last)
    if match is None:
        return ParsedAnswer(None, reasoning, f"answer {last.strip()[:80]!r} holds no number")
    tail = last[match.end() :]
    if re.match(r"\s*(?:-|–|to)\s*\d", tail):
        return ParsedAnswer(None, reasoning, f"answer {last.strip()[:80]!r} is a range, not one score")
    value, error = _number(float(match.group(0)), "score")
    return ParsedAnswer(value, reasoning, error)
