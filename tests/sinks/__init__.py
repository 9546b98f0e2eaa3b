"""Tests of sinks/: rules, incidents, formats, senders, the alert runner."""
