"""The coders' workbench on the server: the policy page and its htmx partials, saving a
selection sent in browser (UTF-16) offsets, editing with optimistic concurrency, delete and
undo, done marks, blind coding in every partial, permissions and query counts."""

import json
import re
from html import unescape
from html.parser import HTMLParser

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from coding import access, services
from coding.importing import clean_text
from coding.models import Clause, DoneMark, Event, Policy, Reference
from coding.segmentation import segment
from coding.views.policies import clause_html
from tests.conftest import SAMPLE_TEXT
from tests.factories import PolicyFactory, ReferenceFactory

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def url(name: str, *args) -> str:
    return reverse(f"coding:{name}", args=["study", *args])


def clause(policy, number: int) -> Clause:
    return Clause.objects.get(policy=policy, number=number)


def selection(policy, number: int, passage: str, node, **extra) -> dict:
    """What the page's JavaScript sends for ``passage`` selected in clause ``number``."""
    c = clause(policy, number)
    text = policy.text[c.start : c.end]
    before = text.index(passage)
    return {
        "node": node.pk,
        "start_clause": number,
        "start_offset": utf16(text[:before]),
        "end_clause": number,
        "end_offset": utf16(text[: before + len(passage)]),
        "quote": passage,
        **extra,
    }


def code(client, policy, number, passage, node, **extra):
    return client.post(
        url("reference_add", policy.number), selection(policy, number, passage, node, **extra), headers=HX
    )


def add_ref(policy, number, coder, node, passage=None):
    c = clause(policy, number)
    text = policy.text[c.start : c.end]
    start = c.start + (text.index(passage) if passage else 0)
    end = start + len(passage) if passage else c.end
    return services.add_reference(actor=coder, clause=c, node=node, coder=coder, start=start, end=end)


