"""Throwaway TLS material for tests: a CA and a server certificate it signed (``cryptography``),
and a TLS syslog collector (RFC 5425 framing) to deliver to.

Nothing is cached or reused: each call makes fresh keys in the caller's folder.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls(folder: Path, name: str = "localhost") -> TlsFiles:
    """A CA (``ca.pem``) and a certificate for ``name`` and 127.0.0.1 (``cert.pem``/``key.pem``)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"earwitness test CA {folder.name}")]
    )
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
            ca_name,
            key.public_key(),
            now,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


class TlsCollector:
    """A TLS syslog listener on 127.0.0.1 (thread ``test-tls-collector``) that reads
    octet-counted frames; ``restart()`` drops the connection and listens again, same port."""

    def __init__(self, files: TlsFiles, port: int = 0) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(files.cert, files.key)
        self.frames: list[bytes] = []
        self._conn: ssl.SSLSocket | None = None
        self._server = socket.create_server(("127.0.0.1", port))
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="test-tls-collector", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._server.accept()
            except OSError:
                return  # closed
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    self._conn = conn
                    self._read(conn)
            except (ssl.SSLError, OSError):
                continue

    def _read(self, conn: ssl.SSLSocket) -> None:
        buffer = b""
        while chunk := conn.recv(65535):
            buffer += chunk
            while b" " in buffer:
                length_text, rest = buffer.split(b" ", 1)
                if len(rest) < int(length_text):
                    break
                self.frames.append(rest[: int(length_text)])
                buffer = rest[int(length_text) :]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self._server.close()
        if self._conn is not None:
            with contextlib.suppress(OSError):  # already closed by the client
                self._conn.shutdown(socket.SHUT_RDWR)  # the collector goes away mid-connection
        self._thread.join(5)
