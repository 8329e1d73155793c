"""Rubric criteria and checkers: scores, weighting, gates, judges, loading, bad input."""

from __future__ import annotations

import json

import pytest

from rlvr.rewards.rubric import (
    CHECKERS,
    Answer,
    BulletList,
    Casing,
    Contains,
    Criterion,
    EndsWith,
    Excludes,
    Headings,
    InOrder,
    JsonSchema,
    JudgeCheck,
    LLMJudge,
    NoEcho,
    NumericFact,
    ParagraphCount,
    Placeholders,
    Prose,
    Regex,
    Rubric,
    SentenceCount,
    StartsWith,
    TitleLine,
    UnscorableError,
    WordCount,
    checker_from_spec,
    load_rubrics,
    standard_guards,
)

PROSE = (
    "The meeting is on Thursday 12 March in Room 4B. We will start at 14:00 and the total cost "
    "is 426.00 EUR for the whole team. Please let me know if anything needs to change."
)

SAMPLES = [
    Contains(("Room 4B", "Thursday")),
    Contains(("Room 4B", "Hall C"), match="any"),
    Excludes(("09:00",)),
    Regex(r"\d{2}:\d{2}"),
    WordCount(10, 60),
    SentenceCount(2, 5),
    ParagraphCount(1, 1),
    StartsWith("The meeting"),
    EndsWith("needs to change."),
    Casing("sentence"),
    InOrder(("Thursday", "Room 4B", "14:00")),
    NumericFact("426", "total cost"),
    Placeholders(("[PHONE]",)),
    JsonSchema({"type": "object", "required": ["a"]}),
    BulletList(2, 4),
    Headings(("Overview", "Details")),
    TitleLine("Subject:"),
    Prose(),
    NoEcho(),
    JudgeCheck("Is the tone polite?"),
]


def score(check, text, prompt=""):
    return check(Answer(text, prompt)).score


# ---------------------------------------------------------------- single checkers


def test_every_checker_kind_has_a_sample_that_round_trips():
    assert sorted({type(s).kind for s in SAMPLES}) == sorted(CHECKERS)
    for sample in SAMPLES:
        spec = json.loads(json.dumps(sample.to_spec()))
        rebuilt = checker_from_spec(spec)
        assert rebuilt == sample and rebuilt.describe() == sample.describe() != ""


def test_program_checkers_score_the_reference_prose():
    expected = {
        "contains": 1.0,
        "excludes": 1.0,
        "regex": 1.0,
        "word_count": 1.0,
        "sentence_count": 1.0,
        "paragraph_count": 1.0,
        "starts_with": 1.0,
        "ends_with": 1.0,
        "casing": 1.0,
        "in_order": 1.0,
        "numeric_fact": 1.0,
        "placeholders": 0.0,
        "json_schema": 0.0,
        "bullet_list": 0.0,
        "headings": 0.0,
        "title_line": 0.0,
        "prose": 1.0,
        "no_echo": 1.0,
    }
    for sample in SAMPLES:
        if not sample.judged:
            assert score(sample, PROSE) == expected[sample.kind], sample.kind


@pytest.mark.parametrize(
    "text",
    ["", " ", "\x00\ud7ff\ufffd", "{" * 5000, "[" * 300 + "]", "é" * 50_000, "1,2,3.4.5 " * 500],
)
def test_program_checkers_never_raise_and_stay_in_bounds(text):
    for sample in SAMPLES:
        if not sample.judged:
            assert 0.0 <= score(sample, text, prompt=text) <= 1.0


def test_contains_is_whole_word_whitespace_and_case_insensitive():
    check = Contains(("Room 4",))
    assert score(check, "meet in room\n4 today") == 1.0
    assert score(check, "meet in Room 42") == 0.0
    assert score(Contains(("A", "B", "C", "D")), "A and B") == 0.5
    assert score(Contains(("Room",), case_sensitive=True), "room") == 0.0


def test_counts_fall_off_linearly_outside_the_range():
    check = WordCount(10, 20)
    assert score(check, "word " * 15) == 1.0
    assert score(check, "word " * 30) == pytest.approx(0.0)
    assert score(check, "word " * 25) == pytest.approx(0.5)
    assert score(check, "word " * 5) == pytest.approx(0.0)
    assert score(SentenceCount(3, 3), "One. Two! Three? Four") == pytest.approx(1 - 1 / 1.5)


def test_paragraphs_ignore_heading_only_blocks():
    text = "# Title\n\nFirst paragraph here.\n\n## Part\n\nSecond one."
    assert len(Answer(text).paragraphs) == 2
    assert score(ParagraphCount(2, 2), text) == 1.0


def test_casing_rules_hold_in_any_cased_script():
    assert score(Casing("upper"), "ÉCOLE ΑΘΗΝΑ МОСКВА 123") == 1.0
    assert score(Casing("lower"), "straße école αθήνα") == 1.0
    assert score(Casing("lower"), "Straße") < 1.0
    assert score(Casing("sentence"), "Über alles. über nichts.") == 0.5
    assert score(Casing("upper"), "12345 !!!") == 0.0  # no cased letter to judge


