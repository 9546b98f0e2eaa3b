"""What the parts of bench/console.py share: caption prose, topics, the console process."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.console.support import ConsoleProcess, console_settings
from tests.support.kafka import create_topic, unique_name

WORDS = [
    "a",
    "the",
    "and",
    "then",
    "of",
    "in",
    "near",
    "with",
    "while",
    "distant",
    "loud",
    "faint",
    "steady",
    "sudden",
    "brief",
    "repeated",
    "dog",
    "barks",
    "car",
    "passes",
    "door",
    "slams",
    "glass",
    "breaking",
    "footsteps",
    "voice",
    "speech",
    "music",
    "alarm",
    "siren",
    "wind",
    "rain",
    "engine",
    "hum",
    "fan",
    "ventilation",
    "quiet",
    "room",
    "tone",
    "traffic",
    "horn",
    "beeps",
    "phone",
    "rings",
    "people",
    "talking",
    "laughter",
    "child",
    "shouts",
    "metallic",
    "clatter",
    "keys",
    "jingle",
    "knocking",
    "water",
    "running",
    "birds",
    "chirping",
    "thunder",
    "crowd",
    "applause",
    "announcement",
    "radio",
    "television",
    "cough",
    "typing",
    "keyboard",
    "printer",
    "elevator",
    "chime",
    "truck",
    "reversing",
    "bus",
    "brakes",
    "bicycle",
    "bell",
    "motorcycle",
    "helicopter",
    "construction",
    "drilling",
    "hammering",
    "sweeping",
    "broom",
    "cart",
    "wheels",
    "squeak",
    "hiss",
    "kettle",
    "whistle",
]
_WEIGHTS = [1 / (rank + 1) ** 0.8 for rank in range(len(WORDS))]
RARE = "quokka"
"""A word in one caption in ten thousand (a rare-term search)."""


def caption_text(rng: random.Random) -> str:
    """3-5 sentences of 8-18 words, Zipf-weighted (~400 characters, like a captioner's)."""
    sentences = []
    for _ in range(rng.randint(3, 5)):
        words = rng.choices(WORDS, _WEIGHTS, k=rng.randint(8, 18))
        if rng.random() < 0.0001:
            words[rng.randrange(len(words))] = RARE
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def new_topics(bootstrap: str, prefix: str) -> dict[str, str]:
    names = ("captions", "alerts", "acks", "frames")
    return {
        name: create_topic(bootstrap, unique_name(f"{prefix}-{name}"), 1,
                           {"cleanup.policy": "compact"} if name == "acks" else None)
        for name in names
    }  # fmt: skip


@contextmanager
def console(
    bootstrap: str, topics: dict[str, str], tmp: Path, **settings: Any
) -> Iterator[ConsoleProcess]:
    """``earwitness console`` as its own process (log level info), stopped at the end."""
    tmp.mkdir(parents=True, exist_ok=True)
    raw = console_settings(tmp, bootstrap, topics)
    for section, values in settings.items():
        raw[section] = {**raw.get(section, {}), **values}
    process = ConsoleProcess(tmp / "console.yaml", tmp / "console.log", raw, log_level="info")
    process.start(ready_timeout_s=600)
    try:
        yield process
    finally:
        process.stop()
