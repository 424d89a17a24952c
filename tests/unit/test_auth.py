"""Tokens, roles and the access policy, without a broker."""

from __future__ import annotations

import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpay_faust.app import app
from kpay_faust.web.auth import INTERNAL, POLICY
from kpay_faust.web.tokens import Role, TokenFile, create_token


def test_every_route_has_an_access_policy_and_every_policy_a_route() -> None:
    app.discover()
    routes = {
        (route.method, route.resource.canonical)
        for route in app.web.web_app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    public = {r for r in routes if not r[1].startswith(INTERNAL)}
    assert public == set(POLICY)
    # Open: the probe, and pages and files that hold no data (the console, the API contract).
    assert {r for r, role in POLICY.items() if role is Role.anyone} == {
        ("GET", "/health"),
        ("GET", "/"),
        ("GET", "/assets/{name}"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/{name}"),
    }


def test_a_created_token_is_kept_only_as_a_hash_in_a_private_file(tmp_path) -> None:
    path = tmp_path / "tokens.json"
    token = create_token(path, Role.client, "shop")
    assert token.startswith("kpay_") and token not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = TokenFile(path)
    assert tokens.principal(token).role is Role.client
    assert tokens.principal(token).name == "shop"
    assert tokens.principal(token + "x") is None
    assert tokens.cluster_secret and tokens.is_cluster_secret(tokens.cluster_secret)
    second = create_token(path, Role.operator, "ops")  # seen without a restart
    assert tokens.principal(second).role is Role.operator
    assert tokens.principal(token).role is Role.client


def test_the_cluster_secret_setting_wins_over_the_file(tmp_path) -> None:
    path = tmp_path / "tokens.json"
    create_token(path, Role.viewer, "v")
    tokens = TokenFile(path, cluster_secret="from-env")
    assert tokens.is_cluster_secret("from-env") and not tokens.is_cluster_secret("")


def test_a_missing_file_knows_no_token_and_no_secret(tmp_path) -> None:
    tokens = TokenFile(tmp_path / "absent.json")
    assert tokens.principal("kpay_anything") is None
    assert not tokens.is_cluster_secret("") and tokens.cluster_secret is None


@given(st.text(max_size=80))
def test_no_made_up_token_is_known(tmp_path_factory: pytest.TempPathFactory, guess: str) -> None:
    path = tmp_path_factory.mktemp("t") / "tokens.json"
    create_token(path, Role.operator, "ops")
    assert TokenFile(path).principal(guess) is None