def test_numeric_fact_needs_the_right_number_right_after_the_cue():
    check = NumericFact("1234.5", "total cost", tolerance="0.01")
    assert score(check, "The total cost is 1,234.50 EUR.") == 1.0
    assert score(check, '{"total_cost": 1234.5}') == 1.0
    assert score(check, "The total cost is 1,000 EUR, not 1234.50.") == 0.0
    assert score(check, "1234.50 is the total cost") == 0.0
    assert score(check, "total 1234.5") == 0.0
    with pytest.raises(ValueError):
        NumericFact("twelve", "total")


def test_json_schema_subset():
    schema = {
        "type": "object",
        "required": ["name", "tags"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 2},
            "price": {"type": "number", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        },
    }
    check = JsonSchema(schema)
    assert score(check, '{"name": "Lamp", "tags": ["a"]}') == 1.0
    assert score(check, 'Here:\n```json\n{"name": "Lamp", "tags": []}\n```\n') == 1.0
    assert score(check, '{"name": "Lamp", "tags": ["a", "b", "c"]}') == 0.0
    assert score(check, '{"name": "Lamp", "tags": [], "x": 1}') == 0.0
    assert score(check, '{"name": "Lamp", "tags": [], "price": true}') == 0.0
    assert score(check, "not json") == 0.0
    with pytest.raises(ValueError, match="unsupported"):
        JsonSchema({"type": "object", "patternProperties": {}})


def test_format_checkers():
    text = "Subject: Team day\n\n## Overview\n\n- one\n- two\n* three\n\n## Details\n\nText."
    assert score(TitleLine("Subject:"), text) == 1.0
    assert score(TitleLine("Subject:"), "Subject: Team day.\n\nText") == 0.0
    assert score(Headings(("Overview", "Details")), text) == 1.0
    assert score(Headings(("Details", "Overview")), text) == 0.5
    assert score(BulletList(3, 3), text) == 1.0
    assert score(Placeholders(("[PHONE]",)), "Call [PHONE].") == 1.0
    assert score(Placeholders(("[PHONE]",)), "Call [PHONE] or [FAX].") == 0.5
    assert score(InOrder(("one", "three")), text) == 1.0
    assert score(InOrder(("three", "one")), text) == 0.0


def test_guards_fail_keyword_lists_filler_and_echo():
    assert score(Prose(), PROSE) == 1.0
    assert score(Prose(), "Room 4B Thursday 14:00 426.00 EUR Anna Smith total cost") == 0.0
    assert score(Prose(), "This is filler text. " * 20) == 0.0
    assert score(Prose(), " ".join(f"The answer is {n}." for n in range(12))) == 0.0
    assert score(Prose(), "") == 0.0
    prompt = "Write an email about the meeting. " + PROSE
    assert score(NoEcho(), prompt, prompt=prompt) == 0.0
    assert score(NoEcho(), PROSE, prompt="Write about the meeting.") == 1.0


# ---------------------------------------------------------------- rubrics


def make_rubric() -> Rubric:
    return Rubric.of(
        Criterion("venue", Contains(("Room 4B",)), weight=3, category="facts"),
        Criterion("cost", NumericFact("426", "total cost"), weight=2, category="facts"),
        Criterion("short", WordCount(max=20), weight=1, category="length", required=False),
        *standard_guards(),
    )


def test_reward_is_the_weighted_mean_and_success_needs_required_only():
    result = make_rubric().score(PROSE)
    assert result.scores["short"] < 1.0  # 38 words, optional
    expected = (3 + 2 + result.scores["short"]) / 6  # the gates weigh 0
    assert result.reward == pytest.approx(expected)
    assert result.success and result.failed == ("short",)
    wrong = make_rubric().score(PROSE.replace("426.00", "400.00"))
    assert not wrong.success and "cost" in wrong.failed
    assert wrong.reward == pytest.approx(expected - 2 / 6)


def test_the_on_topic_gate_zeroes_off_topic_answers():
    rubric = Rubric.of(
        Criterion("no_stale", Excludes(("09:00",)), category="facts"),
        Criterion("short", WordCount(max=40), category="length"),
    ).with_guards(topic=["Room 4B", "Thursday"])
    assert rubric["integrity/on_topic"].gate and rubric["integrity/on_topic"].weight == 0.0
    off_topic = "The answer is probably fine, so let me think about it for a while."
    assert rubric.score(off_topic).reward == 0.0
    assert rubric.score("We will meet in Room 4B, as it is the usual place.").reward == 1.0


def test_a_failed_gate_zeroes_every_component():
    stuffed = "Room 4B total cost 426 Room 4B total cost 426 Room 4B total cost 426"
    result = make_rubric().score(stuffed)
    assert result.gate == 0.0 and result.reward == 0.0 and not result.success
    assert set(result.scores.values()) == {0.0}
    # POW3R-style reweighting of the components cannot bring it back
    weights = {name: 10.0**i for i, name in enumerate(result.scores)}
    assert sum(w * result.scores[n] for n, w in weights.items()) == 0.0


