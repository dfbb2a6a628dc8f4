"""The codebook page: everyone in the project reads the tree (with definitions and how often
each node is used); project admins edit it there: create, rename, describe, recolour,
reorder, move, merge, delete (only unused nodes), and import or export it as JSON or CSV.

Edits are name-dispatched POSTs to the page itself (``action=...``); without htmx they
redirect back, with htmx the editor fragment is swapped in place."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from coding import access, codebook_io, services
from coding.forms import (
    CodebookImportForm,
    NodeCreateForm,
    NodeEditForm,
    NodeForm,
    NodeMergeForm,
    NodeMoveForm,
)
from coding.models import Node, Project


@dataclass(frozen=True)
class CodebookRow:
    node: Node
    depth: int
    path: str  # "Supply-based › Talent"
    references: int
    children: int


def codebook_rows(acc: access.ProjectAccess) -> list[CodebookRow]:
    """The codebook in tree order with each node's reference count, from one query.

    Counts are of the references the user may see: a coder coding blind counts only their
    own, so the page leaks nothing about other coders' work.
    """
    if acc.sees_all_references:
        counted = Count("references")
    else:
        counted = Count("references", filter=Q(references__coder=acc.user, references__consensus=False))
    nodes = list(Node.objects.for_project(acc.project).annotate(reference_count=counted).order_by("position", "id"))
    children: dict[int | None, list[Node]] = {}
    for node in nodes:
        children.setdefault(node.parent_id, []).append(node)
    rows: list[CodebookRow] = []
    stack = [(node, 0, node.name) for node in reversed(children.get(None, []))]
    while stack:
        node, depth, path = stack.pop()
        below = children.get(node.pk, [])
        rows.append(CodebookRow(node, depth, path, node.reference_count, len(below)))
        stack.extend((child, depth + 1, f"{path} › {child.name}") for child in reversed(below))
    return rows


def _node(acc: access.ProjectAccess, node_id: int | None) -> Node | None:
    return access.get_node(acc, node_id) if node_id is not None else None


@login_required
def codebook(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug)
    if request.method == "POST":
        if not acc.is_admin:
            raise PermissionDenied("Only project admins edit the codebook.")
        merge_source = _codebook_action(request, acc)
        if not request.htmx:
            url = reverse("coding:codebook", kwargs={"slug": slug})
            return redirect(f"{url}?merge={merge_source}#merge" if merge_source else url)
    rows = codebook_rows(acc)
    context = {"access": acc, "project": acc.project, "rows": rows}
    if acc.is_admin:
        merge_from = request.GET.get("merge")
        context |= {
            "create_form": NodeCreateForm(outline=rows),
            "move_form": NodeMoveForm(outline=rows),
            "merge_form": NodeMergeForm(
                outline=rows, initial={"node": int(merge_from)} if (merge_from or "").isdigit() else None
            ),
            "import_form": CodebookImportForm(),
        }
    template = "coding/codebook.html#codebook-editor" if request.htmx else "coding/codebook.html"
    return TemplateResponse(request, template, context)


def _codebook_action(request: HttpRequest, acc: access.ProjectAccess) -> int | None:
    """Do what the POST asks; report through messages. Returns a node to offer merging for
    when a delete was refused because the node is in use."""
    action = request.POST.get("action", "")
    rows = codebook_rows(acc)
    user = request.user
    try:
        if action == "import":
            _import(request, acc)
            return None
        form_class = {
            "create": NodeCreateForm,
            "update": NodeEditForm,
            "move": NodeMoveForm,
            "merge": NodeMergeForm,
            "up": NodeForm,
            "down": NodeForm,
            "delete": NodeForm,
        }.get(action)
        if form_class is None:
            raise ValidationError(f"Unknown action {action!r}.")
        form = form_class(request.POST, outline=rows)
        if not form.is_valid():
            raise ValidationError([f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()])
        data = form.cleaned_data
        if action == "create":
            node = services.add_node(
                actor=user,
                project=acc.project,
                name=data["name"],
                parent=_node(acc, data["parent"]),
                description=data["description"],
                colour=data["colour"],
                shortcut=data["shortcut"],
            )
            messages.success(request, f"Node {node.name!r} created.")
            return None
        node = access.get_node(acc, data["node"])
        if action == "update":
            fields = ("name", "description", "colour", "shortcut")
            changes = {name: data[name] for name in fields if getattr(node, name) != data[name]}
            if changes:
                services.update_node(actor=user, node=node, **changes)
                messages.success(request, f"Node {node.name!r} saved.")
            else:
                messages.info(request, f"Node {node.name!r}: nothing changed.")
        elif action == "move":
            services.move_node(actor=user, node=node, parent=_node(acc, data["parent"]))
            messages.success(request, f"Node {node.name!r} moved.")
        elif action in ("up", "down"):
            services.reorder_node(actor=user, node=node, offset=-1 if action == "up" else 1)
        elif action == "merge":
            target = access.get_node(acc, data["into"])
            name = node.name
            services.merge_nodes(actor=user, source=node, target=target)
            messages.success(request, f"Node {name!r} merged into {target.name!r}; its references moved there.")
        elif action == "delete":
            name = node.name
            try:
                services.delete_node(actor=user, node=node)
            except ValidationError as exc:
                for message in exc.messages:
                    messages.error(request, message)
                return node.pk
            messages.success(request, f"Node {name!r} deleted.")
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    except Http404:
        messages.error(request, "That node no longer exists; the codebook was changed meanwhile.")
    return None


def _import(request: HttpRequest, acc: access.ProjectAccess) -> None:
    form = CodebookImportForm(request.POST, request.FILES)
    if not form.is_valid():
        raise ValidationError("Choose a codebook file (.json or .csv) to import.")
    upload = form.cleaned_data["file"]
    limit = codebook_io.MAX_CODEBOOK_BYTES
    if upload.size > limit:
        raise ValidationError(f"{upload.name} is larger than a codebook can be ({limit // 1024} KB).")
    parsed = codebook_io.read_codebook(upload.name, upload.read())
    if parsed.problems:
        raise ValidationError([str(problem) for problem in parsed.problems])
    result = services.import_codebook(
        actor=request.user, project=acc.project, entries=parsed.entries, source=upload.name
    )
    messages.success(
        request,
        f"Codebook imported from {upload.name}: {result.created} node(s) created, {result.updated} updated, "
        f"{result.unchanged} unchanged.",
    )


@login_required
def codebook_export(request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug)
    try:
        body, content_type, filename = codebook_io.export_file(
            Node.objects.for_project(acc.project), fmt, _file_stem(acc.project)
        )
    except ValueError as exc:
        raise Http404(str(exc)) from None
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _file_stem(project: Project) -> str:
    return project.slug  # a slug is already safe in a header and a file name
