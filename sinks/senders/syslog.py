"""Syslog sender: RFC 5424 + CEF over TLS (RFC 5425), TCP (RFC 6587 octet counting) or UDP.

TLS and TCP keep one connection and reconnect after an error; TLS verifies the collector's
certificate (``ca_file`` or the system's CAs) and name (``server_name`` or ``host``), and can
present a client certificate. Syslog has no acknowledgement: a line is "delivered" once the
kernel accepted it, so a collector that dies with unread data can lose it. Use the webhook or
Kafka receiver where that matters.
"""

from __future__ import annotations

import socket
import ssl
import time

from sinks import formats
from sinks.alerts import Alert
from sinks.errors import DeliveryFailed
from sinks.receivers import SyslogReceiver


class SyslogSender:
    def __init__(self, receiver: SyslogReceiver) -> None:
        self._receiver = receiver
        self._hostname = receiver.hostname or socket.gethostname()
        self._sock: socket.socket | None = None
        self._tls = _tls_context(receiver) if receiver.transport == "tls" else None

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
                self._send_stream(formats.octet_counted(line))
        except TimeoutError as exc:
            self.close()
            raise DeliveryFailed("timeout", "syslog send timed out") from exc
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise DeliveryFailed("tls_verify", exc.verify_message or "certificate refused") from exc
        except ssl.SSLError as exc:
            self.close()
            raise DeliveryFailed("tls", exc.reason or type(exc).__name__) from exc
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
        self._sock.sendto(line, self._receiver.address)

    def _send_stream(self, frame: bytes) -> None:
        if self._sock is None:
            timeout_s = self._receiver.retry.timeout_s
            sock = socket.create_connection(self._receiver.address, timeout=timeout_s)
            if self._tls is not None:
                name = self._receiver.server_name or self._receiver.host
                sock = self._tls.wrap_socket(sock, server_hostname=name)
            self._sock = sock
        self._sock.sendall(frame)


def _tls_context(receiver: SyslogReceiver) -> ssl.SSLContext:
    """Verify the collector (certificate and name); TLS 1.2 at least (RFC 5425 + BCP 195)."""
    context = ssl.create_default_context(cafile=receiver.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if receiver.cert_file is not None and receiver.key_file is not None:
        context.load_cert_chain(receiver.cert_file, receiver.key_file)
    return context
