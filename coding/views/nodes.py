"""A node's references across policies (NVivo's "open node"): what the study's authors read
to write their results."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import F, Value
from django.db.models.functions import Greatest, Least, Substr
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from coding import access
from coding.forms import LayerFilterForm, NodeReferenceFilterForm
from coding.models import Membership, Node, Project, Reference, Role

REFERENCES_PER_PAGE = 100
CONTEXT_CHARS = 60
CODING_ROLES = frozenset({Role.CODER, Role.ADMIN})
DEFAULT_COLOUR = "#ffe08a"
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def safe_colour(value: str) -> str:
    """A node colour, safe to put in a style attribute."""
    return value if _COLOUR.match(value or "") else DEFAULT_COLOUR


def node_colour(node: Node) -> str:
    return safe_colour(node.colour)


@dataclass(frozen=True)
class OutlineEntry:
    node: Node
    depth: int
    path: str  # "Supply-based › Talent"
    ancestors: tuple[int, ...]


def codebook_outline(project: Project) -> list[OutlineEntry]:
    """The project's codebook in tree order (parents before children, siblings by position),
    from one query."""
    children: dict[int | None, list[Node]] = defaultdict(list)
    for node in Node.objects.for_project(project).order_by("position", "id"):
        children[node.parent_id].append(node)
    outline: list[OutlineEntry] = []
    stack = [(node, 0, node.name, ()) for node in reversed(children[None])]
    while stack:
        node, depth, path, ancestors = stack.pop()
        outline.append(OutlineEntry(node=node, depth=depth, path=path, ancestors=ancestors))
        below = (*ancestors, node.pk)
        stack.extend((child, depth + 1, f"{path} › {child.name}", below) for child in reversed(children[node.pk]))
    return outline


def project_coders(project: Project) -> list:
    """Users whose layers a reviewer can filter by: members who code (coders and admins)."""
    members = Membership.objects.filter(project=project, role__in=CODING_ROLES).select_related("user")
    return [m.user for m in members.order_by("user__username")]


def filter_layer(references, form: LayerFilterForm, coders: list):
    """Narrow ``references`` to the layer the (valid) filter form names."""
    value = form.cleaned_data.get("coder")
    if value == LayerFilterForm.CONSENSUS:
        return references.consensus_layer()
    if value:
        user = next(u for u in coders if u.get_username() == value)
        return references.by_coder(user)
    return references


def colours_version(outline: list[OutlineEntry]) -> str:
    """Changes whenever a node's colour does: the codebook.css URL carries it, so browsers
    may keep the stylesheet for good."""
    colours = ",".join(f"{e.node.pk}{node_colour(e.node)}" for e in sorted(outline, key=lambda e: e.node.pk))
    return hashlib.sha256(colours.encode()).hexdigest()[:12]


@require_GET
@login_required
def codebook_css(request: HttpRequest, slug: str) -> HttpResponse:
    """Each node's colour as a class (``.n<id>``), for the highlights of the policy page."""
    acc = access.get_project_for_user(request.user, slug)
    outline = codebook_outline(acc.project)
    css = "".join(f".n{e.node.pk}{{--hl:{node_colour(e.node)}}}\n" for e in outline)
    response = HttpResponse(css, content_type="text/css; charset=utf-8")
    if request.GET.get("v") == colours_version(outline):
        response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@login_required
def node_detail(request: HttpRequest, slug: str, node_id: int) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug)
    node = access.get_node(acc, node_id)
    outline = codebook_outline(acc.project)
    entry = next(e for e in outline if e.node.pk == node.pk)
    coders = project_coders(acc.project) if acc.sees_all_references else None
    form = NodeReferenceFilterForm(request.GET, coders=coders)
    references = Reference.objects.none()
    if form.is_valid():
        subtree = [entry.node.pk]
        if form.cleaned_data["descendants"]:
            subtree += [e.node.pk for e in outline if node.pk in e.ancestors]
        references = filter_layer(access.visible_references(acc), form, coders).filter(node_id__in=subtree)
        if form.cleaned_data["policy"]:
            references = references.filter(policy__number=form.cleaned_data["policy"])
        references = (
            references.select_related("policy", "clause", "coder")
            .only(
                "id",
                "start",
                "end",
                "text",
                "memo",
                "node_id",
                "consensus",
                "coder__username",
                "clause__number",
                "policy__number",
                "policy__title",
            )
            # The context around each passage comes from the database, so the policies'
            # full texts never travel to the web process.
            .annotate(
                context_before=Substr(
                    "policy__text", Greatest(F("start") - CONTEXT_CHARS, Value(0)) + 1, Least(F("start"), CONTEXT_CHARS)
                ),
                context_after=Substr("policy__text", F("end") + 1, CONTEXT_CHARS),
            )
            .order_by("policy__number", "start", "end", "id")
        )
    page = Paginator(references, REFERENCES_PER_PAGE).get_page(request.GET.get("page"))
    nodes_by_id = {e.node.pk: e for e in outline}
    colours = {pk: node_colour(e.node) for pk, e in nodes_by_id.items()}
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "access": acc,
        "project": acc.project,
        "entry": entry,
        "node": node,
        "ancestors": [nodes_by_id[pk] for pk in entry.ancestors],
        "children": [e for e in outline if e.ancestors[-1:] == (node.pk,)],
        "form": form,
        "page": page,
        "colour": node_colour(node),
        "rows": [(ref, nodes_by_id[ref.node_id], colours[ref.node_id]) for ref in page.object_list],
        "show_coder": acc.sees_all_references,
        "query": query.urlencode(),
    }
    return TemplateResponse(request, "coding/node_detail.html", context)
