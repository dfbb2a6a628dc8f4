"""The coders' workbench in real Chromium against a live server: the issue's acceptance
tests (coding with mouse and keyboard, blind coding, edit / delete / undo, two coders at
once, failed saves kept for retry, conflicts shown)."""

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from coding import services
from coding.importing import clean_text
from coding.models import Clause, Event, Node, Policy, Reference, Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIXTURES = Path(settings.BASE_DIR) / "fixtures"
SLUG = "smart-city"
ASTRAL_TEXT = clean_text(
    "智慧城市试点办法\r\n"
    "第一条　为推进𠀀智慧城市试点，制定本办法。\r\n"
    "第二条　市人民政府应当加强人才培养，𠀀支持数据共享。\r\n"
    "县级人民政府𠀀鼓励企业参与。\r\n"
)


@pytest.fixture
def study(db):
    """The demo study, trimmed for speed: its users, its codebook and its policy 1."""
    users = {}
    for name, role in [("admin", Role.ADMIN), ("coder1", Role.CODER), ("coder2", Role.CODER), ("supervisor", None)]:
        user = get_user_model().objects.create_user(name, password=f"{name}-demo")
        users[name] = (user, role or Role.SUPERVISOR)
    admin = users["admin"][0]
    project = services.create_project(actor=admin, slug=SLUG, name="Smart-city policy tools (demo)")
    for user, role in users.values():
        services.set_membership(actor=admin, project=project, user=user, role=role)

    def add(entries, parent):
        for entry in entries:
            node = services.add_node(
                actor=admin,
                project=project,
                parent=parent,
                name=entry["name"],
                colour=entry["colour"],
                shortcut=entry.get("shortcut") or "",
                description=entry.get("description") or "",
            )
            add(entry.get("children") or [], node)

    add(json.loads((FIXTURES / "demo_codebook.json").read_text(encoding="utf-8")), None)
    entry = json.loads((FIXTURES / "demo_policies.json").read_text(encoding="utf-8"))[0]
    services.create_policy(
        actor=admin, project=project, number=1, title=entry["title"], text=(FIXTURES / entry["file"]).read_text()
    )
    services.create_policy(actor=admin, project=project, number=2, title="智慧城市试点办法", text=ASTRAL_TEXT)
    return {name: user for name, (user, _) in users.items()} | {"project": project}


def log_in(context, user, url: str) -> None:
    """Start a session for ``user`` without the login form (the first test uses the form)."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": url}])


@pytest.fixture
def open_policy(browser, live_server):
    """Open a policy's workbench as a user, each in a browser context of its own. At the end
    the pages are left to finish their requests (the side panel refreshes after a save)
    before the database is emptied under them."""
    pages = []

    def open_(user, number=1):
        context = browser.new_context(base_url=live_server.url, locale="en-GB", viewport={"width": 1400, "height": 900})
        log_in(context, user, live_server.url)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"/projects/{SLUG}/policies/{number}/")
        page.wait_for_selector("#workbench[data-ready=true]")
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.wait_for_load_state("networkidle")
        page.context.close()


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


POINTS = """([id, start, end]) => {
  const el = document.getElementById(id);
  el.scrollIntoView({block: "center"});
  function at(offset, before) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      if (before ? offset < node.data.length : offset <= node.data.length) return [node, offset];
      offset -= node.data.length;
    }
  }
  const first = document.createRange(), last = document.createRange();
  const [a, ao] = at(start, true), [b, bo] = at(end, false);
  first.setStart(a, ao); first.setEnd(a, ao + 1);
  last.setStart(b, bo - 1); last.setEnd(b, bo);
  const p = first.getClientRects()[0], q = last.getClientRects()[0];
  return [p.left + 1, p.top + p.height / 2, q.right - 1, q.top + q.height / 2];
}"""


def select(page, label: str, passage: str, to_label: str | None = None, to_passage: str = "") -> None:
    """Drag the mouse over ``passage`` in clause ``label``, as a coder does (or from the
    start of ``passage`` to the end of ``to_passage`` in clause ``to_label``)."""
    find = "([id, p]) => document.getElementById(id).textContent.indexOf(p)"
    start = page.evaluate(find, [f"text-{label}", passage])
    assert start >= 0, passage
    x1, y1, x2, y2 = page.evaluate(POINTS, [f"text-{label}", start, start + utf16(passage)])
    if to_label:
        end = page.evaluate(find, [f"text-{to_label}", to_passage]) + utf16(to_passage)
        _, _, x2, y2 = page.evaluate(POINTS, [f"text-{to_label}", end - 1, end])
    page.mouse.move(x1, y1)
    page.mouse.down()
    page.mouse.move((x1 + x2) / 2, (y1 + y2) / 2)
    page.mouse.move(x2, y2)
    page.mouse.up()
    selected = page.evaluate("getSelection().toString()")
    assert selected.startswith(passage) and selected.endswith(to_passage or passage), selected
    page.wait_for_selector("#node-picker:not([hidden])")


def panel_entries(page) -> list[str]:
    """The side panel's references, once it has loaded them."""
    page.locator("#panel-refs h2").wait_for()
    return page.locator("#panel-refs .ref-entry").all_inner_texts()


