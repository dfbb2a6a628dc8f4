"""The codebook page: everyone reads it, admins edit it (create, edit, reorder, move, merge,
delete, import, export)."""

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from coding import services
from coding.models import Clause, Event, Node, Reference
from tests.coding.documents import database_state
from tests.factories import ReferenceFactory

pytestmark = pytest.mark.django_db

CODEBOOK = reverse("coding:codebook", args=["study"])


def html_of(response) -> str:
    return response.content.decode()


@pytest.fixture
def tree(project, admin_user):
    supply = services.add_node(actor=admin_user, project=project, name="Supply-based", shortcut="s")
    talent = services.add_node(actor=admin_user, project=project, name="Talent", parent=supply, description="People")
    info = services.add_node(actor=admin_user, project=project, name="Information Support", parent=supply)
    demand = services.add_node(actor=admin_user, project=project, name="Demand-based")
    return {"supply": supply, "talent": talent, "info": info, "demand": demand}


def siblings(project, parent=None) -> list[str]:
    return list(
        Node.objects.filter(project=project, parent=parent).order_by("position", "id").values_list("name", flat=True)
    )


def post(client, data, **kwargs):
    return client.post(CODEBOOK, data, **kwargs)


# --- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["coder_a", "supervisor", "admin_user"])
def test_every_member_reads_the_codebook_tree(client, tree, persona, request):
    client.force_login(request.getfixturevalue(persona))

    html = html_of(client.get(CODEBOOK))

    rows = re.findall(r'<tr id="node-(\d+)" class="node-row depth-(\d)"', html)
    assert rows == [
        (str(tree["supply"].pk), "0"),
        (str(tree["talent"].pk), "1"),
        (str(tree["info"].pk), "1"),
        (str(tree["demand"].pk), "0"),
    ]
    assert "People" in html
    assert reverse("coding:node_detail", args=["study", tree["talent"].pk]) in html
    assert ("Add a node" in html) == (persona == "admin_user")


def test_outsider_gets_404_and_anonymous_logs_in(client, tree, outsider):
    export = reverse("coding:codebook_export", args=["study", "json"])
    assert client.get(CODEBOOK)["Location"].startswith("/accounts/login/")
    client.force_login(outsider)
    assert client.get(CODEBOOK).status_code == 404
    assert client.get(export).status_code == 404
    assert post(client, {"action": "create", "name": "X"}).status_code == 404


@pytest.mark.parametrize("persona", ["coder_a", "supervisor"])
def test_only_admins_edit(client, tree, persona, request):
    client.force_login(request.getfixturevalue(persona))
    before = database_state()

    for data in [
        {"action": "create", "name": "X", "colour": "#000000"},
        {"action": "delete", "node": tree["info"].pk},
        {"action": "merge", "node": tree["info"].pk, "into": tree["talent"].pk},
        {"action": "import"},
    ]:
        assert post(client, data).status_code == 403

    assert database_state() == before


@pytest.mark.parametrize("item_count", [1, 3])
def test_codebook_page_in_constant_queries(client, project, admin_user, item_count, django_assert_num_queries):
    for i in range(item_count):
        parent = services.add_node(actor=admin_user, project=project, name=f"Tree {i}")
        services.add_node(actor=admin_user, project=project, name=f"Sub {i}", parent=parent)
    client.force_login(admin_user)

    with django_assert_num_queries(4):  # session, user, membership+project, nodes with counts
        html = html_of(client.get(CODEBOOK))

    assert html.count('class="node-row') == 2 * item_count


def test_blind_coder_counts_only_their_own_references(client, project, tree, policy, coder_a, coder_b, admin_user):
    clause = Clause.objects.filter(policy=policy).exclude(number=0).first()
    ReferenceFactory(clause=clause, node=tree["talent"], coder=coder_a)
    ReferenceFactory(clause=clause, node=tree["talent"], coder=coder_b)

    def talent_count(user) -> str:
        client.force_login(user)
        html = html_of(client.get(CODEBOOK))
        row = html.split(f'id="node-{tree["talent"].pk}"')[1]
        return re.search(r'<td class="num">(\d+)</td>', row).group(1)

    assert talent_count(coder_a) == "1"
    assert talent_count(admin_user) == "2"


