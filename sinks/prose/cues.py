"""The cue table: ConText's modifiers for captioner prose, as data.

ConText (Harkema et al., 2009; NegEx's successor) decides whether a mention is negated,
uncertain, hypothetical, historical or "experienced by someone else" with *cues* that each
have a category, a direction and a scope that runs to the next *terminator* of that category.
This table does the same for what an audio captioner writes. :mod:`sinks.prose.context` is the
engine; it knows nothing about any cue below.

======================  =========================================================================
category                what a target inside the cue's scope becomes
======================  =========================================================================
``negated``             not heard: the hit is dropped ("no gunshots are heard")
``hedged``              uncertain: confidence capped at the cue's weight ("could be a gunshot")
``performed``           performed or playful: capped at its weight ("a shriek of mock fright")
``reported``            someone talking about it: speech, not sound ("he says he heard shots")
``media``               playing from a screen or speaker ("gunfire from the television")
``live``                in the scene, whatever plays nearby: cancels ``media`` ("a real gunshot
                        outside, louder than anything on the television")
``excluded``            (the scope of a rule's ``none`` phrases; no cue has it)
``pseudo``              looks like a cue, is none: cancels the overlapping cues of the
                        categories it names ("no mistaking", "could be heard")
``terminate``           ends the scope of the categories it names ("but", "while", ";")
======================  =========================================================================

Directions: ``forward`` (the cue governs what follows it), ``backward`` (what precedes it),
``both``. ``max_words`` caps the scope. Phrases use the rules' syntax (:mod:`sinks.prose.phrases`);
cues marked ``regex`` are Python regexes on the lower-cased text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    NEGATED = "negated"
    HEDGED = "hedged"
    PERFORMED = "performed"
    REPORTED = "reported"
    MEDIA = "media"
    LIVE = "live"
    EXCLUDED = "excluded"
    PSEUDO = "pseudo"
    TERMINATE = "terminate"


class Direction(StrEnum):
    FORWARD = "forward"
    BACKWARD = "backward"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class Cue:
    """One row of the table."""

    phrase: str
    category: Category
    direction: Direction = Direction.FORWARD
    weight: float = 1.0
    """Confidence cap for ``hedged`` and ``performed`` hits in scope."""
    max_words: int | None = None
    """Words allowed between the cue and the hit (None: up to a terminator)."""
    targets: frozenset[Category] = frozenset()
    """``terminate``: whose scope it ends; ``pseudo``: whose overlapping cues it cancels."""
    regex: bool = False


F, B, BOTH = Direction.FORWARD, Direction.BACKWARD, Direction.BOTH
NEGATED, HEDGED, PERFORMED = Category.NEGATED, Category.HEDGED, Category.PERFORMED
REPORTED, MEDIA, LIVE = Category.REPORTED, Category.MEDIA, Category.LIVE

CLAUSE = frozenset({NEGATED, HEDGED})
"""Scopes that end with the clause."""
ALL_SCOPES = CLAUSE | {PERFORMED, REPORTED, MEDIA, LIVE, Category.EXCLUDED}
"""Reported speech, attribution and exclusions run on through subordinate clauses."""


def _rows(category: Category, phrases: str, direction: Direction = F, **extra: object) -> list[Cue]:
    """One cue per ``;``-separated phrase, all alike."""
    return [
        Cue(phrase.strip(), category, direction, **extra)  # type: ignore[arg-type]
        for phrase in phrases.split(";")
        if phrase.strip()
    ]


NEGATION = [
    *_rows(
        NEGATED,
        "no; not; never; none; nothing; nobody; no one; neither; nor; without; cannot;"
        "absence of; absent; lack; lacks; lacking; free of; devoid of; rather than;"
        "instead of; fail~ to",
    ),
    Cue(r"n't\b", NEGATED, regex=True),
    *_rows(
        NEGATED,
        "is|are|was|were|seems|seem|appears|appear|can|could|does|do|did|has|have|had not;"
        "is|are|was|were|seems|seem|appears|appear|does|do|did|has|have|had never;"
        "is|are|was|were absent|missing; cannot; no longer; never;"
        "remain~|stay~ silent|quiet|off; fail~ to; failed to; removed; cut out; edited out;"
        "bleeped; bleeped out; censored; muted",
        B,
        max_words=2,
    ),
    Cue(r"\b(?:is|are|was|were|does|do|did|has|have|had|can|could)n't\b", NEGATED, B, regex=True),
]

HEDGES = [
    *_rows(
        HEDGED,
        "could; might; may; possibly; possible; perhaps; maybe; resembl~; reminiscent of;"
        "similar to; akin to; as if; as though; imitat~; mimic~; evocative of; suggestive of;"
        "mistaken for; either; whether; unclear; uncertain; ambiguous; hard to tell;"
        "difficult to tell; impossible to tell; simulat~; supposedly; allegedly; ostensibly",
        weight=0.4,
    ),
    *_rows(HEDGED, "if; in case; unless; would", weight=0.2),
    *_rows(HEDGED, "sign of; signs of; indication of; hint of; suggestion of", weight=0.4),
    *_rows(HEDGED, "like; as * as", weight=0.4, max_words=3),
    *_rows(HEDGED, "or possibly; or perhaps; or maybe; or even", BOTH, weight=0.4, max_words=4),
    Cue(r"-(?:like|esque)\b", HEDGED, B, weight=0.4, max_words=0, regex=True),
    *_rows(
        HEDGED,
        "likely; probably; probable; appears to be; appear to be; seems to be; seem to be;"
        "apparent; apparently; presumabl~; consistent with; suggest~; indicative of;"
        "believed to be; thought to be",
        weight=0.7,
    ),
]

PERFORMANCES = _rows(
    PERFORMED,
    "mock; playful; playfully; in play; pretend~; feign~; theatrical; theatrically; comic;"
    "comical; comically; comedic; cartoonish; exaggerated; gleeful; gleefully; excited;"
    "excitedly; jokingly; in jest; for fun; teasing; laugh~; laughter; giggl~; happily; joyful;"
    "fake; faked; faking; feigned; thrill~; fun; rehears~; performance; perform~; scripted;"
    "staged; choreograph~; at play; part of play; part of the game|fun|act|show; ghost train;"
    "roller coaster; haunted house; funfair; fairground; on the ride;"
    "joyfully; delighted; with|of|in delight|joy|glee|excitement|amusement|fun|surprise",
    BOTH,
    weight=0.3,
    max_words=4,
)

REPORTING = _rows(
    REPORTED,
    "say~; said; tell~; told; explain~; mention~; describ~; recall~; recount~; claim~;"
    "insist~; admit~; remark~; add~ that; note~ that; point~ out; argu~ that; warn~ that|of;"
    "report~ that|on|how|seeing|hearing; according to; story about|of; news of; heard about;"
    "talk~|chat~|speak~|spoke|gossip~|speculat~|joke~|complain~|argu~|ask~ * about|of;"
    "joke~ that;"
    "ask~ whether|if; discuss~; discussion|debate|conversation about|of|on|over;"
    "brief~ * about|on;"
    "rumour~; rumor~; read~ the headlines|news|bulletin; to report; telephon~ to|about;"
    "phon~ to|about; report~|story|survey|study|poll|speech|talk|lecture about|of|on",
)

HISTORY = _rows(
    REPORTED,
    "yesterday; last night|week|month|year; the night|day|evening|week before;"
    "the previous night|day|evening|week; earlier that|today; witnessed; ago",
    BOTH,
)
"""ConText's "historical": told about, not heard now (treated as reported speech)."""

