"""Undoing a reference deletion: DELETE answers the deletion's id, references/restore/ takes it
back, under the page's rules (your own layer; reviewers the consensus; blind coding hides other
layers' deletions as if they did not exist)."""

import pytest

from coding import services
from coding.models import Event, Reference

from .conftest import code

pytestmark = pytest.mark.django_db

RESTORE = "/api/projects/study/references/restore/"


def detail(reference_id: int) -> str:
    return f"/api/projects/study/references/{reference_id}/"


def delete(client, reference) -> int:
    response = client.delete(f"{detail(reference.pk)}?version={reference.version}")
    assert response.status_code == 200, response.content
    return response.json()["deletion"]


def deleted_by_service(reference, actor) -> int:
    return services.delete_reference(actor=actor, reference=reference).pk


def test_a_coder_deletes_and_restores_their_reference(api_as, layers, coder_a):
    client = api_as(coder_a)
    ref = layers["coder_a"]
    before = client.get(detail(ref.pk)).json()
    deletion = delete(client, ref)

    response = client.post(RESTORE, {"deletion": deletion}, format="json")

    assert response.status_code == 201
    assert response["Location"] == detail(ref.pk)
    body = response.json()
    # The same reference again: id, layer, node, span, memo; the version continues from the deleted one.
    changed = {"version", "created_at", "updated_at"}
    assert {k: v for k, v in body.items() if k not in changed} == {k: v for k, v in before.items() if k not in changed}
    assert body["version"] == before["version"] + 1
    restored = Reference.objects.get(pk=ref.pk)
    assert (restored.coder, restored.node_id, restored.start, restored.end) == (
        coder_a,
        ref.node_id,
        ref.start,
        ref.end,
    )
    event = Event.objects.get(action="reference.restore")
    assert (event.actor, event.target_id, event.after["coder_id"]) == (coder_a, ref.pk, coder_a.pk)


def test_restoring_twice_answers_the_restored_reference_once_made(api_as, layers, coder_a):
    client = api_as(coder_a)
    deletion = delete(client, layers["coder_a"])
    client.post(RESTORE, {"deletion": deletion}, format="json")

    again = client.post(RESTORE, {"deletion": deletion}, format="json")

    assert again.status_code == 200 and again.json()["id"] == layers["coder_a"].pk
    assert Event.objects.filter(action="reference.restore").count() == 1
    assert Reference.objects.count() == 3


def test_restoring_a_passage_coded_again_meanwhile_answers_that_reference(api_as, policy, node, coder_a):
    client = api_as(coder_a)
    deletion = delete(client, code(policy, node, coder_a, 1))
    again = code(policy, node, coder_a, 1)

    response = client.post(RESTORE, {"deletion": deletion}, format="json")

    assert response.status_code == 200 and response.json()["id"] == again.pk
    assert list(Reference.objects.values_list("pk", flat=True)) == [again.pk]
    assert not Event.objects.filter(action="reference.restore").exists()


@pytest.mark.parametrize("persona", ["admin_user", "supervisor"])
def test_reviewers_restore_the_consensus_but_not_a_coders_deletion(api_as, layers, coder_a, persona, request):
    client = api_as(request.getfixturevalue(persona))
    consensus = delete(client, layers["consensus"])
    coders = deleted_by_service(layers["coder_a"], coder_a)

    assert client.post(RESTORE, {"deletion": consensus}, format="json").status_code == 201
    refused = client.post(RESTORE, {"deletion": coders}, format="json")

    assert refused.status_code == 403
    assert set(Reference.objects.values_list("pk", flat=True)) == {layers["coder_b"].pk, layers["consensus"].pk}


def test_a_blind_coder_cannot_find_other_layers_deletions(api_as, layers, coder_a, coder_b, supervisor):
    others = [deleted_by_service(layers["coder_b"], coder_b), deleted_by_service(layers["consensus"], supervisor)]
    client = api_as(coder_a)

    for deletion in others:
        response = client.post(RESTORE, {"deletion": deletion}, format="json")
        assert response.status_code == 404 and response.json() == {"detail": "No such deletion."}
    assert list(Reference.objects.values_list("pk", flat=True)) == [layers["coder_a"].pk]


def test_without_blind_coding_a_coder_sees_but_may_not_restore_others(api_as, project, admin_user, layers, coder_b):
    services.update_project(actor=admin_user, project=project, blind_coding=False)
    deletion = deleted_by_service(layers["coder_b"], coder_b)
    coder_a = layers["coder_a"].coder

    response = api_as(coder_a).post(RESTORE, {"deletion": deletion}, format="json")

    assert response.status_code == 403
    assert not Reference.objects.filter(pk=layers["coder_b"].pk).exists()


def test_outsiders_get_404_and_anonymous_callers_401(api_as, anonymous, layers, coder_a, outsider):
    deletion = deleted_by_service(layers["coder_a"], coder_a)

    assert api_as(outsider).post(RESTORE, {"deletion": deletion}, format="json").status_code == 404
    assert anonymous.post(RESTORE, {"deletion": deletion}, format="json").status_code == 401
    assert not Reference.objects.filter(pk=layers["coder_a"].pk).exists()


def test_only_deletions_of_this_project_can_be_restored(api_as, layers, policy, coder_a, outsider):
    create_event = Event.objects.get(action="reference.create", target_id=layers["coder_a"].pk)
    elsewhere = services.create_project(actor=None, slug="another", name="Another")
    foreign = Event.objects.create(project=elsewhere, action="reference.delete", target_id=1, before={"coder_id": 1})
    client = api_as(coder_a)

    assert client.post(RESTORE, {"deletion": create_event.pk}, format="json").status_code == 404
    assert client.post(RESTORE, {"deletion": foreign.pk}, format="json").status_code == 404


@pytest.mark.parametrize(
    "payload", [{}, {"deletion": None}, {"deletion": "one"}, {"deletion": 0}, {"deletion": 2**31}, {"id": 1}]
)
def test_a_restore_needs_a_deletion_id(api_as, layers, coder_a, payload):
    response = api_as(coder_a).post(RESTORE, payload, format="json")

    assert response.status_code == 400 and list(response.json()) == ["deletion"]


def test_a_deletion_whose_node_is_gone_is_refused_and_changes_nothing(
    api_as, project, layers, node, admin_user, coder_a
):
    deletion = delete(api_as(coder_a), layers["coder_a"])
    other = services.add_node(actor=admin_user, project=project, name="Other")
    services.merge_nodes(actor=admin_user, source=node, target=other)
    events = Event.objects.count()

    response = api_as(coder_a).post(RESTORE, {"deletion": deletion}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "deletion": ["The node of this reference was deleted or merged since; code the passage again."]
    }
    assert not Reference.objects.filter(pk=layers["coder_a"].pk).exists()
    assert Event.objects.count() == events
