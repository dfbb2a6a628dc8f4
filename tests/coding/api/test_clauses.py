"""Clause review through the API (admins, before coding starts): read a clause, move its
bounds, split it, merge it with the next; refused once the policy has references."""

import pytest

from coding.models import Clause, Event
from tests.conftest import SAMPLE_TEXT

from .conftest import code

pytestmark = pytest.mark.django_db


def url(clause: int, action: str = "", policy: int = 1) -> str:
    return f"/api/projects/study/policies/{policy}/clauses/{clause}/" + (f"{action}/" if action else "")


def clauses(policy) -> list[tuple[int, int, int]]:
    return list(Clause.objects.filter(policy=policy).order_by("start").values_list("number", "start", "end"))


# The sample's clauses (article rule): 1-0 the title, then articles 1-1, 1-2, 1-3.
ORIGINAL = [(0, 0, 11), (1, 19, 40), (2, 41, 75), (3, 76, 102)]


def test_sample_has_the_clauses_these_tests_assume(policy):
    assert clauses(policy) == ORIGINAL


# --- read ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a"])
def test_members_read_a_clause(api_as, policy, persona, request):
    response = api_as(request.getfixturevalue(persona)).get(url(3))

    assert response.status_code == 200
    assert response.json() == {
        "number": 3,
        "label": "1-3",
        "start": 76,
        "end": 102,
        "text": SAMPLE_TEXT[76:102],
    }


def test_clause_needs_membership_and_existence(api_as, anonymous, policy, outsider, coder_a):
    assert api_as(outsider).get(url(1)).status_code == 404
    assert anonymous.get(url(1)).status_code == 401
    missing = api_as(coder_a).get(url(7))
    assert missing.status_code == 404 and missing.json() == {"detail": "Policy 1 has no clause 7."}
    assert api_as(coder_a).get(url(1, policy=5)).status_code == 404


# --- bounds --------------------------------------------------------------------------------------


def test_admin_moves_a_clauses_bounds(api_as, policy, admin_user):
    response = api_as(admin_user).patch(url(1), {"start": 12, "end": 40}, format="json")

    assert response.status_code == 200
    assert response.json() == {"number": 1, "label": "1-1", "start": 12, "end": 40, "text": SAMPLE_TEXT[12:40]}
    assert clauses(policy) == [(0, 0, 11), (1, 12, 40), (2, 41, 75), (3, 76, 102)]
    [event] = Event.objects.filter(action="clause.update")
    assert (event.actor, event.target_label, event.before, event.after) == (
        admin_user,
        "1-1",
        {"start": 19, "end": 40},
        {"start": 12, "end": 40},
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"end": 40}, "start"),
        ({"start": 19}, "end"),
        ({"start": 30, "end": 30}, "end"),
        ({"start": 19, "end": 500}, "end"),
        ({"start": -1, "end": 40}, "start"),
        ({"start": "x", "end": 40}, "start"),
        ({"start": 19, "end": 60}, "non_field_errors"),  # would overlap 1-2
    ],
)
def test_bad_bounds_are_400s_and_change_nothing(api_as, policy, admin_user, payload, field):
    response = api_as(admin_user).patch(url(1), payload, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert clauses(policy) == ORIGINAL
    assert not Event.objects.filter(action="clause.update").exists()


def test_bounds_may_not_cut_off_references(api_as, policy, node, coder_a, admin_user):
    code(policy, node, coder_a, 1)

    response = api_as(admin_user).patch(url(1), {"start": 20, "end": 40}, format="json")

    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Clause 1-1 has references outside the new bounds."]}
    assert clauses(policy) == ORIGINAL


# --- split and merge -------------------------------------------------------------------------


def test_admin_splits_a_clause_and_later_numbers_move_up(api_as, policy, admin_user):
    at = SAMPLE_TEXT.index("制定本条例")

    response = api_as(admin_user).post(url(1, "split"), {"at": at}, format="json")

    assert response.status_code == 200
    assert [(c["label"], c["text"]) for c in response.json()] == [
        ("1-1", "第一条　为了促进智慧城市建设，"),
        ("1-2", "制定本条例。"),
    ]
    assert clauses(policy) == [(0, 0, 11), (1, 19, at), (2, at, 40), (3, 41, 75), (4, 76, 102)]
    [event] = Event.objects.filter(action="clause.split")
    assert (event.actor, event.after["renumbered"]) == (admin_user, 2)


@pytest.mark.parametrize(
    ("payload", "field"), [({}, "at"), ({"at": 19}, "at"), ({"at": 40}, "at"), ({"at": 5}, "at"), ({"at": "x"}, "at")]
)
def test_bad_split_offsets_are_400s(api_as, policy, admin_user, payload, field):
    response = api_as(admin_user).post(url(1, "split"), payload, format="json")

    assert response.status_code == 400 and list(response.json()) == [field]
    assert clauses(policy) == ORIGINAL
    assert not Event.objects.filter(action="clause.split").exists()


def test_admin_merges_a_clause_with_the_next(api_as, policy, admin_user):
    response = api_as(admin_user).post(url(1, "merge"))

    assert response.status_code == 200
    assert response.json() == {"number": 1, "label": "1-1", "start": 19, "end": 75, "text": SAMPLE_TEXT[19:75]}
    assert clauses(policy) == [(0, 0, 11), (1, 19, 75), (3, 76, 102)]
    [event] = Event.objects.filter(action="clause.merge")
    assert (event.actor, event.before["second"]["number"]) == (admin_user, 2)


def test_the_last_clause_has_nothing_to_merge_with(api_as, policy, admin_user):
    response = api_as(admin_user).post(url(3, "merge"))

    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": ["Clause 1-3 is the last clause; there is none after it to merge with."]
    }
    assert clauses(policy) == ORIGINAL


@pytest.mark.parametrize(("action", "payload"), [("split", {"at": 30}), ("merge", None)])
def test_split_and_merge_are_refused_once_coded(api_as, policy, node, coder_b, admin_user, action, payload):
    code(policy, node, coder_b, 3)

    response = api_as(admin_user).post(url(1, action), payload, format="json")

    assert response.status_code == 400
    assert "already has 1 reference(s)" in response.json()["non_field_errors"][0]
    assert clauses(policy) == ORIGINAL
    assert not Event.objects.filter(action__startswith="clause.").exists()


# --- who may ----------------------------------------------------------------------------------

WRITES = [
    ("patch", url(1), {"start": 12, "end": 40}),
    ("post", url(1, "split"), {"at": 30}),
    ("post", url(1, "merge"), None),
]


@pytest.mark.parametrize(("method", "path", "payload"), WRITES)
@pytest.mark.parametrize("persona", ["supervisor", "coder_a"])
def test_only_admins_edit_clauses(api_as, policy, method, path, payload, persona, request):
    response = getattr(api_as(request.getfixturevalue(persona)), method)(path, payload, format="json")

    assert response.status_code == 403
    assert clauses(policy) == ORIGINAL


@pytest.mark.parametrize(("method", "path", "payload"), WRITES)
def test_outsiders_and_anonymous_cannot_edit_clauses(api_as, anonymous, policy, outsider, method, path, payload):
    assert getattr(api_as(outsider), method)(path, payload, format="json").status_code == 404
    assert getattr(anonymous, method)(path, payload, format="json").status_code == 401
    assert clauses(policy) == ORIGINAL
    assert not Event.objects.filter(action__startswith="clause.").exists()
