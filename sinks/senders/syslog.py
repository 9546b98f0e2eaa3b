"""Syslog sender: RFC 5424 + CEF over UDP (one datagram) or TCP (RFC 6587 octet counting).

TCP keeps one connection and reconnects after an error. Syslog has no acknowledgement: a
line is "delivered" once the kernel accepted it, so a collector that dies with unread data
can lose it. Use the webhook or Kafka receiver where that matters.
"""

from __future__ import annotations

import socket
import time

from sinks import formats
from sinks.alerts import Alert
from sinks.config import SyslogReceiver
from sinks.errors import DeliveryFailed


class SyslogSender:
    def __init__(self, receiver: SyslogReceiver) -> None:
        self._receiver = receiver
        self._hostname = receiver.hostname or socket.gethostname()
        self._sock: socket.socket | None = None

    def send(self, alert: Alert) -> None:
        line = formats.syslog_line(
            alert,
            facility=self._receiver.facility,
            hostname=self._hostname,
            app_name=self._receiver.app_name,
            timestamp_ns=time.time_ns(),
        )
        try:
            if self._receiver.transport == "udp":
                self._send_udp(line)
            else:
                self._send_tcp(formats.octet_counted(line))
        except TimeoutError as exc:
            self.close()
            raise DeliveryFailed("timeout", "syslog send timed out") from exc
        except OSError as exc:
            self.close()
            raise DeliveryFailed("connect", exc.strerror or type(exc).__name__) from exc

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send_udp(self, line: bytes) -> None:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.settimeout(self._receiver.retry.timeout_s)
        self._sock.sendto(line, (self._receiver.host, self._receiver.port))

    def _send_tcp(self, frame: bytes) -> None:
        if self._sock is None:
            address = (self._receiver.host, self._receiver.port)
            self._sock = socket.create_connection(address, timeout=self._receiver.retry.timeout_s)
        self._sock.sendall(frame)
