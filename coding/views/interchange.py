"""REFI-QDA interchange: download the project (.qdpx) or its codebook (.qdc) for NVivo,
ATLAS.ti, MAXQDA…, and import such a file into the project. Reviewers download; admins import."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models.fields.json import KT
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from coding import access, refi, services
from coding.models import REVIEW_ROLES, Event, Role
from coding.segmentation import RULES

RECENT_IMPORTS = 20
IMPORT_COLUMNS = ("file_name", "nodes_created", "policies_created", "references_created", "unplaced_total")
FILE_RULE = ""  # the rule the file names for each source, else "article"


class RefiImportForm(forms.Form):
    file = forms.FileField(help_text="A .qdpx project, a bare .qde or a .qdc codebook.")
    rule = forms.ChoiceField(
        choices=[(FILE_RULE, "As the file says, else articles (第X条), else paragraphs")] + [(r, r) for r in RULES],
        required=False,
        help_text="How the imported texts are split into clauses.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.MAX_UPLOAD_MB * 1024 * 1024
        if upload.size > limit:
            raise ValidationError(
                f"The file is {upload.size / 1024 / 1024:.1f} MB; uploads may be at most {settings.MAX_UPLOAD_MB} MB."
            )
        return upload


def _page(request: HttpRequest, acc: access.ProjectAccess, form: RefiImportForm | None, status: int = 200):
    # Only the counts the table shows: the stored report can be long.
    imports = (
        Event.objects.filter(project=acc.project, action="project.import")
        .select_related("actor")
        .defer("before", "after")
        .annotate(**{key: KT(f"after__{key}") for key in IMPORT_COLUMNS})
        .order_by("-created_at", "-id")[:RECENT_IMPORTS]
    )
    context = {
        "access": acc,
        "project": acc.project,
        "form": form,
        "imports": imports,
        "has_nodes": acc.project.nodes.exists(),
    }
    return TemplateResponse(request, "coding/interchange.html", context, status=status)


@login_required
@require_GET
def interchange(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
    return _page(request, acc, RefiImportForm() if acc.is_admin else None)


@login_required
@require_GET
def interchange_export(request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
    try:
        out, content_type, filename = refi.export_download(acc.project, fmt)
    except ValueError as exc:
        raise Http404(str(exc)) from None
    return FileResponse(out, as_attachment=True, filename=filename, content_type=content_type)


@login_required
@require_POST
def interchange_import(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles={Role.ADMIN})
    form = RefiImportForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            report = services.import_refi_upload(
                actor=request.user,
                project=acc.project,
                data=upload.read(),
                file_name=upload.name,
                rule=form.cleaned_data["rule"] or None,
            )
        except refi.RefiError as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("coding:interchange_report", slug=slug, event_id=report.event_id)
    return _page(request, acc, form, status=400)


@login_required
@require_GET
def interchange_report(request: HttpRequest, slug: str, event_id: int) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
    event = (
        Event.objects.filter(project=acc.project, action="project.import", pk=event_id).select_related("actor").first()
    )
    if event is None:
        raise Http404("No such import in this project.")
    return TemplateResponse(
        request,
        "coding/interchange_report.html",
        {"access": acc, "project": acc.project, "event": event, "report": event.after},
    )