# --- editing ---------------------------------------------------------------------------------


def test_admin_creates_a_sub_node(client, project, tree, admin_user):
    client.force_login(admin_user)

    response = post(
        client,
        {
            "action": "create",
            "name": " Infrastructure ",
            "parent": tree["supply"].pk,
            "description": "Networks",
            "colour": "#c6cef7",
            "shortcut": "n",
        },
        follow=True,
    )

    assert "Node &#x27;Infrastructure&#x27; created." in html_of(response)
    node = Node.objects.get(project=project, name="Infrastructure")
    assert (node.parent_id, node.description, node.colour, node.shortcut) == (
        tree["supply"].pk,
        "Networks",
        "#c6cef7",
        "n",
    )
    assert Event.objects.filter(action="node.create", target_id=node.pk, actor=admin_user).count() == 1


def test_admin_renames_describes_and_recolours(client, tree, admin_user):
    client.force_login(admin_user)

    post(
        client,
        {"action": "update", "node": tree["talent"].pk, "name": "Talent input", "description": "", "colour": "#123456"},
    )

    talent = Node.objects.get(pk=tree["talent"].pk)
    assert (talent.name, talent.description, talent.colour) == ("Talent input", "", "#123456")
    event = Event.objects.filter(action="node.update", target_id=talent.pk).get()
    assert event.before["name"] == "Talent" and event.after["name"] == "Talent input"


def test_editing_refuses_duplicate_names_and_bad_colours(client, tree, admin_user):
    client.force_login(admin_user)
    before = database_state()

    html = html_of(
        post(
            client,
            {"action": "update", "node": tree["talent"].pk, "name": "Information Support", "colour": "#ffffff"},
            follow=True,
        )
    )
    assert "A node named &#x27;Information Support&#x27; already exists under &#x27;Supply-based&#x27;." in html
    html = html_of(post(client, {"action": "create", "name": "X", "colour": "blue"}, follow=True))
    assert "colour: Use a colour written as #rrggbb." in html
    assert database_state() == before


def test_admin_reorders_siblings(client, project, tree, admin_user):
    client.force_login(admin_user)

    post(client, {"action": "up", "node": tree["info"].pk})

    assert siblings(project, tree["supply"]) == ["Information Support", "Talent"]
    post(client, {"action": "down", "node": tree["supply"].pk})
    assert siblings(project) == ["Demand-based", "Supply-based"]
    assert Event.objects.filter(action="node.reorder").count() == 2


def test_admin_moves_a_node_under_another_and_back_to_the_top(client, project, tree, admin_user):
    client.force_login(admin_user)

    post(client, {"action": "move", "node": tree["info"].pk, "parent": tree["demand"].pk})
    assert Node.objects.get(pk=tree["info"].pk).parent_id == tree["demand"].pk

    post(client, {"action": "move", "node": tree["info"].pk, "parent": ""})
    assert Node.objects.get(pk=tree["info"].pk).parent_id is None

    html = html_of(
        post(client, {"action": "move", "node": tree["supply"].pk, "parent": tree["talent"].pk}, follow=True)
    )
    assert "cannot move under its own descendant" in html


def test_merge_moves_references_and_is_audited(client, project, tree, policy, admin_user, coder_a):
    clause = Clause.objects.filter(policy=policy).exclude(number=0).first()
    reference = ReferenceFactory(clause=clause, node=tree["info"], coder=coder_a)
    client.force_login(admin_user)

    html = html_of(post(client, {"action": "merge", "node": tree["info"].pk, "into": tree["talent"].pk}, follow=True))

    assert "merged into &#x27;Talent&#x27;; its references moved there." in html
    assert not Node.objects.filter(pk=tree["info"].pk).exists()
    assert Reference.objects.get(pk=reference.pk).node_id == tree["talent"].pk
    event = Event.objects.get(action="node.merge")
    assert event.after["references_moved"] == 1 and event.actor_id == admin_user.pk