def test_rubric_metadata_for_reweighting():
    rubric = make_rubric()
    assert rubric.weights()["venue"] == 3.0
    assert rubric.categories() == {
        "venue": "facts",
        "cost": "facts",
        "short": "length",
        "integrity/prose": "integrity",
        "integrity/no_echo": "integrity",
    }
    assert [c.required for c in rubric.criteria] == [True, True, False, True, True]
    assert rubric.with_guards() is rubric  # already gated


def test_rubric_validation():
    with pytest.raises(ValueError, match="duplicate"):
        Rubric.of(Criterion("a", WordCount(1)), Criterion("a", WordCount(2)))
    with pytest.raises(ValueError, match="positive total weight"):
        Rubric.of(Criterion("a", WordCount(1), weight=0))
    with pytest.raises(ValueError, match="weight"):
        Criterion("a", WordCount(1), weight=float("nan"))
    with pytest.raises(ValueError, match="min 5 is above max 2"):
        WordCount(5, 2)
    with pytest.raises(ValueError, match="unknown check type"):
        checker_from_spec({"type": "vibes"})
    with pytest.raises(ValueError, match="no field"):
        checker_from_spec({"type": "word_count", "minimum": 3})
    with pytest.raises(ValueError, match="unknown keys"):
        Criterion.from_dict({"name": "a", "check": {"type": "word_count", "min": 1}, "wieght": 2})


def test_rubrics_round_trip_and_load_from_jsonl_and_yaml(tmp_path):
    rubric = make_rubric()
    assert Rubric.from_dict(json.loads(json.dumps(rubric.to_dict()))) == rubric
    jsonl = tmp_path / "rubrics.jsonl"
    jsonl.write_text(
        json.dumps(rubric.to_dict()) + "\n\n" + json.dumps({"rubric": rubric.to_dict()["criteria"]})
    )
    assert load_rubrics(jsonl) == [rubric, rubric]
    yaml_file = tmp_path / "rubric.yaml"
    yaml_file.write_text(
        "criteria:\n"
        "  - {name: venue, weight: 2, category: facts,\n"
        "     check: {type: contains, phrases: [Room 4B]}}\n"
        "  - name: length\n    required: false\n    check: {type: word_count, min: 5, max: 80}\n"
    )
    (loaded,) = load_rubrics(yaml_file)
    assert loaded.names == ("venue", "length") and loaded["venue"].weight == 2.0
    assert loaded.score(PROSE).success
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rubric.to_dict()) + "\n" + '{"criteria": [{"name": "x"}]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        load_rubrics(bad)


def test_judge_criteria_are_marked_and_never_silently_zero():
    rubric = Rubric.of(
        Criterion("polite", JudgeCheck("Is the tone polite?"), category="style"),
        *standard_guards(),
    )
    assert rubric.judged and rubric["polite"].judged
    with pytest.raises(UnscorableError, match="no judge"):
        rubric.score(PROSE)
    calls = []

    def judge(question, answer, prompt):
        calls.append(question)
        return 0.5

    assert rubric.score(PROSE, judge=judge).scores["polite"] == 0.5
    assert rubric.score("", judge=judge).scores["polite"] == 0.0  # gate failed: not judged
    assert calls == ["Is the tone polite?"]
    with pytest.raises(UnscorableError, match="could not decide"):
        rubric.score(PROSE, judge=lambda q, a, p: None)
    llm = LLMJudge(lambda request: "yes, it is polite" if "Criterion" in request else "")
    assert rubric.with_judge(llm).score(PROSE).scores["polite"] == 1.0
    assert LLMJudge(lambda request: "unsure")("q", "a", "p") is None


NATURAL = [
    # an imperative itinerary with few auxiliaries
    "Itinerary: one day in Lake Anna\n\n## Morning\n\n- Meet at Room 4B at 09:00.\n"
    "- Walk to the Smith Museum and spend 90 minutes there.\n- Stop at the Harbour for coffee.\n\n"
    "## Afternoon\n\nAfter lunch, visit the Jones Gardens for an hour. The total visiting time "
    "is 210 minutes, so you will be back by late afternoon.",
    # a JSON product answer: the prose view is its string values
    '{"product_name": "Berger Lamp", "price": 45.0, "features": ["a dimmable light", '
    '"USB-C charging", "an oak base"], "description": "The Berger Lamp is a small desk lamp '
    'with a dimmable light. It charges over USB-C and sits on a solid oak base."}',
    # a short FAQ answer
    "Thank you for your question. Yes, you can still return the kettle: you bought it 12 days "
    "ago and the return window is 30 days, so 18 days are left. Kind regards, Ann Lee",
]


@pytest.mark.parametrize("text", NATURAL)
def test_gates_pass_natural_answers(text):
    prompt = "Write a one-day itinerary. Facts: - stop 1: the Smith Museum - city: Lake Anna"
    assert score(Prose(), text) == 1.0
    assert score(NoEcho(), text, prompt=prompt) == 1.0
