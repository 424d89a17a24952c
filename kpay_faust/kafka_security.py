"""How this process's Kafka clients authenticate to the broker, from the ``KPAY_KAFKA_*``
settings: Faust's own clients through ``broker_credentials``, and every aiokafka client KPay
makes itself (control follower, load generator) through ``client_options``."""

from __future__ import annotations

import ssl
from typing import Any

import faust
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from kpay_faust.settings import Settings


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    if settings.kafka_ssl_certfile:
        keyfile = str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None
        context.load_cert_chain(str(settings.kafka_ssl_certfile), keyfile)
    return context


def credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for these settings (None for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = _ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else None,
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client with these settings' security."""
    return dict(credentials_to_aiokafka_auth(credentials(settings)))
