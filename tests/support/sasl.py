"""A broker whose only listener is SASL_SSL (PLAIN over TLS), for the every-client test.

:func:`sasl_ssl_props` writes a throwaway CA and server certificate (``tests/support/tls.py``),
the broker's PKCS12 keystore and the broker properties ``scripts/kafka-local --sasl-ssl``
appends; :class:`SaslSsl` is what a client needs, as the services' own settings
(``kafka.client`` + ``kafka.sasl_password``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.support.tls import make_tls

USERNAME = "earwitness"


@dataclass(frozen=True)
class SaslSsl:
    """A client's view of the broker: the CA to verify it by and its one user."""

    ca: Path
    password: str
    username: str = USERNAME

    def client(self) -> dict[str, str]:
        """``kafka.client`` as a settings file holds it (no password: that is a secret)."""
        return {
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(self.ca),
            "sasl.mechanism": "PLAIN",
            "sasl.username": self.username,
        }

    def kafka(self, bootstrap: str, **fields: Any) -> dict[str, Any]:
        """A ``kafka`` settings section: bootstrap, ``client``, ``sasl_password``, ``fields``."""
        return {
            "bootstrap_servers": bootstrap,
            "client": self.client(),
            "sasl_password": self.password,
            **fields,
        }

    def librdkafka(self, bootstrap: str) -> dict[str, str]:
        """Raw librdkafka properties, for the test's own helper clients."""
        return {"bootstrap.servers": bootstrap, **self.client(), "sasl.password": self.password}


def sasl_ssl_props(folder: Path) -> tuple[Path, SaslSsl]:
    """(broker properties file, client view) with fresh keys and passwords under ``folder``."""
    tls = make_tls(folder / "tls", name="localhost")
    store_password = secrets.token_hex(12)
    key = serialization.load_pem_private_key(tls.key.read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    keystore = folder / "broker.p12"
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"broker",
            key,  # type: ignore[arg-type]
            cert,
            None,
            serialization.BestAvailableEncryption(store_password.encode()),
        )
    )
    view = SaslSsl(ca=tls.ca, password=secrets.token_hex(12))
    broker_password = secrets.token_hex(12)
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
        f' username="broker" password="{broker_password}"'
        f' user_broker="{broker_password}" user_{view.username}="{view.password}";'
    )
    props = folder / "sasl-ssl.properties"
    props.write_text(
        "\n".join(
            [
                "sasl.enabled.mechanisms=PLAIN",
                "sasl.mechanism.inter.broker.protocol=PLAIN",
                f"listener.name.sasl_ssl.plain.sasl.jaas.config={jaas}",
                "ssl.keystore.type=PKCS12",
                f"ssl.keystore.location={keystore}",
                f"ssl.keystore.password={store_password}",
                f"ssl.key.password={store_password}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={tls.ca}",
                "",
            ]
        )
    )
    return props, view
