import pytest

from coding import services
from coding.models import Event, Node, Reference
from tests.factories import ProjectFactory

from .conftest import code

pytestmark = pytest.mark.django_db

LIST = "/api/projects/study/nodes/"


def detail(node_id: int) -> str:
    return f"/api/projects/study/nodes/{node_id}/"


@pytest.fixture
def codebook(project, admin_user):
    """Two tree nodes with sub-nodes, as in the study's Table 1."""
    supply = services.add_node(actor=admin_user, project=project, name="Supply-based")
    environmental = services.add_node(actor=admin_user, project=project, name="Environmental-based")
    talent = services.add_node(actor=admin_user, project=project, name="Talent", parent=supply)
    infrastructure = services.add_node(actor=admin_user, project=project, name="Infrastructure", parent=supply)
    finance = services.add_node(actor=admin_user, project=project, name="Financial Support", parent=environmental)
    return {
        "supply": supply,
        "environmental": environmental,
        "talent": talent,
        "infrastructure": infrastructure,
        "finance": finance,
    }


def names(tree: list[dict]) -> list:
    return [(n["name"], names(n["children"])) if n["children"] else n["name"] for n in tree]


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a"])
def test_members_read_the_codebook_as_a_tree(api_as, codebook, persona, request):
    response = api_as(request.getfixturevalue(persona)).get(LIST)

    assert response.status_code == 200
    assert names(response.json()) == [
        ("Supply-based", ["Talent", "Infrastructure"]),
        ("Environmental-based", ["Financial Support"]),
    ]
    talent = response.json()[0]["children"][0]
    assert talent["parent"] == codebook["supply"].pk and talent["colour"] == "#ffe08a"


def test_outsider_and_anonymous_do_not_see_the_codebook(api_as, anonymous, codebook, outsider):
    assert api_as(outsider).get(LIST).status_code == 404
    assert api_as(outsider).get(detail(codebook["talent"].pk)).status_code == 404
    assert anonymous.get(LIST).status_code == 401


def test_node_of_another_project_is_404(api_as, codebook, outsider, coder_a):
    foreign = services.add_node(actor=outsider, project=ProjectFactory(slug="x"), name="Foreign")

    assert api_as(coder_a).get(detail(foreign.pk)).status_code == 404


@pytest.mark.parametrize("item_count", [1, 3])
def test_codebook_query_count(api_as, project, admin_user, coder_a, django_assert_num_queries, item_count):
    parent = services.add_node(actor=admin_user, project=project, name="Root")
    for i in range(item_count):
        services.add_node(actor=admin_user, project=project, name=f"Child {i}", parent=parent)
    client = api_as(coder_a)

    with django_assert_num_queries(3):  # token + user, membership, nodes
        response = client.get(LIST)

    assert len(response.json()[0]["children"]) == item_count