def pick(page, path: str) -> None:
    page.locator("#node-picker .picker-tree").get_by_role("option", name=path, exact=True).click()


def wait_for_mark(page, label: str, text: str):
    mark = page.locator(f"#text-{label} mark", has_text=text)
    mark.first.wait_for()
    return mark


def node(path: str) -> Node:
    *_, name = path.split(" › ")
    candidates = [n for n in Node.objects.filter(name=name) if _path(n) == path]
    assert len(candidates) == 1
    return candidates[0]


def _path(n: Node) -> str:
    return f"{_path(n.parent)} › {n.name}" if n.parent_id else n.name


def code_in_db(user, number: int, clause_number: int, passage: str, path: str) -> Reference:
    policy = Policy.objects.get(number=number)
    clause = Clause.objects.get(policy=policy, number=clause_number)
    start = policy.text.index(passage, clause.start)
    return services.add_reference(
        actor=user, clause=clause, node=node(path), coder=user, start=start, end=start + len(passage)
    )


# --- acceptance ------------------------------------------------------------------------------


def test_coder1_codes_a_passage_of_clause_3_as_talent_without_a_reload(page, study):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("coder1")
    page.get_by_label("Password").fill("coder1-demo")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"/projects/{SLUG}/policies/1/")
    page.wait_for_selector("#workbench[data-ready=true]")
    page.evaluate("window.notReloaded = true")

    select(page, "1-3", "统筹规划、资源整合")
    pick(page, "Supply-based › Talent")

    mark = wait_for_mark(page, "1-3", "统筹规划、资源整合")
    panel = page.locator("#side-panel")
    panel.get_by_text("Supply-based › Talent").wait_for()
    assert panel.locator(".ref-entry .label").all_inner_texts() == ["1-3"]
    assert page.evaluate("window.notReloaded") is True
    reference = Reference.objects.get()
    assert (reference.text, reference.coder.username, reference.clause.number) == ("统筹规划、资源整合", "coder1", 3)
    assert reference.node == node("Supply-based › Talent")
    assert Event.objects.filter(target_type="reference", target_id=reference.pk).count() == 1
    assert mark.first.get_attribute("data-refs") == str(reference.pk)

    page.reload()
    assert page.locator("#text-1-3 mark").inner_text() == "统筹规划、资源整合"
    assert panel_entries(page) == ["1-3 统筹规划、资源整合"]
    page.wait_for_load_state("networkidle")


