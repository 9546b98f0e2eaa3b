"""Audio onto the frames topic, in the wire format of ``docs/wire-format.md``.

``publish.py`` (``earwitness publish``) sends recordings as live frames.
"""
