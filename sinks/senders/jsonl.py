"""JSONL file sender: one alert per line, appended, flushed and (by default) fsynced."""

from __future__ import annotations

import os
from typing import BinaryIO

from sinks import formats
from sinks.alerts import Alert
from sinks.errors import DeliveryFailed
from sinks.receivers import JsonlReceiver


class JsonlSender:
    def __init__(self, receiver: JsonlReceiver) -> None:
        self._receiver = receiver
        self._file: BinaryIO | None = None

    def send(self, alert: Alert) -> None:
        try:
            file = self._open()
            file.write(formats.jsonl_line(alert))
            file.flush()
            if self._receiver.fsync:
                os.fsync(file.fileno())
        except OSError as exc:
            self.close()
            raise DeliveryFailed("io", exc.strerror or type(exc).__name__) from exc

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> BinaryIO:
        if self._file is None:
            self._receiver.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._receiver.path.open("ab")
        return self._file
