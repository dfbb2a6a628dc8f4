import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from coding import services

PERSONAS = ["admin_user", "supervisor", "coder_a"]


@pytest.fixture(autouse=True)
def _fresh_throttle_history():
    # The token endpoint's throttle history lives in the cache, which outlives a test.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def anonymous():
    return APIClient()


@pytest.fixture
def api_as(db):
    """An API client that authenticates as ``user`` with a real token header."""

    def make(user) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def persona(request):
    """Resolve a persona fixture by name (parametrize with indirect names)."""
    return request.getfixturevalue(request.param)


def clause_of(policy, number: int):
    return policy.clauses.get(number=number)


def code(policy, node, coder, clause_number: int = 1, *, consensus: bool = False, actor=None, memo: str = ""):
    clause = clause_of(policy, clause_number)
    return services.add_reference(
        actor=actor or coder,
        clause=clause,
        node=node,
        coder=None if consensus else coder,
        consensus=consensus,
        start=clause.start,
        end=clause.end,
        memo=memo,
    )


@pytest.fixture
def layers(policy, node, coder_a, coder_b, supervisor):
    """One reference in each layer: coder_a's, coder_b's and the consensus (by the supervisor)."""
    return {
        "coder_a": code(policy, node, coder_a, 1),
        "coder_b": code(policy, node, coder_b, 2),
        "consensus": code(policy, node, supervisor, 3, consensus=True),
    }
