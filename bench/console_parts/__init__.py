"""The parts of bench/console.py: ``live``, ``pages``, ``listen`` (and what they share)."""
