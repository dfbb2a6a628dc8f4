"""The coders' workbench: a policy's clauses with their references, coded in place.

The page renders each clause's text in an element whose textContent is exactly
``policy.text[clause.start:clause.end]`` (no <br>, CR kept as ``&#13;``), so the offsets the
browser counts there map one-to-one onto the stored text. The page's JavaScript sends each
end of a selection as (clause number, UTF-16 offset into that clause's text);
``forms.SelectionForm`` converts them to code points. Nothing else converts offsets.

Writes are htmx POSTs to the partial endpoints below; each answers with the clause rows it
changed (``hx-swap-oob``) and asks the side panel's list to refresh itself
(``pc:panel-stale``), which keeps a save's cost independent of how many references the
policy has; the page loads that list the same way, after the text. What a user
sees is decided by ``access.visible_references`` (blind coding), for the page and for every
partial alike.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache, wraps
from itertools import pairwise
from typing import ClassVar, NamedTuple
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Min, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST

from coding import access, services
from coding.forms import (
    DoneForm,
    LayerFilterForm,
    ReferenceEditForm,
    RestoreForm,
    SelectionForm,
    VersionForm,
)
from coding.models import ALL_ROLES, Clause, DoneMark, Policy, Reference
from coding.views.nodes import (
    CODING_ROLES,
    DEFAULT_COLOUR,
    OutlineEntry,
    codebook_outline,
    colours_version,
    filter_layer,
    node_colour,
    project_coders,
    safe_colour,
)

TEMPLATE = "coding/policy_detail.html"
SNIPPET_CHARS = 80


def login_required_or_401(view: Callable) -> Callable:
    """Like ``login_required``, but an htmx request from an expired session gets a 401 the
    page can explain, not a redirect whose login form would be taken for a saved answer."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            return _message("Your session has expired: log in again (in another tab), then retry.", 401)
        return redirect_to_login(request.get_full_path())

    return wrapper


def _message(text: str, status: int) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


def _form_message(form) -> str:
    parts = []
    for field, errors in form.errors.items():
        prefix = "" if field == "__all__" else f"{field}: "
        parts.extend(prefix + str(error) for error in errors)
    return " ".join(parts)