MEDIA_CUES = [
    *_rows(
        MEDIA,
        "television; televisions; tv; telly; film; films; movie; movies; cinema; cinematic;"
        "video game; video games; videogame; game's; gameplay; in game; console; cartoon;"
        "cartoons; animated character|film|series|show; anime; film|movie|game|cinema trailer;"
        "trailer for; soundtrack; sound effect~; sound design; foley; broadcast~; radio;"
        "podcast; news report|bulletin|broadcast|channel|anchor|programme; newsreader;"
        "reporter; music video; youtube; video; videos; playback; played back; on screen;"
        "screen; tablet; laptop; smartphone; phone's speaker;"
        "desktop|laptop|computer|bluetooth|external|tinny speaker~; pair of speakers;"
        "tv|crime|radio|costume|period drama; drama series; sitcom; soap opera; documentary;"
        "audiobook; actor; actors; actress; footage; in the game; in game;"
        "device|device's|phone|phone's|tablet|tablet's|tv's|television's|laptop's|tiny|tinny"
        " speaker|speakers; on the report|recording|video|broadcast; decoration|decoration's|"
        "toy|toy's|doll|animatronic; motion activated",
        BOTH,
    ),
    Cue("recorded", MEDIA, BOTH, max_words=4),
]

LIVE_CUES = _rows(
    LIVE,
    "real; actual; genuine; from outside; outside the house|room|building|window|flat;"
    "in the room itself; distinct from; rather than from the|a tv|television|film|screen|game;"
    "not from the tv|television|film|screen|game; louder and more immediate",
    BOTH,
)

