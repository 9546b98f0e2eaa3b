"""``earwitness console``: a live web page over the caption, alert and ack topics.

::

    Kafka (read_committed)                 console                              browser
    captions ─┐                                                          ┌─ Streams (tiles)
    alerts  ──┼─► reader thread ─► SQLite (FTS5) ─► pages (Jinja2) ──────┼─ Stream (timeline)
    acks    ──┘   ew-console-reader    │ journal ─► live hub ─► SSE ─────┼─ Alerts (+ ack)
       ▲                               │                                  └─ Search
       └──── ack producer ◄── POST /alerts/<id>/ack
    frames ◄──── Listen: read a window's frame range, rebuild it (windowing/), serve WAV

Modules, one stage each: ``config`` (settings), ``records`` (Kafka records → rows), ``schema``
and ``store`` (the database and its one writer), ``reader`` (the consumer thread),
``queries`` (the read side), ``live`` (SSE fan-out and resume), ``audio`` (Listen), ``acks``
(the ack producer), ``security`` (auth, CSRF, headers), ``views``/``render``/``web``/
``actions`` (pages and handlers), ``cli`` (wiring; it owns every thread). See docs/console.md.
"""
