"""Integrity guards and the pluggable judge.

Guards answer "is this a real answer at all?": :class:`Prose` fails keyword lists, filler
and empty text; :class:`NoEcho` fails copies of the task text. A rubric marks them as
``gate`` criteria, whose score caps every other criterion (see :class:`rlvr.rewards.rubric.Rubric`),
so stuffing phrases or padding to a word count earns nothing.

:class:`JudgeCheck` is the one checker a program does not decide: it asks a judge (any
callable, for instance an LLM behind :class:`LLMJudge`). It is marked ``judged = True``;
rubrics that hold one are nondeterministic and must be given a judge to score.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from rlvr.rewards.rubric_base import STOPWORDS, Answer, Check, Checker

# fmt: off
AUXILIARIES = frozenset((
    "is", "are", "was", "were", "be", "been", "being", "will", "would", "can", "could",
    "should", "shall", "may", "might", "must", "has", "have", "had", "do", "does", "did",
))
# fmt: on
"""Finite auxiliary verbs: a keyword list has none, a sentence nearly always has one."""

_LOWER_WORD = re.compile(r"[^\W_]+")


def plain_words(text: str) -> list[str]:
    """Casefolded letter/digit runs: the unit of the guards' statistics."""
    return _LOWER_WORD.findall(text.casefold())


def _longest_run_without_stopword(words: list[str]) -> int:
    longest = run = 0
    for word in words:
        run = 0 if word in STOPWORDS else run + 1
        longest = max(longest, run)
    return longest


def _frame_share(sentences: tuple[str, ...]) -> float:
    """Share of the sentences that open with the most common first three words (0 under 6)."""
    if len(sentences) < 6:
        return 0.0
    openings = [tuple(plain_words(s)[:3]) for s in sentences]
    return max(openings.count(o) for o in openings) / len(openings)


@dataclass(frozen=True)
class Prose(Checker):
    """The answer reads as prose, not as a keyword list or filler: 1 or 0.

    Fails when the running text (JSON answers: their string values) has fewer than
    ``min_words`` words, a share of English function words under ``min_stopword_share``, a run
    of more than ``max_keyword_run`` words with none, no auxiliary verb at all (``is``,
    ``will``, ``can``...); or, from 12 words on, a share of
    distinct word trigrams under ``min_distinct_trigrams``; or, from 6 sentences on, more than
    ``max_frame_share`` of them opening with the same three words (template stuffing). The
    statistics are English ones.
    """

    kind: ClassVar[str] = "prose"
    min_words: int = 5
    min_stopword_share: float = 0.15
    max_keyword_run: int = 24
    min_distinct_trigrams: float = 0.75
    max_frame_share: float = 0.34

    def __call__(self, answer: Answer) -> Check:
        words = plain_words(answer.prose)
        problems = []
        if len(words) < self.min_words:
            problems.append(f"only {len(words)} words")
        if len(words) >= self.min_words:
            share = sum(word in STOPWORDS for word in words) / len(words)
            if share < self.min_stopword_share:
                problems.append(f"function words {share:.0%} < {self.min_stopword_share:.0%}")
            run = _longest_run_without_stopword(words)
            if run > self.max_keyword_run:
                problems.append(f"a keyword run of {run} words")
            verbs = sum(word in AUXILIARIES for word in words)
            if verbs == 0:
                problems.append(f"{verbs} auxiliary verbs in {len(words)} words")
        if len(words) >= 12:
            trigrams = list(zip(words, words[1:], words[2:], strict=False))
            distinct = len(set(trigrams)) / len(trigrams)
            if distinct < self.min_distinct_trigrams:
                problems.append(f"repetitive: {distinct:.0%} distinct trigrams")
        frame = _frame_share(Answer(answer.prose).sentences)
        if frame > self.max_frame_share:
            problems.append(f"{frame:.0%} of the sentences open with the same three words")
        return Check(float(not problems), "; ".join(problems) or "reads as prose")

    def describe(self) -> str:
        return "Write natural prose: no keyword lists, no repeated filler."


@dataclass(frozen=True)
class NoEcho(Checker):
    """The answer does not copy the task text: at most ``max_share`` of its word ``n``-grams
    occur in the prompt. 1 or 0; 1 when there is no prompt to compare with."""

    kind: ClassVar[str] = "no_echo"
    n: int = 6
    max_share: float = 0.5

    def __call__(self, answer: Answer) -> Check:
        if not answer.prompt:
            return Check(1.0, "no prompt to compare with")
        words = plain_words(answer.prose)
        grams = list(zip(*(words[i:] for i in range(self.n)), strict=False))
        if not grams:
            return Check(1.0, "too short to copy")
        source = plain_words(answer.prompt)
        known = set(zip(*(source[i:] for i in range(self.n)), strict=False))
        share = sum(gram in known for gram in grams) / len(grams)
        if share > self.max_share:
            return Check(0.0, f"{share:.0%} of the answer copies the task text")
        return Check(1.0, f"{share:.0%} overlap with the task text")

    def describe(self) -> str:
        return "Do not copy the task text; write the answer in your own words."


JudgeFn = Callable[[str, str, str], "float | bool | None"]
"""A judge: ``(question, answer, prompt) -> score in [0, 1]`` (or bool); ``None`` = cannot
tell, which makes the criterion unscorable (an error, never a silent 0)."""


class UnscorableError(RuntimeError):
    """A criterion could not be scored (no judge bound, or the judge could not decide)."""


@dataclass(frozen=True)
class JudgeCheck(Checker):
    """A criterion no program checks, decided by a judge (marked ``judged``).

    ``judge`` is bound at scoring time (``Rubric.with_judge`` or ``Rubric.score(judge=...)``);
    it is not part of the spec. Scoring without one raises :class:`UnscorableError`.
    """

    kind: ClassVar[str] = "judge"
    judged: ClassVar[bool] = True
    question: str
    judge: JudgeFn | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.question, str) or not self.question.strip():
            raise ValueError("judge.question must be a non-empty string")

    def __call__(self, answer: Answer) -> Check:
        if self.judge is None:
            raise UnscorableError(f"no judge is bound for {self.question!r}")
        verdict = self.judge(self.question, answer.text, answer.prompt)
        if verdict is None:
            raise UnscorableError(f"the judge could not decide {self.question!r}")
        score = float(verdict)
        if not 0.0 <= score <= 1.0:
            raise UnscorableError(f"the judge returned {verdict!r}, not a score in [0, 1]")
        return Check(score, f"judged {score:.2f}")

    def describe(self) -> str:
        return self.question

    def to_spec(self) -> dict[str, object]:
        return {"type": self.kind, "question": self.question}


_VERDICT = re.compile(r"\b(YES|NO)\b")


@dataclass(frozen=True)
class LLMJudge:
    """Adapts a text-completion callable (``prompt -> reply``) into a :data:`JudgeFn`.

    It asks for ``YES`` or ``NO`` and reads the first one in the reply; a reply with neither
    gives ``None``. Wrap an rlvr agent as ``LLMJudge(lambda p: agent.act([Message("user", p)]))``.
    """

    complete: Callable[[str], str]

    def __call__(self, question: str, answer: str, prompt: str) -> float | None:
        request = (
            "You grade one criterion of an answer. Reply with YES if the answer meets it, "
            "NO otherwise, then one short reason.\n\n"
            f"Task:\n{prompt}\n\nAnswer:\n{answer}\n\nCriterion: {question}"
        )
        found = _VERDICT.search(self.complete(request).upper())
        return None if found is None else float(found.group(1) == "YES")