PSEUDO_CUES = [
    *_rows(
        Category.PSEUDO,
        "no mistaking; no doubt; no question; not only; not just; no sooner; not long;"
        "not far; nothing but; none other; without warning|pause|interruption|stopping|end;"
        "without respite|letup|fail; never stop~|cease~|let~; no end",
        targets=frozenset({NEGATED}),
    ),
    *_rows(
        Category.PSEUDO,
        "could|can|may be heard; could|can hear; could|can be made out",
        targets=frozenset({HEDGED}),
    ),
    *_rows(Category.PSEUDO, "to tell; described as", targets=frozenset({REPORTED})),
    *_rows(Category.PSEUDO, "but that", targets=frozenset({Category.TERMINATE})),
    *_rows(
        Category.PSEUDO,
        "video doorbell|camera|intercom|surveillance; screen door; recorded in|at|by|on|with|from;"
        "two way|police|security radio",
        targets=frozenset({MEDIA}),
    ),
    *_rows(
        Category.PSEUDO,
        "rather than from outside; rather than outside; not from outside",
        targets=frozenset({LIVE}),
    ),
]

_NEW_SUBJECT = (
    r"(?:a|an|the|someone|somebody|something|it|he|she|they|this|another|people|everyone"
    r"|one|two|three|several|many|some)\b"
)

TERMINATORS = [
    *_rows(
        Category.TERMINATE,
        "but; however; although; though; yet; whereas; while; whilst; meanwhile",
        targets=ALL_SCOPES,
    ),
    # clause ends that a rule's exclusions do not stop at (they are subordinate clauses of
    # one event: "the beep a smoke detector makes when its battery is low")
    *_rows(
        Category.TERMINATE,
        "except; apart from; aside from; other than; save for; besides; only; instead; then;"
        "until; followed by; after which; before; later; suddenly; when; which; where; as",
        targets=CLAUSE,
    ),
    Cue(";", Category.TERMINATE, targets=ALL_SCOPES, regex=True),
    Cue(r"[:\u2014\u2013()]", Category.TERMINATE, targets=CLAUSE, regex=True),
    # a new noun phrase after a comma or "and" starts a new clause ("no voices, a gunshot");
    # reported speech runs on past a bare comma ("recounts how, on that night, the victim...")
    Cue(
        rf",\s*(?={_NEW_SUBJECT})",
        Category.TERMINATE,
        targets=CLAUSE | {PERFORMED, Category.EXCLUDED},
        regex=True,
    ),
    Cue(
        rf"\s+and\s+(?={_NEW_SUBJECT})",
        Category.TERMINATE,
        targets=CLAUSE | {PERFORMED, Category.EXCLUDED},
        regex=True,
    ),
    Cue(
        rf",\s*and\s+(?={_NEW_SUBJECT})",
        Category.TERMINATE,
        targets=CLAUSE | {PERFORMED, REPORTED, Category.EXCLUDED},
        regex=True,
    ),
]

CUES: tuple[Cue, ...] = (
    *NEGATION,
    *HEDGES,
    *PERFORMANCES,
    *REPORTING,
    *HISTORY,
    *MEDIA_CUES,
    *LIVE_CUES,
    *PSEUDO_CUES,
    *TERMINATORS,
)

SENSES = (
    "alarming; alarmed; in|with|of alarm=; convey~ * alarm=; raise~ the alarm=; screaming match;"
    "explosive laughter|applause|anger|temper|energy|chorus|cheer|cheering;"
    "explosion of applause|laughter|colour|color|sound|cheers|noise|flavour|flavor;"
    "temper|tempers explode~|flare~; explosive argument|row|rage|outburst;"
    "f bomb~; shot glass; shot of; camera shot; crashing waves; waves crash~; crash cymbal~;"
    "crash of thunder|waves|cymbals; crash course; breaking news; siren song;"
    "siren call; blast of air|wind|steam|music|cold|heat; music blast~; blasting music"
)
"""Phrases in which a target word means something else: a hit inside one is not the event."""