class TextContent(HTMLParser):
    """The textContent of each .clause-text element, as a browser computes it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: dict[str, str] = {}
        self._current: str | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self._current is not None:
            self._depth += 1
        elif "clause-text" in (attrs.get("class") or "").split():
            self._current, self._depth = attrs["data-label"], 0
            self.texts[self._current] = ""

    def handle_endtag(self, tag):
        if self._current is None:
            return
        if self._depth == 0:
            self._current = None
        else:
            self._depth -= 1

    def handle_startendtag(self, tag, attrs):
        pass  # void elements add no text

    def handle_data(self, data):
        if self._current is not None:
            self.texts[self._current] += data


def clause_texts(html: str) -> dict[str, str]:
    # A browser turns raw CR (and CRLF) in the source into LF; only &#13; survives as CR.
    parser = TextContent()
    parser.feed(html.replace("\r\n", "\n").replace("\r", "\n"))
    return parser.texts


def raw_policy(project, text: str):
    """A policy whose stored text keeps its CRLF line endings (the import path normalises
    them to LF, but the page must map offsets exactly whatever the stored text holds)."""
    policy = PolicyFactory(project=project, number=Policy.objects.filter(project=project).count() + 1, text=text)
    for span in segment(text, "article").clauses:
        Clause.objects.create(policy=policy, number=span.number, start=span.start, end=span.end)
    return policy


@pytest.fixture
def talent(project, admin_user, node):
    return services.add_node(actor=admin_user, project=project, name="Talent", parent=node, shortcut="t")


# --- the page ---------------------------------------------------------------------------


def test_every_clause_text_renders_exactly_as_stored(client, policy, coder_a, node, talent):
    add_ref(policy, 3, coder_a, talent, "人才培养，𠀀支持")
    add_ref(policy, 3, coder_a, node, "𠀀支持数据")
    client.force_login(coder_a)

    html = client.get(url("policy_detail", 1)).content.decode()

    expected = {f"1-{c.number}": policy.text[c.start : c.end] for c in policy.clauses.all()}
    assert clause_texts(html) == expected


def test_crlf_text_keeps_its_cr_in_the_page(client, project, admin_user, coder_a, node):
    # Imported text is stored with LF; a text stored with CRLF anyway must still map exactly.
    policy = raw_policy(project, "第一条　第一款。\r\n第二款𠀀内容。\r\n第二条　其他。\r\n")
    client.force_login(coder_a)

    html = client.get(url("policy_detail", policy.number)).content.decode()

    assert "&#13;" in html
    assert clause_texts(html)["1-1"] == "第一条　第一款。\r\n第二款𠀀内容。"


def test_overlapping_references_each_stay_listed_on_their_marks():
    refs = [
        ReferenceFactory.build(pk=1, start=10, end=14, node_id=7),
        ReferenceFactory.build(pk=2, start=12, end=16, node_id=8),
        ReferenceFactory.build(pk=3, start=12, end=16, node_id=7),
    ]

    html = clause_html("abcdefghij<&>\rXYZ", 8, refs, {7: "#aaaaaa", 8: "#bbbbbb"})

    marks = re.findall(r'<mark class="([^"]*)" data-refs="([^"]*)"(?: style="--hl:([^"]*)")?>([^<]*)</mark>', html)
    assert marks == [
        ("n7", "1", "", "cd"),
        ("overlap", "1 2 3", "linear-gradient(#aaaaaa 0.0% 33.3%,#bbbbbb 33.3% 66.7%,#aaaaaa 66.7% 100.0%)", "ef"),
        ("overlap", "2 3", "linear-gradient(#bbbbbb 0.0% 50.0%,#aaaaaa 50.0% 100.0%)", "gh"),
    ]
    assert unescape(re.sub(r"<[^>]+>", "", html)) == "abcdefghij<&>\rXYZ"
    assert "\r" not in html


def test_page_lists_references_by_node_with_counts_progress_and_neighbours(
    client, project, policy, admin_user, coder_a, node, talent
):
    services.create_policy(actor=admin_user, project=project, title="two", text=SAMPLE_TEXT)
    add_ref(policy, 1, coder_a, talent)
    add_ref(policy, 3, coder_a, talent, "人才培养")
    add_ref(policy, 2, coder_a, node)
    services.mark_policy_done(actor=coder_a, policy=policy, coder=coder_a)
    client.force_login(coder_a)

    response = client.get(url("policy_detail", 1))
    panel = client.get(url("policy_panel", 1), headers=HX)

    groups = [
        (g["entry"].path, g["count"], re.findall(r'class="label">([^<]*)<', g["entries"]))
        for g in panel.context_data["groups"]
    ]
    assert groups == [("Supply-based", 1, ["1-2"]), ("Supply-based › Talent", 2, ["1-1", "1-3"])]
    assert response.context["progress"] | {"coder": None} == {
        "coder": None,
        "own": True,
        "done": 1,
        "total": 2,
        "this_done": True,
    }
    assert (response.context["previous"], response.context["next"]) == (None, 2)
    html = response.content.decode()
    assert 'aria-label="Code whole clause 1-3"' in html
    assert f'role="option" id="pick-{talent.pk}"' in html and 'aria-label="Supply-based › Talent"' in html


def test_supervisor_sees_every_layer_and_can_filter_by_coder(client, policy, supervisor, coder_a, coder_b, node):
    mine = add_ref(policy, 1, coder_a, node)
    theirs = add_ref(policy, 2, coder_b, node)
    client.force_login(supervisor)

    everyone = client.get(url("policy_detail", 1))
    only_b = client.get(url("policy_detail", 1), {"coder": "coder_b"})
    bad = client.get(url("policy_detail", 1), {"coder": "nobody"})
    bad_panel = client.get(url("policy_panel", 1), {"coder": "nobody"}, headers=HX)

    assert f'data-refs="{mine.pk}"' in everyone.content.decode()
    assert f'data-refs="{theirs.pk}"' in everyone.content.decode()
    assert f'data-refs="{mine.pk}"' not in only_b.content.decode()
    assert f'data-refs="{theirs.pk}"' in only_b.content.decode()
    assert "?coder=coder_b" in only_b.content.decode()  # partials keep the filter
    assert "nobody is not a coder in this project." in bad.content.decode()
    assert bad_panel.context_data["total"] == 0
    assert 'aria-label="Code whole clause' not in everyone.content.decode()  # reviewers read, coders code


# --- blind coding, in the page and in every partial ------------------------------------------


def test_blind_coder_sees_no_other_layer_anywhere(client, policy, coder_a, coder_b, node):
    theirs = add_ref(policy, 3, coder_a, node, "人才培养")
    client.force_login(coder_b)

    pages = [
        client.get(url("policy_detail", 1)),
        client.get(url("clause_row", 1, 3), headers=HX),
        client.get(url("policy_panel", 1), headers=HX),
        client.get(url("node_detail", node.pk)),
        client.get(url("node_detail", node.pk), {"coder": "coder_a"}),
    ]

    for response in pages:
        html = response.content.decode()
        assert f"ref-{theirs.pk}" not in html and f'data-refs="{theirs.pk}"' not in html
        assert "coder_a" not in html
    assert pages[2].context_data["total"] == 0
    assert pages[3].context["page"].paginator.count == 0
    assert client.get(url("reference_cards", 1), {"id": theirs.pk}, headers=HX).status_code == 404
    edit = client.post(url("reference_edit", 1, theirs.pk), {"memo": "x", "version": 1}, headers=HX)
    delete = client.post(url("reference_delete", 1, theirs.pk), {"version": 1}, headers=HX)
    assert (edit.status_code, delete.status_code) == (404, 404)
    assert Reference.objects.get(pk=theirs.pk).memo == ""


def test_without_blind_coding_coders_see_but_cannot_change_others(client, project, policy, coder_a, coder_b, node):
    services.update_project(actor=None, project=project, blind_coding=False)
    theirs = add_ref(policy, 3, coder_a, node, "人才培养")
    client.force_login(coder_b)

    cards = client.get(url("reference_cards", 1), {"id": theirs.pk}, headers=HX)
    edit = client.post(url("reference_edit", 1, theirs.pk), {"memo": "x", "version": 1}, headers=HX)

    assert cards.status_code == 200 and "Save memo" not in cards.content.decode()
    assert edit.status_code == 403


# --- saving a selection ----------------------------------------------------------------------


def test_selection_after_astral_character_is_stored_exactly_as_selected(client, policy, coder_a, talent):
    client.force_login(coder_a)
    events = Event.objects.count()

    response = code(client, policy, 3, "支持数据共享", talent)

    assert response.status_code == 200
    reference = Reference.objects.get()
    assert reference.text == "支持数据共享" == policy.text[reference.start : reference.end]
    assert (reference.coder, reference.node, reference.clause.number) == (coder_a, talent, 3)
    assert Event.objects.count() == events + 1
    assert Event.objects.latest("id").action == "reference.create"
    html = response.content.decode()
    assert 'id="clause-1-3" data-clause="3" hx-swap-oob="outerHTML"' in html
    assert f'<mark class="n{talent.pk}" data-refs="{reference.pk}">支持数据共享</mark>' in html
    assert json.loads(response["HX-Trigger"]) == {
        "pc:coded": {"ids": [reference.pk], "node": talent.pk},
        "pc:panel-stale": {},
    }


def test_selection_including_the_astral_character_and_after_a_crlf_break(client, project, admin_user, coder_a, talent):
    text = clean_text("第一条　市人民政府应当加强人才培养。\r\n县级人民政府𠀀支持数据共享。\r\n")
    policy = services.create_policy(actor=admin_user, project=project, title="crlf", text=text)
    client.force_login(coder_a)

    response = code(client, policy, 1, "𠀀支持数据", talent)

    assert response.status_code == 200
    reference = Reference.objects.get()
    assert reference.text == "𠀀支持数据"
    assert policy.text[reference.start : reference.end] == "𠀀支持数据"


def test_selection_on_text_stored_with_crlf_is_stored_exactly(client, project, admin_user, coder_a, talent):
    policy = raw_policy(project, "第一条　市人民政府应当加强人才培养。\r\n县级人民政府𠀀支持数据共享。\r\n")
    client.force_login(coder_a)

    response = code(client, policy, 1, "培养。\r\n县级", talent)

    assert response.status_code == 200
    assert Reference.objects.get().text == "培养。\r\n县级"


def test_selection_across_clauses_becomes_one_reference_per_clause(client, policy, coder_a, talent):
    c2 = clause(policy, 2)
    client.force_login(coder_a)
    first = policy.text[c2.start : c2.end][-6:]
    data = {
        "node": talent.pk,
        "start_clause": 2,
        "start_offset": utf16(policy.text[c2.start : c2.end]) - 6,
        "end_clause": 3,
        "end_offset": 3,
        "quote": first + "第三条",
    }

    response = client.post(url("reference_add", 1), data, headers=HX)

    assert response.status_code == 200
    assert [(r.clause.number, r.text) for r in Reference.objects.order_by("start")] == [(2, first), (3, "第三条")]
    html = response.content.decode()
    assert 'id="clause-1-2"' in html and 'id="clause-1-3"' in html
    assert len(json.loads(response["HX-Trigger"])["pc:coded"]["ids"]) == 2


def test_saving_the_same_selection_twice_stores_it_once(client, policy, coder_a, talent):
    client.force_login(coder_a)

    first = code(client, policy, 3, "人才培养", talent)
    again = code(client, policy, 3, "人才培养", talent)

    assert first.status_code == again.status_code == 200
    assert Reference.objects.count() == 1
    assert Event.objects.filter(action="reference.create").count() == 1


def test_a_duplicate_insert_returns_the_row_already_there(policy, coder_a, talent):
    # What two tabs racing past the "already coded?" check end in: the second insert hits
    # the unique constraint and gets the first tab's reference instead of an error.
    existing = add_ref(policy, 3, coder_a, talent, "人才培养")
    twin = Reference(
        policy=policy,
        clause=existing.clause,
        node=talent,
        coder=coder_a,
        created_by=coder_a,
        start=existing.start,
        end=existing.end,
        text=existing.text,
    )

    assert services._insert_unless_duplicate(twin) == existing
    assert Reference.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quote": "别的文字"}, "The selected text does not match the policy text at that place"),
        ({"start_offset": 19, "end_offset": 20, "quote": ""}, "falls inside a surrogate pair"),
        ({"end_offset": 999}, "out of range"),
        ({"end_clause": 9}, "Clause 1-9 does not exist"),
        ({"start_offset": 5, "end_offset": 5, "quote": ""}, "The selection is empty"),
        ({"node": 424242}, "node: That node does not exist in this project"),
        ({"start_offset": "x"}, "start_offset: Enter a whole number."),
    ],
)
def test_bad_selection_says_what_is_wrong_and_stores_nothing(client, policy, coder_a, talent, change, message):
    client.force_login(coder_a)
    data = selection(policy, 3, "支持数据共享", talent) | change

    response = client.post(url("reference_add", 1), data, headers=HX)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert message in response.content.decode()
    assert not Reference.objects.exists()


def test_node_of_another_project_is_refused(client, policy, coder_a, outsider):
    other = services.add_node(actor=None, project=access.get_project_for_user(outsider, "elsewhere").project, name="X")
    client.force_login(coder_a)

    response = code(client, policy, 3, "人才培养", other)

    assert response.status_code == 400 and not Reference.objects.exists()


def test_expired_session_gets_401_for_htmx_and_login_redirect_otherwise(client, policy, talent):
    partial = client.post(url("reference_add", 1), selection(policy, 3, "人才培养", talent), headers=HX)
    page = client.get(url("policy_detail", 1))

    assert partial.status_code == 401 and "session has expired" in partial.content.decode()
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/")


def test_supervisor_cannot_code_in_a_layer_of_their_own(client, policy, supervisor, talent):
    client.force_login(supervisor)

    assert code(client, policy, 3, "人才培养", talent).status_code == 403
    assert client.post(url("policy_done", 1), {"done": "on"}, headers=HX).status_code == 403


def test_outsider_gets_404_from_every_workbench_endpoint(client, policy, coder_a, outsider, node):
    ref = add_ref(policy, 3, coder_a, node)
    client.force_login(outsider)

    gets = [url("policy_detail", 1), url("clause_row", 1, 3), url("policy_panel", 1), url("node_detail", node.pk)]
    gets.append(url("reference_cards", 1) + f"?id={ref.pk}")
    posts = [
        url("reference_add", 1),
        url("reference_edit", 1, ref.pk),
        url("reference_delete", 1, ref.pk),
        url("reference_restore", 1),
        url("policy_done", 1),
    ]
    for address in gets:
        assert client.get(address, headers=HX).status_code == 404, address
    for address in posts:
        assert client.post(address, {"version": 1, "deletion": 1}, headers=HX).status_code == 404, address


# --- editing: memo, node, optimistic concurrency -------------------------------------------------


def test_memo_and_node_changes_are_saved_versioned_and_audited(client, policy, coder_a, node, talent):
    ref = add_ref(policy, 3, coder_a, node, "人才培养")
    client.force_login(coder_a)

    memo = client.post(url("reference_edit", 1, ref.pk), {"memo": "talent training", "version": 1}, headers=HX)
    moved = client.post(url("reference_edit", 1, ref.pk), {"node": talent.pk, "version": 2}, headers=HX)

    assert memo.status_code == moved.status_code == 200
    ref.refresh_from_db()
    assert (ref.memo, ref.node, ref.version) == ("talent training", talent, 3)
    updates = Event.objects.filter(action="reference.update").order_by("id")
    assert [(e.before["memo"], e.after["memo"], e.after["node_id"]) for e in updates] == [
        ("", "talent training", node.pk),
        ("talent training", "talent training", talent.pk),
    ]
    html = moved.content.decode()
    assert f'id="card-{ref.pk}"' in html and 'data-version="3"' in html and "Supply-based › Talent" in html
    assert 'id="clause-1-3" data-clause="3" hx-swap-oob="outerHTML"' in html


def test_editing_a_reference_changed_elsewhere_is_a_conflict_not_an_overwrite(client, policy, coder_a, node, talent):
    ref = add_ref(policy, 3, coder_a, node, "人才培养")
    services.update_reference(actor=coder_a, reference=ref, version=1, memo="from the other tab")
    client.force_login(coder_a)

    response = client.post(url("reference_edit", 1, ref.pk), {"memo": "from this tab", "version": 1}, headers=HX)

    assert response.status_code == 409
    html = response.content.decode()
    assert "changed elsewhere since you opened it, so your change was not applied" in html
    assert "from the other tab</textarea>" in html and 'data-version="2"' in html
    assert "Your memo, not saved: <q>from this tab</q>" in html
    ref.refresh_from_db()
    assert (ref.memo, ref.version) == ("from the other tab", 2)


def test_moving_onto_a_node_that_already_codes_the_passage_says_so(client, policy, coder_a, node, talent):
    ref = add_ref(policy, 3, coder_a, node, "人才培养")
    add_ref(policy, 3, coder_a, talent, "人才培养")
    client.force_login(coder_a)

    response = client.post(url("reference_edit", 1, ref.pk), {"node": talent.pk, "version": 1}, headers=HX)

    assert response.status_code == 400
    assert "This passage is already coded at &#x27;Talent&#x27; in the same layer." in response.content.decode()
    ref.refresh_from_db()
    assert (ref.node, ref.version) == (node, 1)


def test_edit_with_nothing_to_change_or_a_bad_version_is_refused(client, policy, coder_a, node):
    ref = add_ref(policy, 3, coder_a, node, "人才培养")
    client.force_login(coder_a)

    nothing = client.post(url("reference_edit", 1, ref.pk), {"version": 1}, headers=HX)
    no_version = client.post(url("reference_edit", 1, ref.pk), {"memo": "x"}, headers=HX)

    assert nothing.status_code == no_version.status_code == 400
    assert "Nothing to change: send a node or a memo." in nothing.content.decode()
    assert "version: This field is required." in no_version.content.decode()
    assert Reference.objects.get().version == 1


def test_reference_of_another_policy_is_not_reachable_through_this_one(
    client, project, policy, admin_user, coder_a, node
):
    other = services.create_policy(actor=admin_user, project=project, title="two", text=SAMPLE_TEXT)
    ref = add_ref(other, 3, coder_a, node)
    client.force_login(coder_a)

    assert client.post(url("reference_edit", 1, ref.pk), {"memo": "x", "version": 1}, headers=HX).status_code == 404
    assert client.get(url("reference_cards", 1), {"id": ref.pk}, headers=HX).status_code == 404


# --- delete and undo ---------------------------------------------------------------------------


def test_delete_then_undo_restores_the_same_reference_and_audits_both(client, policy, coder_a, talent):
    ref = add_ref(policy, 3, coder_a, talent, "𠀀支持")
    services.update_reference(actor=coder_a, reference=ref, version=1, memo="keep me")
    client.force_login(coder_a)

    deleted = client.post(url("reference_delete", 1, ref.pk), {"version": 2}, headers=HX)

    assert deleted.status_code == 200 and not Reference.objects.exists()
    event = Event.objects.get(action="reference.delete")
    html = deleted.content.decode()
    assert "Deleted reference 1-3 at Supply-based › Talent." in html
    assert f'name="deletion" value="{event.pk}"' in html
    assert json.loads(deleted["HX-Trigger"])["pc:deleted"] == {"id": ref.pk}

    restored = client.post(url("reference_restore", 1), {"deletion": event.pk}, headers=HX)
    twice = client.post(url("reference_restore", 1), {"deletion": event.pk}, headers=HX)

    assert restored.status_code == twice.status_code == 200
    back = Reference.objects.get()
    assert (back.pk, back.text, back.memo, back.node, back.coder) == (ref.pk, "𠀀支持", "keep me", talent, coder_a)
    assert back.version == 3  # a form read before the deletion conflicts rather than overwrites
    assert Event.objects.filter(action="reference.restore").count() == 1
    assert f'data-refs="{ref.pk}"' in restored.content.decode()
    assert "Restored reference 1-3 at Supply-based › Talent." in restored.content.decode()


def test_deleting_a_reference_changed_elsewhere_is_a_conflict(client, policy, coder_a, node):
    ref = add_ref(policy, 3, coder_a, node)
    services.update_reference(actor=coder_a, reference=ref, version=1, memo="changed")
    client.force_login(coder_a)

    response = client.post(url("reference_delete", 1, ref.pk), {"version": 1}, headers=HX)

    assert response.status_code == 409
    assert "so it was not deleted" in response.content.decode()
    assert Reference.objects.filter(pk=ref.pk).exists()


def test_undo_is_only_for_deletions_in_ones_own_layer(client, policy, coder_a, coder_b, node):
    ref = add_ref(policy, 3, coder_a, node)
    event = services.delete_reference(actor=coder_a, reference=ref)
    client.force_login(coder_b)

    response = client.post(url("reference_restore", 1), {"deletion": event.pk}, headers=HX)

    assert response.status_code == 404  # blind: another coder's deletion does not exist for them
    assert not Reference.objects.exists()
    services.update_project(actor=None, project=policy.project, blind_coding=False)
    as_b = access.get_project_for_user(coder_b, "study")
    with pytest.raises(PermissionDenied):
        access.get_reference_deletion(as_b, event.pk)
    with pytest.raises(Http404):
        access.get_reference_deletion(as_b, 10**9)


def test_undo_after_the_node_was_merged_away_says_why(client, policy, admin_user, coder_a, node, talent):
    ref = add_ref(policy, 3, coder_a, talent)
    event = services.delete_reference(actor=coder_a, reference=ref)
    services.merge_nodes(actor=admin_user, source=talent, target=node)
    client.force_login(coder_a)

    response = client.post(url("reference_restore", 1), {"deletion": event.pk}, headers=HX)

    assert response.status_code == 400
    assert "node of this reference was deleted or merged" in response.content.decode()
    assert not Reference.objects.exists()


# --- done mark ---------------------------------------------------------------------------------


def test_done_toggle_marks_and_unmarks_this_policy_for_the_coder(client, policy, coder_a):
    client.force_login(coder_a)

    done = client.post(url("policy_done", 1), {"done": "on"}, headers=HX)
    assert DoneMark.objects.filter(policy=policy, coder=coder_a).exists()
    assert "✓ Done with this policy" in done.content.decode()
    assert "<strong>1</strong> of 1 policy done." in done.content.decode()

    undone = client.post(url("policy_done", 1), {"done": ""}, headers=HX)
    assert not DoneMark.objects.exists()
    assert "Mark this policy done" in undone.content.decode()
    assert [e.action for e in Event.objects.filter(action__startswith="policy.") if "done" in e.action] == [
        "policy.undone",
        "policy.done",
    ]


# --- query counts --------------------------------------------------------------------------


def _queries(client, address, data=None, method="get") -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = getattr(client, method)(address, data or {}, headers=HX)
        assert response.status_code == 200, response.content
    return len(ctx)


@pytest.mark.parametrize("persona", ["coder_a", "supervisor"])
def test_policy_page_query_count_does_not_grow_with_references(
    client, request, policy, coder_a, coder_b, supervisor, node, talent, persona
):
    client.force_login(request.getfixturevalue(persona))
    add_ref(policy, 1, coder_a, node)
    add_ref(policy, 1, coder_b, node)
    counts = {}
    for name, address in [
        ("page", url("policy_detail", 1)),
        ("panel", url("policy_panel", 1)),
        ("clause", url("clause_row", 1, 1)),
    ]:
        counts[name] = _queries(client, address)
    for coder in (coder_a, coder_b):
        add_ref(policy, 2, coder, talent)
        add_ref(policy, 3, coder, talent, "人才培养")
        add_ref(policy, 3, coder, node, "支持")

    assert _queries(client, url("policy_detail", 1)) == counts["page"]
    assert _queries(client, url("policy_panel", 1)) == counts["panel"]
    assert _queries(client, url("clause_row", 1, 1)) == counts["clause"]


def test_saving_takes_the_same_number_of_queries_however_coded_the_clause_is(client, policy, coder_a, node, talent):
    client.force_login(coder_a)
    first = _queries(client, url("reference_add", 1), selection(policy, 3, "人才", talent), "post")
    add_ref(policy, 3, coder_a, node, "培养")
    add_ref(policy, 3, coder_a, node, "支持数据")

    assert _queries(client, url("reference_add", 1), selection(policy, 3, "数据共享", talent), "post") == first


def test_the_picker_carries_each_nodes_definition_escaped(client, policy, coder_a, node, talent):
    services.update_node(actor=None, node=talent, description='Training "talent" <b>& experts</b>')
    client.force_login(coder_a)

    page = client.get(url("policy_detail", 1)).content.decode()

    option = re.search(rf'<div role="option" id="pick-{talent.pk}"[^>]*>', page).group(0)
    assert 'title="Training &quot;talent&quot; &lt;b&gt;&amp; experts&lt;/b&gt;"' in option
    assert "title=" not in re.search(rf'<div role="option" id="pick-{node.pk}"[^>]*>', page).group(0)


def test_codebook_css_gives_each_node_its_colour_to_members_only(client, policy, coder_a, outsider, node, talent):
    services.update_node(actor=None, node=talent, colour="#123abc")
    client.force_login(coder_a)
    page = client.get(url("policy_detail", 1)).content.decode()
    linked = re.search(r'href="(/projects/study/codebook.css\?v=\w+)"', page)

    css = client.get(linked.group(1))

    assert css["Content-Type"].startswith("text/css")
    assert css["Cache-Control"] == "private, max-age=31536000, immutable"
    assert css.content.decode().splitlines() == [f".n{node.pk}{{--hl:#ffe08a}}", f".n{talent.pk}{{--hl:#123abc}}"]
    services.update_node(actor=None, node=talent, colour="#654321")
    assert client.get(linked.group(1)).get("Cache-Control") is None  # an old version is not cached for good
    assert linked.group(1) not in client.get(url("policy_detail", 1)).content.decode()
    client.force_login(outsider)
    assert client.get(reverse("coding:codebook_css", args=["study"])).status_code == 404