def test_delete_of_an_unused_node_works_and_of_a_used_one_offers_merge(client, tree, policy, admin_user, coder_a):
    clause = Clause.objects.filter(policy=policy).exclude(number=0).first()
    ReferenceFactory(clause=clause, node=tree["talent"], coder=coder_a)
    client.force_login(admin_user)

    post(client, {"action": "delete", "node": tree["info"].pk})
    assert not Node.objects.filter(pk=tree["info"].pk).exists()

    response = post(client, {"action": "delete", "node": tree["supply"].pk})
    assert response["Location"] == f"{CODEBOOK}?merge={tree['supply'].pk}#merge"
    html = html_of(client.get(response["Location"]))
    assert "has 1 reference(s); merge it into another node instead." in html
    assert re.search(rf'<option value="{tree["supply"].pk}" selected>Supply-based</option>', html)
    assert Node.objects.filter(pk=tree["supply"].pk).exists()


def test_htmx_edit_returns_the_editor_fragment_with_its_message(client, tree, admin_user):
    client.force_login(admin_user)

    response = post(client, {"action": "delete", "node": tree["info"].pk}, headers={"HX-Request": "true"})

    html = html_of(response)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="codebook-editor">') and "<html" not in html
    assert "Node &#x27;Information Support&#x27; deleted." in html
    assert f'id="node-{tree["info"].pk}"' not in html


def test_unknown_action_and_vanished_node_are_explained(client, tree, admin_user):
    client.force_login(admin_user)

    assert "Unknown action" in html_of(post(client, {"action": "explode"}, follow=True))
    assert "node: Select a valid choice" in html_of(post(client, {"action": "delete", "node": 99999}, follow=True))


# --- import and export -----------------------------------------------------------------------


def test_export_json_and_csv_for_every_member(client, tree, coder_a):
    client.force_login(coder_a)

    response = client.get(reverse("coding:codebook_export", args=["study", "json"]))
    assert response["Content-Disposition"] == 'attachment; filename="study-codebook.json"'
    data = json.loads(response.content)
    assert [n["name"] for n in data] == ["Supply-based", "Demand-based"]
    assert [n["name"] for n in data[0]["children"]] == ["Talent", "Information Support"]

    response = client.get(reverse("coding:codebook_export", args=["study", "csv"]))
    assert response.content.decode("utf-8-sig").splitlines()[:3] == [
        "path,description,colour,shortcut",
        "Supply-based,,#ffe08a,s",
        "Supply-based > Talent,People,#ffe08a,",
    ]
    assert client.get(reverse("coding:codebook_export", args=["study", "xml"])).status_code == 404


def test_admin_imports_a_csv_codebook_on_the_page(client, project, tree, admin_user):
    client.force_login(admin_user)
    data = (
        "path,description,colour\n"
        "Supply-based > Talent,Training people,#cfe2fb\n"
        "Environmental-based > Tax incentives,,\n"
    )

    response = post(
        client, {"action": "import", "file": SimpleUploadedFile("cb.csv", data.encode("utf-8-sig"))}, follow=True
    )

    assert "Codebook imported from cb.csv: 2 node(s) created, 1 updated, 0 unchanged." in html_of(response)
    assert Node.objects.get(pk=tree["talent"].pk).description == "Training people"
    assert Node.objects.get(project=project, name="Tax incentives").parent.name == "Environmental-based"


def test_codebook_import_problems_change_nothing(client, tree, admin_user):
    client.force_login(admin_user)
    before = database_state()

    html = html_of(
        post(client, {"action": "import", "file": SimpleUploadedFile("cb.csv", b"path,colour\nA,#12\n")}, follow=True)
    )

    assert "cb.csv, row 2, colour: &#x27;#12&#x27; is not a colour" in html
    assert database_state() == before