def _validation_message(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _triggers(response: HttpResponse, events: dict) -> HttpResponse:
    """Client events for htmx (and the page's script) to fire once the response arrives."""
    response["HX-Trigger"] = json.dumps(events)
    return response


# --- what the page draws ------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _paint(colours: tuple[str, ...]) -> str:
    """One colour, or horizontal bands of each, so overlapping references all show."""
    if len(colours) == 1:
        return colours[0]
    step = 100 / len(colours)
    bands = ",".join(f"{c} {i * step:.1f}% {(i + 1) * step:.1f}%" for i, c in enumerate(colours))
    return f"linear-gradient({bands})"


def _text(text: str) -> str:
    # The HTML parser turns a CR into LF; as a character reference it survives, so the
    # element's text stays identical to the stored text whatever its line endings.
    # (html.escape: the same five characters as Django's escape, without its lazy-string
    # wrapper, which costs more than the escaping on a densely coded page.)
    return html.escape(text).replace("\r", "&#13;")


def clause_html(
    text: str, offset: int, references: Iterable[MarkRow | Reference], colours: dict[int, str]
) -> SafeString:
    """The clause's text as HTML whose textContent is exactly ``text``.

    Each stretch covered by references is one <mark> listing them in ``data-refs`` (in
    order of start), painted in their node's colour (class ``n<node id>``) or, where
    references overlap, in bands of each one's colour, so all stay visible and clickable.
    ``offset`` is the clause's start in the policy text (references count from there).
    """
    starts: dict[int, list[MarkRow | Reference]] = defaultdict(list)
    ends: dict[int, list[MarkRow | Reference]] = defaultdict(list)
    for ref in references:
        starts[ref.start - offset].append(ref)
        ends[ref.end - offset].append(ref)
    if not starts:
        return mark_safe(_text(text))
    active: dict[int, MarkRow | Reference] = {}
    parts = []
    for a, b in pairwise(sorted({0, len(text), *starts, *ends})):
        for ref in ends.get(a, ()):
            del active[ref.pk]
        for ref in starts.get(a, ()):
            active[ref.pk] = ref
        piece = _text(text[a:b])
        if len(active) == 1:
            (ref,) = active.values()
            # The node's colour comes from its class (codebook.css): no style to parse per mark.
            parts.append(f'<mark class="n{ref.node_id}" data-refs="{ref.pk}">{piece}</mark>')
        elif active:
            ids = " ".join([str(pk) for pk in active])
            paint = _paint(tuple([colours.get(ref.node_id, DEFAULT_COLOUR) for ref in active.values()]))
            parts.append(f'<mark class="overlap" data-refs="{ids}" style="--hl:{paint}">{piece}</mark>')
        else:
            parts.append(piece)
    return mark_safe("".join(parts))


def clause_row_html(label: str, number: int, body: str, can_code: bool, oob: bool) -> SafeString:
    """One clause of the policy page: its label (a button that codes the whole clause, for
    those who code) and its text. Built here, not in the template, because a long policy
    has hundreds of them and the template engine would be most of the page's time; the
    clause-row partial prints it. ``oob`` marks it for an htmx out-of-band swap."""
    swap = ' hx-swap-oob="outerHTML"' if oob else ""
    if can_code:
        head = (
            f'<button type="button" class="clause-label" id="code-{label}" data-clause="{number}" '
            f'aria-label="Code whole clause {label}"><span class="label">{label}</span></button>'
        )
        focus = ' tabindex="0"'
    else:
        head = f'<span class="clause-label"><span class="label">{label}</span></span>'
        focus = ""
    return mark_safe(
        f'<li class="clause" id="clause-{label}" data-clause="{number}"{swap}>{head}'
        f'<div class="clause-text" id="text-{label}" data-clause="{number}" data-label="{label}"{focus}>{body}</div>'
        "</li>"
    )


class MarkRow(NamedTuple):
    """What drawing a reference in its clause needs (and no more: saves redraw a clause)."""

    pk: int
    clause_id: int
    node_id: int
    node_colour: str
    start: int
    end: int


MARK_FIELDS = ("id", "clause_id", "node_id", "node__colour", "start", "end")


@dataclass(slots=True)
class RefRow:
    """What the workbench shows of a reference: a plain row, not a model instance, since a
    densely coded policy has thousands of them on one page."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "id",
        "clause_id",
        "clause__number",
        "node_id",
        "coder_id",
        "coder__username",
        "consensus",
        "start",
        "end",
        "text",
        "memo",
        "version",
    )

    pk: int
    clause_id: int
    clause_number: int
    node_id: int
    coder_id: int | None
    coder_name: str | None
    consensus: bool
    start: int
    end: int
    text: str
    memo: str
    version: int

    @property
    def coder(self) -> str:
        return "consensus" if self.consensus else self.coder_name


def _entries_html(references: list[RefRow], policy_number: int, show_coder: bool) -> SafeString:
    """The side panel's list items for one node: built here rather than in a template loop,
    which costs ~50x more for the thousands of references of a densely coded policy."""
    parts = []
    for ref in references:
        snippet = ref.text[:SNIPPET_CHARS] + ("…" if len(ref.text) > SNIPPET_CHARS else "")
        memo = ' <span class="memo-flag" title="has a memo">✎</span>' if ref.memo else ""
        coder = f' <span class="coder">{_text(ref.coder)}</span>' if show_coder else ""
        parts.append(
            f'<li><button type="button" class="ref-entry" data-ref="{ref.pk}"><span class="label">'
            f"{policy_number}-{ref.clause_number}</span> {_text(snippet)}{memo}</button>{coder}</li>"
        )
    return mark_safe("".join(parts))


class Workbench:
    """What one request of the workbench needs: the user's standing, the policy, the
    codebook, and the references the user may see in the layer they chose."""

    def __init__(self, request: HttpRequest, slug: str, number: int, roles: Collection[str] = ALL_ROLES):
        self.request = request
        self.acc = access.get_project_for_user(request.user, slug, roles=roles)
        self.project = self.acc.project
        self.policy = access.get_policy(self.acc, number)
        self.policy.project = self.project
        self.can_code = self.acc.role in CODING_ROLES
        self.coders = project_coders(self.project) if self.acc.sees_all_references else []
        self.layer_form = None
        self.references = access.visible_references(self.acc).filter(policy=self.policy)
        self.layer_query = ""
        if self.acc.sees_all_references:
            self.layer_form = LayerFilterForm(request.GET, coders=self.coders)
            if self.layer_form.is_valid():
                self.references = filter_layer(self.references, self.layer_form, self.coders)
                if self.layer_form.cleaned_data["coder"]:
                    self.layer_query = "?" + urlencode({"coder": self.layer_form.cleaned_data["coder"]})
            else:
                self.references = self.references.none()
        self._outline: list[OutlineEntry] | None = None

    @property
    def outline(self) -> list[OutlineEntry]:
        if self._outline is None:
            self._outline = codebook_outline(self.project)
        return self._outline

    def selected_coder(self):
        form = self.layer_form
        value = form.cleaned_data.get("coder") if form is not None and form.is_valid() else ""
        if value and value != LayerFilterForm.CONSENSUS:
            return next(u for u in self.coders if u.get_username() == value)
        return None

    def reference_rows(self, **filters) -> list[RefRow]:
        rows = self.references.filter(**filters).values_list(*RefRow.FIELDS).order_by("start", "end", "id")
        return [RefRow(*row) for row in rows]

    def clause_rows(self, clauses: list[Clause], references: list[MarkRow], oob: bool = False) -> list[dict]:
        """Each clause as its label and its list item (``html``), ready to print."""
        colours = {ref.node_id: safe_colour(ref.node_colour) for ref in references}
        by_clause: dict[int, list[MarkRow]] = defaultdict(list)
        for ref in references:
            by_clause[ref.clause_id].append(ref)
        text, number = self.policy.text, self.policy.number
        rows = []
        for clause in clauses:
            label = f"{number}-{clause.number}"
            body = clause_html(text[clause.start : clause.end], clause.start, by_clause[clause.pk], colours)
            rows.append({"label": label, "html": clause_row_html(label, clause.number, body, self.can_code, oob)})
        return rows

    def changed_rows(self, clauses: Iterable[Clause]) -> list[dict]:
        """The rows of ``clauses``, for an out-of-band swap."""
        clauses = list(clauses)
        return self.clause_rows(clauses, self.marks(clause_id__in=[c.pk for c in clauses]), oob=True)

    def changed_row(self, clause_id: int) -> list[dict]:
        return self.changed_rows(Clause.objects.filter(policy=self.policy, pk=clause_id))

    def reference_groups(self, references: list[RefRow]) -> dict:
        """The side panel's list: the references by node, in codebook order, with counts."""
        by_node: dict[int, list[RefRow]] = defaultdict(list)
        for ref in references:
            by_node[ref.node_id].append(ref)
        number, show_coder = self.policy.number, self.acc.sees_all_references
        groups = [
            {
                "entry": entry,
                "colour": node_colour(entry.node),
                "count": len(by_node[entry.node.pk]),
                "entries": _entries_html(by_node[entry.node.pk], number, show_coder),
            }
            for entry in self.outline
            if entry.node.pk in by_node
        ]
        return {"groups": groups, "total": len(references)}

    def status(self) -> dict:
        """Previous and next policy, and the progress of the coder shown (the user, or the
        coder a reviewer chose): policies done out of those with text, and this one."""
        number = self.policy.number
        around = Policy.objects.for_project(self.project).aggregate(
            previous=Max("number", filter=Q(number__lt=number)),
            next=Min("number", filter=Q(number__gt=number)),
            with_text=Count("id", filter=~Q(text="")),
        )
        subject = self.selected_coder() or (self.request.user if self.can_code else None)
        progress = None
        if subject is not None:
            marks = DoneMark.objects.filter(coder=subject, policy__project=self.project).aggregate(
                done=Count("id"), this=Count("id", filter=Q(policy=self.policy))
            )
            progress = {
                "coder": subject,
                "own": subject == self.request.user,
                "done": marks["done"],
                "total": around["with_text"],
                "this_done": bool(marks["this"]),
            }
        return {"previous": around["previous"], "next": around["next"], "progress": progress}

    def marks(self, **filters) -> list[MarkRow]:
        rows = self.references.filter(**filters).values_list(*MARK_FIELDS).order_by("start", "end", "id")
        return [MarkRow(*row) for row in rows]

    def cards(self, references: list[RefRow]) -> list[dict]:
        entries = {e.node.pk: e for e in self.outline}
        return [
            {
                "ref": ref,
                "entry": entries[ref.node_id],
                "colour": node_colour(entries[ref.node_id].node),
                "label": f"{self.policy.number}-{ref.clause_number}",
                "coder": ref.coder,
                "can_change": access.may_change_reference(self.acc, ref),
            }
            for ref in references
        ]

    def context(self, **extra) -> dict:
        return {
            "access": self.acc,
            "project": self.project,
            "policy": self.policy,
            "can_code": self.can_code,
            "show_coder": self.acc.sees_all_references,
            "layer_form": self.layer_form,
            "layer_query": self.layer_query,
            **extra,
        }

    def render(self, partial: str, status: int = 200, **extra) -> TemplateResponse:
        name = f"{TEMPLATE}#{partial}" if partial else TEMPLATE
        return TemplateResponse(self.request, name, self.context(**extra), status=status)


# --- the page and its read-only partials ------------------------------------------------


@require_GET
@login_required_or_401
def policy_detail(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    wb = Workbench(request, slug, number)
    clauses = list(Clause.objects.filter(policy=wb.policy).order_by("start"))
    # The side panel's list of references arrives by its own request (policy_panel), so
    # the text and its highlights, what a coder needs first, come without waiting for it.
    return wb.render(
        "",
        rows=wb.clause_rows(clauses, wb.marks()),
        picker=[(e, node_colour(e.node)) for e in wb.outline],
        colours_version=colours_version(wb.outline),
        **wb.status(),
    )


@require_GET
@login_required_or_401
def clause_row(request: HttpRequest, slug: str, number: int, clause_number: int) -> HttpResponse:
    wb = Workbench(request, slug, number)
    clause = Clause.objects.filter(policy=wb.policy, number=clause_number).first()
    if clause is None:
        raise Http404(f"Clause {number}-{clause_number} does not exist.")
    rows = wb.clause_rows([clause], wb.marks(clause=clause))
    return wb.render("clause-row", row=rows[0])


@require_GET
@login_required_or_401
def policy_panel(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    wb = Workbench(request, slug, number)
    return wb.render("panel-refs", **wb.reference_groups(wb.reference_rows()))


@require_GET
@login_required_or_401
def reference_cards(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    wb = Workbench(request, slug, number)
    try:
        ids = [int(value) for value in request.GET.getlist("id")]
    except ValueError:
        return _message("Reference ids are whole numbers.", 400)
    references = wb.reference_rows(pk__in=ids)
    if not references:
        raise Http404("No such reference.")
    return wb.render("ref-cards", cards=wb.cards(references))


# --- writes ------------------------------------------------------------------------------


@require_POST
@login_required_or_401
def reference_add(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    wb = Workbench(request, slug, number, roles=CODING_ROLES)
    form = SelectionForm(request.POST, policy=wb.policy)
    if not form.is_valid():
        return _message(_form_message(form), 400)
    data = form.cleaned_data
    coding = {"actor": request.user, "node": data["node"], "coder": request.user, "memo": data["memo"]}
    try:
        if data["clause"] is not None:  # the common case, without looking the clauses up again
            data["clause"].policy = wb.policy
            references = [services.add_reference(clause=data["clause"], start=data["start"], end=data["end"], **coding)]
        else:
            references = services.add_references_for_selection(
                policy=wb.policy, start=data["start"], end=data["end"], **coding
            )
    except ValidationError as exc:
        return _message(_validation_message(exc), 400)
    if not request.htmx:
        return redirect("coding:policy_detail", slug, number)
    clauses = {r.clause_id: r.clause for r in references}.values()  # as the service read them
    response = wb.render("clause-rows", rows=wb.changed_rows(clauses))
    coded = {"ids": [r.pk for r in references], "node": data["node"].pk}
    return _triggers(response, {"pc:coded": coded, "pc:panel-stale": {}})


def _card_response(wb: Workbench, reference: Reference, status: int = 200, **extra) -> HttpResponse:
    rows = wb.changed_row(reference.clause_id)
    cards = wb.cards(wb.reference_rows(pk=reference.pk))
    return wb.render("card-update", status=status, cards=cards, rows=rows, **extra)


@require_POST
@login_required_or_401
def reference_edit(request: HttpRequest, slug: str, number: int, pk: int) -> HttpResponse:
    wb = Workbench(request, slug, number)
    reference = access.get_reference(wb.acc, pk, for_write=True)
    if reference.policy_id != wb.policy.pk:
        raise Http404("No such reference in this policy.")
    form = ReferenceEditForm(request.POST, project=wb.project)
    if not form.is_valid():
        return _card_response(wb, reference, 400, message=_form_message(form))
    data = form.cleaned_data
    try:
        reference = services.update_reference(
            actor=request.user, reference=reference, version=data["version"], node=data["node"], memo=data["memo"]
        )
    except services.StaleReference as exc:
        return _card_response(
            wb,
            exc.current,
            409,
            conflict=True,
            message="This reference was changed elsewhere since you opened it, so your change was not applied. "
            "Below is its current state; apply your change again if you still want it.",
            lost_memo=data["memo"] if data["memo"] not in (None, exc.current.memo) else None,
        )
    except ValidationError as exc:
        return _card_response(wb, reference, 400, message=_validation_message(exc))
    return _triggers(_card_response(wb, reference, saved=True), {"pc:panel-stale": {}})


@require_POST
@login_required_or_401
def reference_delete(request: HttpRequest, slug: str, number: int, pk: int) -> HttpResponse:
    wb = Workbench(request, slug, number)
    reference = access.get_reference(wb.acc, pk, for_write=True)
    if reference.policy_id != wb.policy.pk:
        raise Http404("No such reference in this policy.")
    form = VersionForm(request.POST)
    if not form.is_valid():
        return _message(_form_message(form), 400)
    label = f"{wb.policy.number}-{reference.clause.number}"
    node_path = next(e.path for e in wb.outline if e.node.pk == reference.node_id)
    try:
        event = services.delete_reference(actor=request.user, reference=reference, version=form.cleaned_data["version"])
    except services.StaleReference as exc:
        return _card_response(
            wb,
            exc.current,
            409,
            conflict=True,
            message="This reference was changed elsewhere since you opened it, so it was not deleted. "
            "Below is its current state; delete it again if you still want to.",
        )
    rows = wb.changed_row(reference.clause_id)
    toast = {"text": f"Deleted reference {label} at {node_path}.", "undo": event.pk if event else None}
    response = wb.render("clause-rows", rows=rows, toast=toast, oob=True)
    return _triggers(response, {"pc:deleted": {"id": pk}, "pc:panel-stale": {}})


@require_POST
@login_required_or_401
def reference_restore(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    wb = Workbench(request, slug, number)
    form = RestoreForm(request.POST)
    if not form.is_valid():
        return _message(_form_message(form), 400)
    event = access.get_reference_deletion(wb.acc, form.cleaned_data["deletion"])
    if event.before.get("policy_id") != wb.policy.pk:
        raise Http404("No such deletion in this policy.")
    try:
        reference = services.restore_reference(actor=request.user, event=event)
    except ValidationError as exc:
        return _message("The reference could not be restored: " + _validation_message(exc), 400)
    rows = wb.changed_row(reference.clause_id)
    node_path = next(e.path for e in wb.outline if e.node.pk == reference.node_id)
    toast = {"text": f"Restored reference {rows[0]['label']} at {node_path}."}
    response = wb.render("clause-rows", rows=rows, toast=toast, oob=True)
    return _triggers(response, {"pc:coded": {"ids": [reference.pk], "node": reference.node_id}, "pc:panel-stale": {}})


@require_POST
@login_required_or_401
def policy_done(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    wb = Workbench(request, slug, number, roles=CODING_ROLES)
    form = DoneForm(request.POST)
    form.is_valid()  # a boolean checkbox cannot be invalid; absent means "not done"
    if form.cleaned_data["done"]:
        services.mark_policy_done(actor=request.user, policy=wb.policy, coder=request.user)
    else:
        services.unmark_policy_done(actor=request.user, policy=wb.policy, coder=request.user)
    if not request.htmx:
        return redirect("coding:policy_detail", slug, number)
    return wb.render("panel-status", **wb.status())