def test_passage_after_an_astral_character_and_a_crlf_line_break_is_stored_as_selected(open_policy, study):
    page = open_policy(study["coder1"], number=2)

    select(page, "2-2", "鼓励企业")  # second line of the clause: after 𠀀 and a CRLF-origin break
    pick(page, "Supply-based › Talent")
    wait_for_mark(page, "2-2", "鼓励企业")
    select(page, "2-2", "𠀀支持数据")  # starting with the astral character itself
    pick(page, "Supply-based › Information Support")
    wait_for_mark(page, "2-2", "支持数据")

    stored = {r.text for r in Reference.objects.all()}
    assert stored == {"鼓励企业", "𠀀支持数据"}
    for reference in Reference.objects.all():
        assert reference.policy.text[reference.start : reference.end] == reference.text
    page.reload()
    assert sorted(page.locator("#text-2-2 mark").all_inner_texts()) == ["鼓励企业", "𠀀支持数据"]

    # A selection across two clauses: one reference in each, the text between them not coded.
    select(page, "2-1", "制定本办法。", "2-2", "第二条")
    pick(page, "Supply-based › Talent")
    wait_for_mark(page, "2-1", "制定本办法。")
    assert {(r.clause.number, r.text) for r in Reference.objects.filter(clause__number__in=[1, 2])} >= {
        (1, "制定本办法。"),
        (2, "第二条"),
    }

    # A text stored with CR characters anyway: the browser's text still equals the stored one.
    raw = "第一条　甲。\r\n乙𠀀丙。\r\n"
    policy = Policy.objects.create(project=study["project"], number=3, title="raw", text=raw)
    Clause.objects.create(policy=policy, number=1, start=0, end=len(raw) - 2)
    page.goto(f"/projects/{SLUG}/policies/3/")
    assert page.evaluate("document.getElementById('text-3-1').textContent") == raw[:-2]


def test_blind_coder2_sees_nothing_of_coder1_and_the_supervisor_sees_both_by_coder(open_policy, study):
    ones = code_in_db(study["coder1"], 1, 3, "统筹规划", "Supply-based › Talent")
    twos = code_in_db(study["coder2"], 1, 3, "资源整合", "Supply-based › Talent")

    page = open_policy(study["coder2"])
    assert page.locator("mark[data-refs]").count() == 1
    assert page.locator(f'mark[data-refs~="{ones.pk}"]').count() == 0
    assert panel_entries(page) == ["1-3 资源整合"]
    leaks = [
        f"/projects/{SLUG}/policies/1/clauses/3/",
        f"/projects/{SLUG}/policies/1/panel/",
        f"/projects/{SLUG}/policies/1/references/?id={ones.pk}",
        f"/projects/{SLUG}/nodes/{ones.node_id}/?coder=coder1",
    ]
    for address in leaks:
        html = page.request.get(address, headers={"HX-Request": "true"}).text()
        assert f"ref-{ones.pk}" not in html and f'"{ones.pk}"' not in html and "coder1" not in html, address
    assert "统筹规划" not in page.request.get(leaks[1], headers={"HX-Request": "true"}).text()  # no snippet
    assert page.request.get(leaks[2], headers={"HX-Request": "true"}).status == 404
    page.goto(f"/projects/{SLUG}/nodes/{ones.node_id}/")
    assert page.locator(".node-ref .kwic mark").all_inner_texts() == ["资源整合"]

    page = open_policy(study["supervisor"])
    assert page.locator("#text-1-3 mark").count() >= 2
    shown = {int(i) for m in page.locator("mark[data-refs]").all() for i in m.get_attribute("data-refs").split()}
    assert shown == {ones.pk, twos.pk}
    page.get_by_label("Show references of").select_option("coder1")
    page.get_by_role("button", name="Show").click()
    page.wait_for_selector("#workbench[data-ready=true]")
    assert page.locator("mark[data-refs]").all_inner_texts() == ["统筹规划"]
    assert panel_entries(page) == ["1-3 统筹规划"]
    page.goto(f"/projects/{SLUG}/nodes/{ones.node_id}/?coder=coder2")
    assert page.locator(".node-ref .kwic mark").all_inner_texts() == ["资源整合"]


