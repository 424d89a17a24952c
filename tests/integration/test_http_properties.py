"""Property-based tests of the HTTP handlers on a real worker: whatever JSON (or not) a caller
sends to a route that reads a body, the answer is 2xx or a JSON 4xx, never a 5xx."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_http_edges import request, worker  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["10.00", "0", "-1", "1e400", "NaN", "neil", "john", "0.001", " 5 "]),
)
bodies = st.one_of(
    st.binary(max_size=200),
    st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=6,
    ).map(lambda doc: json.dumps(doc).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "id": leaf, "from": leaf, "to": leaf, "amount": leaf, "balance": leaf,
            "per_second": leaf, "by": leaf, "created_at": leaf,
        },
    ).map(lambda doc: json.dumps(doc).encode()),
)  # fmt: skip
ROUTES = ["/payments", "/accounts", "/accounts/neil/deposits", "/control/rate"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(ROUTES), body=bodies)
def test_any_body_gets_a_2xx_or_a_json_4xx(worker, path, body):  # noqa: F811
    operator = f"Bearer {worker.cluster.tokens['operator']}"
    code, content_type, raw = request(worker, "POST", path, body, Authorization=operator)
    assert code < 500 or code == 503, raw[:300]
    if code >= 400:
        assert content_type.startswith("application/json") and json.loads(raw)["error"]


def test_the_rate_is_lifted_afterwards(worker):  # noqa: F811
    operator = f"Bearer {worker.cluster.tokens['operator']}"
    code, _, _ = request(
        worker, "POST", "/control/rate", b'{"per_second": null}', Authorization=operator
    )
    assert code == 202
