import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from coding import access, services
from coding.models import REVIEW_ROLES, Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_member_gets_project_and_role(project, coder_a):
    acc = access.get_project_for_user(coder_a, "study")
    assert acc.project == project and acc.role == Role.CODER and not acc.can_review


def test_outsider_and_anonymous_and_missing_project_look_the_same(project, outsider):
    for user, slug in [(outsider, "study"), (AnonymousUser(), "study"), (outsider, "no-such-project")]:
        with pytest.raises(Http404):
            access.get_project_for_user(user, slug)


def test_inactive_member_is_an_outsider(project, coder_a):
    coder_a.is_active = False
    coder_a.save()
    with pytest.raises(Http404):
        access.get_project_for_user(coder_a, "study")


def test_wrong_role_is_forbidden(project, coder_a, supervisor):
    with pytest.raises(PermissionDenied, match="coder"):
        access.get_project_for_user(coder_a, "study", roles=REVIEW_ROLES)
    assert access.get_project_for_user(supervisor, "study", roles=REVIEW_ROLES).can_review


def test_superuser_is_admin_everywhere(project):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    acc = access.get_project_for_user(root, "study", roles={Role.ADMIN})
    assert acc.is_admin


def test_policies_are_found_by_number_within_the_project_only(project, policy, outsider):
    acc = access.get_project_for_user(UserFactory(username="x", is_superuser=True), "study")
    assert access.get_policy(acc, policy.number) == policy
    other = access.get_project_for_user(outsider, "elsewhere")
    with pytest.raises(Http404):
        access.get_policy(other, policy.number)


def _code(policy, node, coder):
    clause = policy.clauses.get(number=1)
    return services.add_reference(
        actor=coder, clause=clause, node=node, coder=coder, start=clause.start, end=clause.end
    )


def test_blind_coding_hides_other_layers_from_coders(project, policy, node, coder_a, coder_b, supervisor):
    mine, theirs = _code(policy, node, coder_a), _code(policy, node, coder_b)
    clause = policy.clauses.get(number=2)
    consensus = services.add_reference(
        actor=supervisor, clause=clause, node=node, consensus=True, start=clause.start, end=clause.end
    )
    as_a = access.get_project_for_user(coder_a, "study")
    assert list(access.visible_references(as_a)) == [mine]
    with pytest.raises(Http404):
        access.get_reference(as_a, theirs.pk)
    as_supervisor = access.get_project_for_user(supervisor, "study")
    assert set(access.visible_references(as_supervisor)) == {mine, theirs, consensus}

    services.update_project(actor=None, project=project, blind_coding=False)
    as_a = access.get_project_for_user(coder_a, "study")
    assert set(access.visible_references(as_a)) == {mine, theirs, consensus}
    # Seeing is not changing: a coder may change only their own layer.
    with pytest.raises(PermissionDenied):
        access.get_reference(as_a, theirs.pk, for_write=True)
    with pytest.raises(PermissionDenied):
        access.get_reference(as_a, consensus.pk, for_write=True)
    assert access.get_reference(as_a, mine.pk, for_write=True) == mine
    assert access.get_reference(as_supervisor, consensus.pk, for_write=True) == consensus