def test_change_node_edit_memo_delete_undo_and_conflicts(open_policy, study):
    reference = code_in_db(study["coder1"], 1, 3, "统筹规划", "Supply-based › Talent")
    page = open_policy(study["coder1"])
    card = page.locator(f"#card-{reference.pk}")

    page.locator(f'mark[data-refs="{reference.pk}"]').click()
    card.get_by_label("Memo").fill("planning, not talent")
    card.get_by_role("button", name="Save memo").click()
    card.locator(".saved").wait_for()
    card.get_by_role("button", name="Change node…").click()
    page.keyboard.type("target plan")
    page.keyboard.press("Enter")
    card.get_by_text("Environmental-based › Target Planning").wait_for()

    reference.refresh_from_db()
    assert (reference.memo, reference.node, reference.version) == (
        "planning, not talent",
        node("Environmental-based › Target Planning"),
        3,
    )
    colour = node("Environmental-based › Target Planning").colour  # e.g. #d3f0c9, drawn as rgb(211, 240, 201)
    drawn = page.locator(f'mark[data-refs="{reference.pk}"]').evaluate("m => getComputedStyle(m).backgroundColor")
    assert drawn == "rgb({}, {}, {})".format(*(int(colour[i : i + 2], 16) for i in (1, 3, 5)))

    card.get_by_role("button", name="Delete").click()
    undo = page.locator("#wb-toast").get_by_role("button", name="Undo")
    undo.wait_for()
    assert page.locator(f'mark[data-refs~="{reference.pk}"]').count() == 0
    assert not Reference.objects.exists()
    assert page.evaluate("document.activeElement.textContent") == "Undo"  # keyboard users land on it
    undo.click()
    page.locator(f'mark[data-refs="{reference.pk}"]').wait_for()
    page.locator("#side-panel .ref-entry").first.wait_for()

    restored = Reference.objects.get()
    assert (restored.pk, restored.memo) == (reference.pk, "planning, not talent")
    actions = list(
        Event.objects.filter(target_type="reference", target_id=reference.pk)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "reference.create",
        "reference.update",
        "reference.update",
        "reference.delete",
        "reference.restore",
    ]

    # Meanwhile another tab changes it: saving this one's memo is a conflict, not an overwrite.
    page.locator(f'mark[data-refs="{reference.pk}"]').click()
    card.get_by_label("Memo").fill("mine")
    services.update_reference(actor=study["coder1"], reference=restored, version=restored.version, memo="other tab")
    card.get_by_role("button", name="Save memo").click()
    card.locator(".conflict").wait_for()
    assert "changed elsewhere" in card.locator(".conflict").inner_text()
    assert card.get_by_label("Memo").input_value() == "other tab"
    assert "mine" in card.locator(".lost-memo").inner_text()
    assert Reference.objects.get().memo == "other tab"


def test_keyboard_only_codes_a_whole_clause_and_a_passage(open_policy, study):
    page = open_policy(study["coder1"])

    for _ in range(60):  # Tab through the page to clause 1-2's label, as a keyboard user does
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "code-1-2":
            break
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Code whole clause 1-2"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "picker-filter"
    page.keyboard.type("infra")
    # The highlighted node's definition from the codebook is shown while the coder decides.
    infrastructure = Node.objects.get(name="Infrastructure").description
    assert infrastructure and page.locator("#picker-desc").inner_text() == infrastructure
    page.keyboard.press("Enter")
    wait_for_mark(page, "1-2", "第二条")

    page.keyboard.press("Tab")  # from the label to the clause's text
    assert page.evaluate("document.activeElement.id") == "text-1-2"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "text-1-3"
    for _ in range(3):
        page.keyboard.press("Shift+ArrowRight")
    assert page.evaluate("getSelection().toString()") == "第三条"
    page.keyboard.press("t")  # Talent's own shortcut
    wait_for_mark(page, "1-3", "第三条")

    page.keyboard.press("Tab")  # on to clause 1-4's label; recently used nodes come first
    assert page.evaluate("document.activeElement.id") == "code-1-4"
    page.keyboard.press("Enter")
    assert page.locator("#picker-list [aria-selected=true]").get_attribute("aria-label") == "Supply-based › Talent"
    page.keyboard.press("2")  # the second recently used: Infrastructure
    wait_for_mark(page, "1-4", "第四条")

    coded = {(r.clause.number, r.node.name, r.start == r.clause.start) for r in Reference.objects.all()}
    assert coded == {(2, "Infrastructure", True), (3, "Talent", True), (4, "Infrastructure", True)}
    whole = Reference.objects.get(clause__number=2)
    assert (whole.start, whole.end) == (whole.clause.start, whole.clause.end)
    assert Reference.objects.get(clause__number=3).text == "第三条"