def test_admin_adds_a_node(api_as, codebook, admin_user):
    payload = {"name": " Tax incentives ", "parent": codebook["environmental"].pk, "colour": "#aabbcc", "shortcut": "t"}

    response = api_as(admin_user).post(LIST, payload, format="json")

    assert response.status_code == 201
    node = Node.objects.get(name="Tax incentives")
    assert response.json() == {
        "id": node.pk,
        "parent": codebook["environmental"].pk,
        "name": "Tax incentives",
        "description": "",
        "colour": "#aabbcc",
        "shortcut": "t",
        "position": 2,
    }
    assert Event.objects.filter(action="node.create", target_id=node.pk, actor__username="admin_p").count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Talent", "parent": "supply"}, "name"),  # duplicate sibling
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "N", "parent": 999999}, "parent"),  # unknown node
        ({"name": "N", "parent": "foreign"}, "parent"),  # node of another project
        ({"name": "N", "parent": "abc"}, "parent"),
        ({"name": "N", "colour": "red"}, "colour"),
        ({"name": "N", "shortcut": "ab"}, "shortcut"),
        ({"name": "N", "position": -1}, "position"),
    ],
)
def test_bad_node_input_is_a_field_level_400(api_as, codebook, admin_user, outsider, payload, field):
    foreign = services.add_node(actor=outsider, project=ProjectFactory(slug="x"), name="Foreign")
    ids = {"supply": codebook["supply"].pk, "foreign": foreign.pk}
    payload = {k: ids.get(v, v) if k == "parent" else v for k, v in payload.items()}
    before = Node.objects.count()

    response = api_as(admin_user).post(LIST, payload, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert Node.objects.count() == before


def test_foreign_and_unknown_parents_get_the_same_message(api_as, codebook, admin_user, outsider):
    foreign = services.add_node(actor=outsider, project=ProjectFactory(slug="x"), name="Foreign")
    client = api_as(admin_user)

    unknown = client.post(LIST, {"name": "N", "parent": 999999}, format="json").json()["parent"]
    other = client.post(LIST, {"name": "N", "parent": foreign.pk}, format="json").json()["parent"]

    assert unknown == ["Node 999999 is not in this project's codebook."]
    assert other == [f"Node {foreign.pk} is not in this project's codebook."]


@pytest.mark.parametrize("persona", ["supervisor", "coder_a"])
def test_only_admins_change_the_codebook(api_as, codebook, persona, request):
    client = api_as(request.getfixturevalue(persona))
    talent = codebook["talent"]

    assert client.post(LIST, {"name": "New"}, format="json").status_code == 403
    assert client.patch(detail(talent.pk), {"name": "People"}, format="json").status_code == 403
    assert client.delete(detail(talent.pk)).status_code == 403
    merge = client.post(f"{detail(talent.pk)}merge/", {"into": codebook["infrastructure"].pk}, format="json")
    assert merge.status_code == 403
    assert Node.objects.count() == 5 and Node.objects.get(pk=talent.pk).name == "Talent"


def test_outsider_and_anonymous_cannot_change_the_codebook(api_as, anonymous, codebook, outsider):
    talent = codebook["talent"]
    merge = f"{detail(talent.pk)}merge/"

    for client, status in ((api_as(outsider), 404), (anonymous, 401)):
        assert client.post(LIST, {"name": "New"}, format="json").status_code == status
        assert client.patch(detail(talent.pk), {"name": "People"}, format="json").status_code == status
        assert client.delete(detail(talent.pk)).status_code == status
        assert client.post(merge, {"into": codebook["infrastructure"].pk}, format="json").status_code == status
    assert Node.objects.filter(project=talent.project).count() == 5
    assert Node.objects.get(pk=talent.pk).name == "Talent"


def test_admin_renames_and_moves_a_node(api_as, codebook, admin_user):
    talent = codebook["talent"]

    response = api_as(admin_user).patch(
        detail(talent.pk), {"name": "Talent training", "parent": codebook["environmental"].pk}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["parent"]) == ("Talent training", codebook["environmental"].pk)
    event = Event.objects.get(action="node.update")
    assert (event.before["name"], event.after["name"]) == ("Talent", "Talent training")


def test_patch_with_parent_null_moves_to_the_top_and_absent_fields_stay(api_as, codebook, admin_user):
    talent = codebook["talent"]

    body = api_as(admin_user).patch(detail(talent.pk), {"parent": None}, format="json").json()

    assert (body["parent"], body["name"], body["colour"]) == (None, "Talent", "#ffe08a")


def test_empty_patch_is_400_and_writes_no_event(api_as, codebook, admin_user):
    response = api_as(admin_user).patch(detail(codebook["talent"].pk), {}, format="json")

    assert response.status_code == 400 and list(response.json()) == ["non_field_errors"]
    assert not Event.objects.filter(action="node.update").exists()


def test_node_cannot_move_under_itself_or_its_descendant(api_as, codebook, admin_user):
    client = api_as(admin_user)
    supply = codebook["supply"]

    for parent in (supply.pk, codebook["talent"].pk):
        response = client.patch(detail(supply.pk), {"parent": parent}, format="json")
        assert response.status_code == 400 and list(response.json()) == ["parent"]
    assert Node.objects.get(pk=supply.pk).parent_id is None


def test_admin_deletes_an_unused_node_but_not_a_coded_one(api_as, codebook, policy, admin_user, coder_a):
    client = api_as(admin_user)
    code(policy, codebook["talent"], coder_a)

    assert client.delete(detail(codebook["infrastructure"].pk)).status_code == 204
    refused = client.delete(detail(codebook["supply"].pk))

    assert refused.status_code == 400
    assert "merge it into another node" in refused.json()["non_field_errors"][0]
    assert set(Node.objects.values_list("name", flat=True)) == {
        "Supply-based",
        "Environmental-based",
        "Talent",
        "Financial Support",
    }


def test_admin_merges_a_node(api_as, codebook, policy, admin_user, coder_a):
    reference = code(policy, codebook["talent"], coder_a)

    response = api_as(admin_user).post(
        f"{detail(codebook['talent'].pk)}merge/", {"into": codebook["infrastructure"].pk}, format="json"
    )

    assert response.status_code == 200 and response.json()["name"] == "Infrastructure"
    assert Reference.objects.get(pk=reference.pk).node_id == codebook["infrastructure"].pk
    assert not Node.objects.filter(pk=codebook["talent"].pk).exists()


def test_merge_into_a_foreign_or_own_node_is_400(api_as, codebook, admin_user, outsider):
    foreign = services.add_node(actor=outsider, project=ProjectFactory(slug="x"), name="Foreign")
    client = api_as(admin_user)
    url = f"{detail(codebook['supply'].pk)}merge/"

    assert list(client.post(url, {"into": foreign.pk}, format="json").json()) == ["into"]
    assert client.post(url, {"into": codebook["talent"].pk}, format="json").status_code == 400
    assert client.post(url, {"into": codebook["supply"].pk}, format="json").status_code == 400
    assert Node.objects.filter(project=codebook["supply"].project).count() == 5
