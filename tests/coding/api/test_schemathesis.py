"""Property-based check of the whole API against its own OpenAPI schema (schemathesis).

The schema is loaded from the app's own /api/schema/. For every operation, a bounded number
of generated requests, valid ones and deliberately invalid ones, are sent as a coder of the
project; no answer may be a server error, use a status code the schema does not list, or have a
body that breaks the schema.
"""

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test.utils import override_settings
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from coding import services
from tests.factories import UserFactory

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation, mode and persona: bounded so the whole suite stays quick. Set API_FUZZ_EXAMPLES
# for a deeper search, e.g. before a release.
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "10"))

# Loaded when the module is collected; schemathesis calls the WSGI app as host "localhost".
# (Its own pytest loaders are not used: the lazy one does not work with pytest 9, and plain
# hypothesis tests keep the bound on examples explicit.)
with override_settings(ALLOWED_HOSTS=["localhost"]):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
OPERATIONS = [result.ok() for result in schema.get_all_operations()]
# A coder is refused these before their input is read; they run as the role that may use them
# too, so that their input validation is exercised as well.
ALSO_AS = {
    "POST /api/projects/": "site_admin",
    "PATCH /api/projects/{slug}/": "admin_user",
    "GET /api/projects/{slug}/events/": "supervisor",
    "POST /api/projects/{slug}/policies/": "admin_user",
    "POST /api/projects/{slug}/policies/import/": "admin_user",
    "PATCH /api/projects/{slug}/policies/{number}/": "admin_user",
    "DELETE /api/projects/{slug}/policies/{number}/": "admin_user",
    "POST /api/projects/{slug}/policies/{number}/text/": "admin_user",
    "POST /api/projects/{slug}/policies/{number}/resegment/": "admin_user",
    "PATCH /api/projects/{slug}/policies/{number}/clauses/{clause_number}/": "admin_user",
    "POST /api/projects/{slug}/policies/{number}/clauses/{clause_number}/split/": "admin_user",
    "POST /api/projects/{slug}/policies/{number}/clauses/{clause_number}/merge/": "admin_user",
    "GET /api/projects/{slug}/members/": "admin_user",
    "POST /api/projects/{slug}/members/": "admin_user",
    "GET /api/projects/{slug}/members/{username}/": "admin_user",
    "PATCH /api/projects/{slug}/members/{username}/": "admin_user",
    "DELETE /api/projects/{slug}/members/{username}/": "admin_user",
    "POST /api/projects/{slug}/nodes/": "admin_user",
    "PATCH /api/projects/{slug}/nodes/{node_id}/": "admin_user",
    "DELETE /api/projects/{slug}/nodes/{node_id}/": "admin_user",
    "POST /api/projects/{slug}/nodes/{node_id}/merge/": "admin_user",
    "POST /api/projects/{slug}/nodes/import/": "admin_user",
    "GET /api/projects/{slug}/agreement/": "supervisor",
    "GET /api/projects/{slug}/agreement/disagreements/": "supervisor",
    "POST /api/projects/{slug}/agreement/adjudications/": "supervisor",
    "POST /api/projects/{slug}/agreement/adopt/": "supervisor",
    "PUT /api/projects/{slug}/words/stopwords/": "supervisor",
    "GET /api/projects/{slug}/interchange/qdpx/": "supervisor",
    "GET /api/projects/{slug}/interchange/qdc/": "supervisor",
    "POST /api/projects/{slug}/interchange/import/": "admin_user",
}


def _runs():
    for operation in OPERATIONS:
        # Invalid input needs something to make invalid besides the fixed project slug.
        negatable = operation.body or operation.query or len(operation.path_parameters) > 1
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if negatable else [GenerationMode.POSITIVE]
        personas = ["coder_a", ALSO_AS[operation.label]] if operation.label in ALSO_AS else ["coder_a"]
        for mode in modes:
            for persona in personas:
                if persona == "coder_a" and len(personas) > 1 and mode == GenerationMode.NEGATIVE:
                    continue  # refused before the input is read: invalid input would show nothing new
                label = f"{operation.label} {'valid' if mode == GenerationMode.POSITIVE else 'invalid'} {persona}"
                yield pytest.param(operation, mode, persona, id=label)


@pytest.fixture
def site_admin(db):
    """A site superuser: the only one who creates projects."""
    return UserFactory(username="root", is_superuser=True)


@pytest.fixture
def api_data(db, settings, layers, node, policy, admin_user, coder_a, coder_b):
    settings.ALLOWED_HOSTS = ["localhost"]
    services.add_node(actor=admin_user, project=node.project, name="Talent", parent=node)
    for coder in (coder_a, coder_b):  # so that the agreement endpoints have policies to compare
        services.mark_policy_done(actor=coder, policy=policy, coder=coder)
    # As Django's test client does: a request's end would otherwise close the connection that
    # holds the test's transaction (on PostgreSQL).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.parametrize(("operation", "mode", "persona"), list(_runs()))
def test_api_answers_as_its_schema_says(operation, mode, persona, api_data, request):
    token = Token.objects.create(user=request.getfixturevalue(persona)).key
    # Requests go to the project, so they get past the access check; ids and numbers are
    # generated, and the small ones name the real policy, nodes and references.
    strategy = operation.as_strategy(generation_mode=mode, path_parameters={"slug": "study"})

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)

    check()


def test_every_endpoint_is_checked():
    assert {op.label for op in OPERATIONS} >= set(ALSO_AS)
    assert len(OPERATIONS) == 54
