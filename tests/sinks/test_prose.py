"""The prose matcher's parts: phrase syntax, sentences and quotes, ConText scopes, rule policy.

Scenario tables, one row per behaviour, with expected values written out by hand.
"""

from __future__ import annotations

import pytest

from sinks.prose.phrases import PhraseError, PhraseIndex, inflections, parse
from sinks.prose.sentences import normalise, split
from sinks.rules import RuleSet, parse_rules


def _found(phrase: str, text: str) -> list[str]:
    index = PhraseIndex()
    index.add(phrase, 0)
    lowered = normalise(text)
    return [text[s.start : s.end] for s in index.scan(lowered)]


# --- phrases ---------------------------------------------------------------------------------

PHRASES = [
    # (phrase, text, what it finds)
    (
        "scream",
        "She screams, then screamed, still screaming.",
        ["screams", "screamed", "screaming"],
    ),
    ("fire", "A rifle is fired; firing continues.", ["fired", "firing"]),
    ("cry", "The baby cries and cried.", ["cries", "cried"]),
    ("sob", "She sobbed, sobbing.", ["sobbed", "sobbing"]),
    ("glass shatter", "Glass  shatters. The glasses hatter.", ["Glass  shatters"]),
    ("glass * shatter", "The glass door shatters.", ["glass door shatters"]),
    ("glass * shatter", "The glass of the old front door shatters.", []),  # 5 words between
    ("glass * shatter", "The glass does not shatter.", []),  # a negation never fills a gap
    ("glass * shatter", "The glass, alas, shatters.", []),  # nor does punctuation
    (
        "window|door smash~",
        "The door smashed; a window smashes.",
        ["door smashed", "window smashes"],
    ),
    ("kick~ door", "He kicked door after door.", ["kicked door"]),
    ("slur=", "A slur, slurs, slurred speech.", ["slur"]),
    ("smash-and-grab", "A smash and grab, a smash-and-grab.", ["smash and grab", "smash-and-grab"]),
    ("救命", "她大喊:救命啊!救命!", ["救命", "救命"]),
    ("au secours", "Elle crie « Au secours ! »", ["Au secours"]),
    ("alarm", "An alarm clock; alarms; alarmist.", ["alarm", "alarms"]),
]


@pytest.mark.parametrize(("phrase", "text", "found"), PHRASES, ids=[p[0] for p in PHRASES])
def test_phrase_syntax(phrase: str, text: str, found: list[str]) -> None:
    assert _found(phrase, text) == found


@pytest.mark.parametrize(
    ("phrase", "message"),
    [
        ("", "empty"),
        ("* glass", "'*' must stand between"),
        ("glass * * shatter", "use one"),
        ("glass$ shatter", "is not a word"),
        ("smash-and-grab|break-in", "hyphenated"),
    ],
)
def test_phrase_errors(phrase: str, message: str) -> None:
    with pytest.raises(PhraseError, match=message):
        parse(phrase)


def test_inflections_are_longest_first() -> None:
    forms = inflections("fire")
    assert {"fire", "fires", "fired", "firing"} <= set(forms)
    assert [len(f) for f in forms] == sorted((len(f) for f in forms), reverse=True)


def test_one_index_finds_overlapping_phrases_of_many_keys() -> None:
    index = PhraseIndex()
    for key, phrase in enumerate(["alarm", "fire alarm", "alarm clock", "smoke alarm"]):
        index.add(phrase, key)
    spans = index.scan(normalise("The fire alarm, not the alarm clock."))
    assert [(s.key, s.start, s.end) for s in spans] == [
        (1, 4, 14),
        (0, 9, 14),
        (2, 24, 35),
        (0, 24, 29),
    ]


# --- sentences and quotes --------------------------------------------------------------------

SENTENCES = [
    (
        'He shouts, "Get down! Get down!" and runs. A gunshot rings out.',
        ['He shouts, "Get down! Get down!" and runs.', "A gunshot rings out."],
    ),
    (
        'She cries, "Help me!" A door slams.',
        ['She cries, "Help me!"', "A door slams."],
    ),
    (
        "Mr. Smith arrives at approx. five. He knocks.",
        ["Mr. Smith arrives at approx. five.", "He knocks."],
    ),
    ("It lasts 0.5 seconds. Then quiet.", ["It lasts 0.5 seconds.", "Then quiet."]),
    ("First paragraph ends here\n\nSecond one", ["First paragraph ends here", "Second one"]),
    ("The answer… final? Yes.", ["The answer… final?", "Yes."]),
]


@pytest.mark.parametrize(("text", "sentences"), SENTENCES, ids=[t[:25] for t, _ in SENTENCES])
def test_sentences(text: str, sentences: list[str]) -> None:
    spans = split(text).spans
    assert [text[a:b] for a, b in spans] == sentences


def test_quotes_of_several_scripts_and_an_unclosed_one() -> None:
    text = '«Au secours !» „Hilfe!“ 「助けて!」 "Call the police\n\nNext paragraph.'
    quotes = split(text).quotes
    assert [text[a:b] for a, b in quotes] == [
        "Au secours !",
        "Hilfe!",
        "助けて!",
        "Call the police",
    ]


