"""Rules: validation messages and table-driven matching on captioner-style prose.

The matching table is matcher 1's NegEx scope table, kept case for case: matcher 2 decides
every one of them the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.errors import RulesError
from sinks.rules import RuleSet, load_rules, parse_rules


def _rules() -> RuleSet:
    return parse_rules(
        {
            "rules": [
                {"id": "gunshot", "match": {"any": ["gunshot", "gun shot", "gunfire"]}},
                {
                    "id": "glass",
                    "match": {
                        "any": ["glass breaking", "shattering glass", "glass shatter"],
                        "regex": [r"\bwindow (?:is |was )?smash(?:ed|ing)\b"],
                        "none": ["wine glass", "breaking news"],
                    },
                },
                {"id": "alarm", "match": {"any": ["alarm", "siren"]}},
                {"id": "music", "match": {"any": ["music"]}},
                {"id": "scream", "match": {"any": ["scream", "shriek"]}},
                {"id": "fight", "match": {"all": ["shouting", "thud"]}},
                {
                    "id": "raw-alarm",
                    "match": {"any": ["alarm"], "negation": False},
                },
            ]
        }
    )


RULES = _rules()

# (caption, rules expected to match). Captions are long, like a real audio captioner's.
CASES = [
    (
        "The recording captures a busy street. Suddenly a loud gunshot rings out, echoing off "
        "the buildings, and people begin shouting in panic.",
        {"gunshot"},
    ),
    (
        "A quiet office with the steady hum of an air conditioner and keyboard typing. No "
        "gunshots are heard, and there is no music in the background.",
        set(),
    ),
    (
        "Two people talk calmly in a kitchen, without any alarm or sense of urgency, while a "
        "kettle starts to boil.",
        {"raw-alarm"},
    ),
    ("There is no music; only distant traffic and birdsong can be heard.", set()),
    (
        "A single gunshot, then no further sound apart from the wind rustling the leaves.",
        {"gunshot"},
    ),
    (
        "The scene is calm. There is no sign of glass breaking or any forced entry; a clock "
        "ticks steadily.",
        set(),
    ),
    (
        "The absence of alarms is notable; the warehouse is silent except for a dripping pipe.",
        {"raw-alarm"},
    ),
    (
        "A window is smashed and shards of glass scatter across the floor while a car alarm "
        "starts blaring in the distance.",
        {"glass", "alarm", "raw-alarm"},
    ),
    (
        "Sounds of shattering glass fill the room as a bottle falls off the counter.",
        {"glass"},
    ),
    (
        "Glasses clink at a dinner party; someone taps a wine glass to propose a toast.",
        set(),
    ),
    (  # 'glass breaking' is there, and 'wine glass' in its clause rules it out
        "A wine glass slips from a hand and hits the tile floor with the sound of glass breaking.",
        set(),
    ),
    (
        "A news anchor reads the breaking news about glass breaking at a factory downtown.",
        set(),
    ),
    (
        "No voices are heard, but a woman suddenly screams in the distance, high and piercing.",
        {"scream"},
    ),
    (
        "There is no speech, music or alarm in this clip; the only sound is a fan whirring.",
        {"raw-alarm"},
    ),
    (
        "A smoke alarm is not sounding; instead the room is filled with soft jazz music.",
        {"music", "raw-alarm"},
    ),
    (
        "Loud shouting can be heard from the hallway followed by a heavy thud against a door.",
        {"fight"},
    ),
    (
        "Loud shouting can be heard from the hallway, but there is no thud or impact.",
        set(),
    ),
    (
        "It doesn't sound like gunfire; it is more likely fireworks crackling over the bay.",
        set(),
    ),
    (
        "Neither sirens nor screams can be heard; the park is peaceful with children laughing.",
        set(),
    ),
    (
        "There are no people talking, and the alarm blares continuously in the empty corridor.",
        {"alarm", "raw-alarm"},
    ),
    (
        "Nobody screams, and the GUNSHOT that follows is deafening.",
        {"gunshot"},
    ),
    (
        "Sirens are absent from the recording, which features only rain on a tin roof.",
        set(),
    ),
    ("A SHRIEK pierces the silence.", {"scream"}),
]


def _fired(rules: RuleSet, caption: str, stream_id: str = "cam-1") -> set[str]:
    return {rule_id for rule_id, d in rules.decide(caption, stream_id).items() if d.fired}


@pytest.mark.parametrize(("caption", "expected"), CASES, ids=[c[:40] for c, _ in CASES])
def test_matching_table(caption: str, expected: set[str]) -> None:
    assert _fired(RULES, caption) == expected


def test_hits_name_the_affirmed_phrases_in_text_order() -> None:
    decision = RULES.decide("No alarm; a window was smashed, glass shattering.", "cam-1")["glass"]
    assert decision.matched == ("window was smashed", "glass shattering")
    assert [e.sentence for e in decision.evidence] == [
        "No alarm; a window was smashed, glass shattering."
    ] * 2


def test_a_phrase_that_breaks_the_syntax_names_rule_field_and_phrase() -> None:
    with pytest.raises(RulesError, match=r"rule 'g': field 'match.any'.*\[1\] 'glass \* \*'"):
        parse_rules({"rules": [{"id": "g", "match": {"any": ["glass", "glass * *"]}}]})


def test_a_silence_rule_needs_no_match_but_a_caption_rule_does() -> None:
    rules = parse_rules({"rules": [{"id": "quiet", "events": ["silence"]}]})
    assert rules.by_id["quiet"].on_silence and not rules.by_id["quiet"].on_captions
    with pytest.raises(RulesError, match=r"rule 'loud': .*`match` is required"):
        parse_rules({"rules": [{"id": "loud", "events": ["caption", "silence"]}]})


def test_stream_globs() -> None:
    rules = parse_rules(
        {"rules": [{"id": "cam", "streams": ["cam-*", "door?"], "match": {"any": ["x"]}}]}
    )
    assert [r.id for r in rules.for_stream("cam-12")] == ["cam"]
    assert [r.id for r in rules.for_stream("door1")] == ["cam"]
    assert rules.for_stream("CAM-12") == []
    assert rules.for_stream("mic-1") == []


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"id": "a", "match": {"any": ["x"]}, "severity": "huge"}, "rule 'a': field 'severity'"),
        ({"id": "b", "match": {"regex": ["(unclosed"]}}, "rule 'b': field 'match.regex'"),
        ({"id": "c", "match": {"none": ["x"]}}, "rule 'c': field 'match'"),
        ({"id": "d", "match": {"any": ["x"]}, "resolve_after_s": -1}, "field 'resolve_after_s'"),
        ({"id": "e", "match": {"any": ["x"]}, "colour": "red"}, "rule 'e': field 'colour'"),
        ({"id": "bad id!", "match": {"any": ["x"]}}, "rule 'bad id!': field 'id'"),
        ({"match": {"any": ["x"]}}, "rule #1 (no id): field 'id'"),
    ],
)
def test_invalid_rule_names_rule_and_field(rule: dict[str, object], message: str) -> None:
    with pytest.raises(RulesError, match=r"^<rules>: ") as info:
        parse_rules({"rules": [rule]})
    assert message in str(info.value)


def test_duplicate_ids_fail() -> None:
    rule = {"id": "a", "match": {"any": ["x"]}}
    with pytest.raises(RulesError, match="duplicate"):
        parse_rules({"rules": [rule, rule]})


def test_unknown_receiver_fails() -> None:
    rules = parse_rules({"rules": [{"id": "a", "match": {"any": ["x"]}, "receivers": ["nope"]}]})
    with pytest.raises(RulesError, match="rule 'a': field 'receivers'"):
        rules.check_receivers({"slack"})


def test_example_rules_file_keeps_the_five_ids_of_earlier_releases() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "rules.yaml"
    rules = load_rules(path)
    assert {"glass-breaking", "gunshot", "alarm", "screaming", "profanity"} <= set(rules.by_id)
    assert _fired(rules, "A gunshot echoes down the alley.", "cam-3") == {"gunshot"}
    assert _fired(rules, "No gunshots are heard at all.", "cam-3") == set()
    assert _fired(rules, "A gunshot echoes down the alley.", "channel-1") == {"violence"}


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(RulesError, match="cannot parse"):
        load_rules(bad)


def test_the_wine_glass_exclusion_is_what_rules_the_caption_out() -> None:
    caption = (
        "A wine glass slips from a hand and hits the tile floor with the sound of glass breaking."
    )
    decision = RULES.decide(caption, "cam-1")["glass"]
    assert not decision.fired
    assert [(f.phrase, f.rejected) for f in decision.findings] == [
        ("glass breaking", "excluded by 'wine glass'")
    ]
    without = parse_rules({"rules": [{"id": "glass", "match": {"any": ["glass breaking"]}}]})
    assert without.decide(caption, "cam-1")["glass"].fired  # the exclusion decided, nothing else