def test_two_coders_and_two_tabs_coding_one_clause_at_once_lose_and_duplicate_nothing(open_policy, study):
    tab_a = open_policy(study["coder1"])
    tab_b = open_policy(study["coder1"])
    other = open_policy(study["coder2"])
    for page in (tab_a, tab_b, other):
        select(page, "1-4", "统筹全市")

    # The three saves are all sent before any answers; coder1's two tabs send the same one.
    for page in (tab_a, tab_b, other):
        tree = page.locator("#node-picker .picker-tree")
        tree.get_by_role("option", name="Supply-based › Talent", exact=True).dispatch_event("click")
    for page in (tab_a, tab_b, other):
        wait_for_mark(page, "1-4", "统筹全市")
    select(tab_b, "1-4", "协调推进机制")
    pick(tab_b, "Supply-based › Infrastructure")
    wait_for_mark(tab_b, "1-4", "协调推进机制")

    stored = [(r.coder.username, r.text, r.node.name) for r in Reference.objects.all()]
    assert len(stored) == 3 and set(stored) == {
        ("coder1", "统筹全市", "Talent"),
        ("coder1", "协调推进机制", "Infrastructure"),
        ("coder2", "统筹全市", "Talent"),
    }
    assert Event.objects.filter(action="reference.create").count() == 3
    assert other.locator("#text-1-4 mark").all_inner_texts() == ["统筹全市"]  # coder2 still sees only theirs


def test_failed_saves_say_why_keep_the_selection_and_succeed_on_retry(open_policy, live_server, study):
    page = open_policy(study["coder1"])
    alert = page.locator("#wb-alert")
    add_url = f"**/projects/{SLUG}/policies/1/references/add/"

    page.route(add_url, lambda route: route.fulfill(status=500, body="Internal Server Error"))
    select(page, "1-3", "统筹规划")
    pick(page, "Supply-based › Talent")
    alert.get_by_text("Not saved").wait_for()
    assert (
        "500" in alert.inner_text()
        and "统筹规划" in alert.inner_text()
        and "Supply-based › Talent" in alert.inner_text()
    )
    assert page.evaluate("CSS.highlights.get('pc-failed').size") == 1  # the selection is still shown
    assert not Reference.objects.exists()

    page.unroute(add_url)
    page.route(add_url, lambda route: route.abort("connectionrefused"))
    alert.get_by_role("button", name="Retry").click()
    alert.get_by_text("could not be reached").wait_for()

    page.unroute(add_url)
    page.context.clear_cookies(name=settings.SESSION_COOKIE_NAME)  # the session expired meanwhile
    alert.get_by_role("button", name="Retry").click()
    alert.get_by_text("session has expired").wait_for()
    assert not Reference.objects.exists()

    log_in(page.context, study["coder1"], live_server.url)
    alert.get_by_role("button", name="Retry").click()
    wait_for_mark(page, "1-3", "统筹规划")
    alert.wait_for(state="hidden")
    assert [r.text for r in Reference.objects.all()] == ["统筹规划"]
    assert not page.evaluate("CSS.highlights.has('pc-failed')")