def test_normalise_keeps_offsets() -> None:
    text = "\u0130STANBUL\u2019s ALARM"
    assert len(normalise(text)) == len(text)
    assert normalise(text).endswith("'s alarm")


# --- ConText scopes: one rule, many sentences ------------------------------------------------

RULES = parse_rules(
    {
        "rules": [
            {"id": "gun", "match": {"any": ["gunshot", "gunfire"], "source": "live"}},
            {"id": "glass", "match": {"any": ["glass break~"], "none": ["breaking news"]}},
            {"id": "alarm", "match": {"any": ["alarm"], "none": ["alarm clock"]}},
            {"id": "scream", "match": {"any": ["scream"]}},
            {"id": "help", "match": {"any": ["help me"], "speech": "only"}},
            {"id": "said", "match": {"any": ["gunshot"], "reported": "include"}},
            {"id": "heard", "match": {"any": ["gunshot"], "min_confidence": 0.3}},
            {"id": "tv", "match": {"any": ["gunfire"], "source": "media"}},
        ]
    }
)

CONTEXT = [
    # (caption, rules that fire)
    ("A gunshot rings out.", {"gun", "said", "heard"}),
    ("No gunshots are heard.", set()),
    ("There is no mistaking the sound of a gunshot.", {"gun", "said", "heard"}),
    ("No speech, only the crack of a gunshot.", {"gun", "said", "heard"}),
    ("Without warning, a gunshot rings out.", {"gun", "said", "heard"}),
    ("The gunshot is not heard again.", set()),
    ("It is likely a gunshot.", {"gun", "said", "heard"}),  # 0.7: counts
    ("It could be a gunshot or a car backfiring.", {"heard"}),  # 0.4: only min 0.3
    ("A bang like a gunshot.", {"heard"}),
    ("If a gunshot rings out, run.", set()),  # hypothetical 0.2
    ("He says he heard a gunshot last night.", {"said"}),
    ('He shouts, "A gunshot!"', set()),  # quoted speech: excluded by default
    ('She screams, "Help me!"', {"scream", "help"}),
    ("She asks someone to help me carry this.", set()),  # not speech: the help rule wants speech
    ("Gunfire blares from the television.", {"tv"}),
    ("A television plays quietly while gunfire erupts outside.", {"gun"}),  # "while" ends it
    ("Louder than the film on the TV, a real gunshot cracks outside.", {"gun", "said", "heard"}),
    ("The alarm clock beeps. Later the alarm sounds.", {"alarm"}),  # exclusion: its clause only
    ("The alarm clock beeps.", set()),
    ("Breaking news on the radio. Glass breaks in the kitchen.", {"glass"}),
    ("The anchor reads the breaking news about glass breaking downtown.", set()),
    ("The scene is alarming.", set()),  # another sense
    ("Children shriek and scream with delight.", set()),  # performed: 0.3 < 0.6
    ("A mock scream of horror.", set()),
]


@pytest.mark.parametrize(("caption", "fired"), CONTEXT, ids=[c[:40] for c, _ in CONTEXT])
def test_context(caption: str, fired: set[str]) -> None:
    decisions = RULES.decide(caption, "cam-1")
    assert {rule_id for rule_id, d in decisions.items() if d.fired} == fired


def _explained(rules: RuleSet, caption: str, rule_id: str) -> list[tuple[str, str | None]]:
    decision = rules.decide(caption, "cam-1")[rule_id]
    return [(f.phrase, f.rejected) for f in decision.findings]


def test_findings_say_what_decided() -> None:
    caption = "The alarm clock rings. No alarm sounds. The scene is alarming. The alarm wails."
    assert _explained(RULES, caption, "alarm") == [
        ("alarm", "excluded by 'alarm clock'"),
        ("alarm", "negated by 'no'"),
        ("alarming", "another sense: 'alarming'"),
        ("alarm", None),
    ]
    assert _explained(RULES, "It could be a gunshot.", "gun") == [
        ("gunshot", "confidence 0.4 < 0.6 ('could')")
    ]
    assert _explained(RULES, "Gunfire from a video game.", "gun") == [
        ("Gunfire", "media ('video game')")
    ]


def test_evidence_carries_sentence_confidence_why_and_cues() -> None:
    caption = "The street is calm.\n\nA sharp crack, likely a gunshot, echoes."
    (evidence,) = RULES.decide(caption, "cam-1")["gun"].evidence
    assert evidence.phrase == "gunshot"
    assert evidence.sentence == "A sharp crack, likely a gunshot, echoes."
    assert (evidence.confidence, evidence.why) == (0.7, "hedged")
    assert evidence.cues == ("hedged: 'likely'",)


def test_rules_only_for_their_streams() -> None:
    rules = parse_rules({"rules": [{"id": "g", "streams": ["cam-*"], "match": {"any": ["bang"]}}]})
    assert rules.decide("A bang.", "cam-2")["g"].fired
    assert rules.decide("A bang.", "mic-2") == {}
