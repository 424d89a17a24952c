"""KPAY_KAFKA_* settings to the options Faust's and KPay's own Kafka clients get."""

from __future__ import annotations

import faust
import pytest
from pydantic import ValidationError

from kpay_faust.kafka_security import client_options, credentials
from kpay_faust.settings import Settings


def test_plaintext_needs_no_credentials() -> None:
    assert credentials(Settings()) is None
    assert client_options(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_scram_reaches_every_client() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="kpay",
        kafka_sasl_password="s3cret",
    )
    creds = credentials(settings)
    assert isinstance(creds, faust.SASLCredentials) and "s3cret" not in repr(creds)
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("kpay", "s3cret")


def test_sasl_over_tls_has_a_context() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="k")
    assert client_options(settings)["security_protocol"] == "SASL_SSL"
    assert client_options(settings)["ssl_context"] is not None


def test_an_unknown_mechanism_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(kafka_sasl_mechanism="GSSAPI")
