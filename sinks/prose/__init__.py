"""Reading captioner prose: is the sound a rule names happening in this window?

Captions from an audio captioner are long literary prose: several paragraphs, quoted speech in
the speaker's language, rough times, mood and production style. A word in a caption is an
event only when the prose says so. The package answers that with ConText (Harkema et al.,
2009), the rule-based successor of NegEx, over a rule-based sentence splitter::

    caption ─▶ sentences.py (sentences, quotes) ─▶ phrases.py (one-pass phrase index)
                                                     │ hits
                                                     ▼
               cues.py (the cue table: data) ─▶ context.py (scopes, per hit: negated,
                                                 hedged, performed, reported, media, live)
                                                     ▼
               matcher.py (per rule: senses, exclusions, speech/source/confidence) ─▶ Decision
                                                     ▼
               evidence.py (sentence, confidence, why) on incidents and alerts

:data:`MATCHER_VERSION` names the decision procedure. It changes whenever the same caption and
rules can decide differently, and docs/alerts.md says what changed: incidents opened by one
version may resolve, or not open, under the next.
"""

MATCHER_VERSION = 2
"""1: keyword + NegEx-style negation (sinks/text.py, until 2026-12). 2: this package."""
