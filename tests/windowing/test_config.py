"""WindowSettings: bounds, cross-field rules, and sample counts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from windowing import WindowSettings


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"window_s": 31.0}, "less than or equal to 30"),
        ({"window_s": 0.0}, "greater than 0"),
        ({"window_s": 10.0, "hop_s": 11.0}, "hop_s"),
        ({"window_s": 10.0, "min_window_s": 12.0}, "min_window_s"),
        ({"hop_s": 0.00001}, "at least one 16 kHz sample"),
        ({"jitter_frames": 0}, "greater than or equal to 1"),
        ({"silence_dbfs": 3.0}, "less than or equal to 0"),
        ({"max_streams": 0}, "greater than or equal to 1"),
        ({"windows_s": 10.0}, "Extra inputs"),
    ],
)
def test_rejects_bad_settings(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WindowSettings(**fields)  # type: ignore[arg-type]


def test_defaults_are_valid_and_frozen() -> None:
    settings = WindowSettings()
    assert (settings.window_samples, settings.hop_samples) == (480_000, 160_000)  # 30 s / 10 s
    with pytest.raises(ValidationError):
        settings.window_s = 10.0  # type: ignore[misc]


def test_every_field_is_documented() -> None:
    assert all(field.description for field in WindowSettings.model_fields.values())
