"""Setting up a study (project admins only): importing policies (upload → preview → confirm,
with progress streamed while it runs), reviewing clauses before coding starts, and members."""

from __future__ import annotations

import itertools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from coding import access, importing, services
from coding.forms import (
    ClauseForm,
    ClauseSplitForm,
    MemberAddForm,
    MemberRemoveForm,
    MemberRoleForm,
    PolicyImportForm,
    ResegmentForm,
)
from coding.models import Clause, ImportUpload, Membership, Policy, Reference, Role
from coding.segmentation import segment

ADMIN = {Role.ADMIN}
PREVIEW_ROWS = 500  # policies listed on the preview; counts always cover all of them
POLICIES_PER_PAGE = 100
IMPORT_RUN_MARKER = "<!--import-progress-->"


def _limits() -> importing.Limits:
    return importing.Limits.from_megabytes(settings.MAX_UPLOAD_MB)


def _errors(exc: ValidationError) -> list[str]:
    return list(exc.messages)


# --- policy import -------------------------------------------------------------------------


@login_required
def policy_import(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
    max_bytes = _limits().max_bytes
    form = PolicyImportForm(request.POST or None, request.FILES or None, max_bytes=max_bytes)
    context = {"access": acc, "project": acc.project, "form": form, "max_mb": settings.MAX_UPLOAD_MB}
    if request.method == "POST" and form.is_valid():
        upload, rule, update = form.cleaned_data["file"], form.cleaned_data["rule"], form.cleaned_data["update"]
        data = upload.read()
        parsed = importing.read_upload(upload.name, data, limits=_limits(), update=update)
        plan = services.plan_policy_import(project=acc.project, parsed=parsed, rule=rule, update=update)
        if not plan.problems:
            stored = services.store_import_upload(
                actor=request.user,
                project=acc.project,
                name=upload.name,
                data=data,
                rule=rule,
                update=update,
                summary=plan.summary(limit=PREVIEW_ROWS),
            )
            return redirect("coding:policy_import_preview", slug=slug, upload_id=stored.pk)
        context |= {"problems": [str(problem) for problem in plan.problems], "file_name": upload.name}
    # The stored preview can be large; the list needs only its policy count.
    context["uploads"] = (
        ImportUpload.objects.filter(project=acc.project)
        .defer("data", "summary")
        .annotate(policy_count=KT("summary__policies"))
        .select_related("uploaded_by")[:10]
    )
    return TemplateResponse(request, "coding/import_upload.html", context)


def _get_upload(acc: access.ProjectAccess, upload_id: int, *, with_data: bool = False) -> ImportUpload:
    uploads = ImportUpload.objects.filter(project=acc.project, pk=upload_id).select_related("uploaded_by")
    upload = (uploads if with_data else uploads.defer("data")).first()
    if upload is None:
        raise Http404("No such upload in this project.")
    return upload


@login_required
def policy_import_preview(request: HttpRequest, slug: str, upload_id: int) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
    upload = _get_upload(acc, upload_id)
    summary = upload.summary
    context = {
        "access": acc,
        "project": acc.project,
        "upload": upload,
        "summary": summary,
        "hidden_rows": max(0, summary.get("policies", 0) - len(summary.get("rows", []))),
    }
    return TemplateResponse(request, "coding/import_preview.html", context)


def _progress_steps(stage: str, done: int, total: int, last: dict) -> bool:
    """Whether this step is worth sending: a new stage or a new whole percent."""
    key = (stage, done * 100 // max(total, 1))
    if last.get("key") == key:
        return False
    last["key"] = key
    return True


@require_POST
@login_required
def policy_import_confirm(request: HttpRequest, slug: str, upload_id: int) -> HttpResponse:
    """Run a previewed import, streaming the page while it works: progress bars first, then
    the outcome. The import runs inside the response's generator, in one transaction, so
    nothing is kept in the process between requests and a dropped connection rolls back."""
    acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
    upload = _get_upload(acc, upload_id, with_data=True)
    if upload.status != ImportUpload.Status.PENDING:
        messages.info(request, f"{upload.name} was imported already.")
        return redirect("coding:policy_import_preview", slug=slug, upload_id=upload.pk)
    context = {"access": acc, "project": acc.project, "upload": upload, "summary": upload.summary}
    page = render_to_string("coding/import_run.html", context, request=request)
    head, tail = page.split(IMPORT_RUN_MARKER, 1)
    template = "coding/import_run.html#"

    def stream():
        yield head
        parsed = importing.read_upload(upload.name, bytes(upload.data), limits=_limits(), update=upload.update)
        steps = services.import_policies_iter(
            actor=request.user,
            project=acc.project,
            parsed=parsed,
            rule=upload.rule,
            update=upload.update,
            upload=upload,
        )
        last: dict = {}
        try:
            while True:
                try:
                    stage, done, total = next(steps)
                except StopIteration as stop:
                    result = stop.value
                    break
                if _progress_steps(stage, done, total, last):
                    step = {"stage": stage, "done": done, "total": total, "percent": done * 100 // max(total, 1)}
                    yield render_to_string(template + "import-step", {"step": step})
        except services.ImportRefused as exc:
            yield render_to_string(template + "import-refused", context | {"problems": _errors(exc)}, request=request)
        else:
            yield render_to_string(template + "import-done", context | {"result": result}, request=request)
        yield tail

    response = StreamingHttpResponse(stream(), content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # nginx would otherwise hold the progress back
    return response


# --- clause review -------------------------------------------------------------------------


def _count_of(model, **filters) -> Coalesce:
    """Per-policy row count as a subquery, so two counts do not multiply each other's joins."""
    counted = model.objects.filter(policy=OuterRef("pk"), **filters).values("policy").annotate(n=Count("pk"))
    return Coalesce(Subquery(counted.values("n"), output_field=IntegerField()), Value(0))


@login_required
def clause_review_list(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
    policies = (
        Policy.objects.for_project(acc.project)
        .defer("text", "attributes")
        .annotate(clause_count=_count_of(Clause), reference_count=_count_of(Reference))
        .order_by("number")
    )
    page = Paginator(policies, POLICIES_PER_PAGE).get_page(request.GET.get("page"))
    context = {"access": acc, "project": acc.project, "page": page}
    return TemplateResponse(request, "coding/clause_review_list.html", context)


def _clause_rows(policy: Policy) -> list[dict]:
    """Each clause with its text cut into sentences, the places a split makes sense."""
    rows = []
    for clause in Clause.objects.filter(policy=policy).order_by("start"):
        text = clause.text_of(policy)
        cuts = [span.end for span in segment(text, "sentence").clauses[:-1]]
        bounds = [0, *cuts, len(text)]
        pieces = [{"text": text[a:b], "cut": b if b < len(text) else None} for a, b in itertools.pairwise(bounds)]
        rows.append({"clause": clause, "label": clause.label_for(policy), "pieces": pieces, "length": len(text)})
    return rows


@login_required
def clause_review(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
    policy = access.get_policy(acc, number)
    if request.method == "POST":
        _clause_action(request, acc, policy)
        if not request.htmx:
            return redirect("coding:clause_review", slug=slug, number=number)
        policy.refresh_from_db()
    context = {
        "access": acc,
        "project": acc.project,
        "policy": policy,
        "clauses": _clause_rows(policy),
        "reference_count": Reference.objects.filter(policy=policy).count(),
        "resegment_form": ResegmentForm(initial={"rule": policy.segmentation_rule or "article"}),
    }
    template = "coding/clause_review.html#clause-review" if request.htmx else "coding/clause_review.html"
    return TemplateResponse(request, template, context)


def _clause_action(request: HttpRequest, acc: access.ProjectAccess, policy: Policy) -> None:
    action = request.POST.get("action")
    try:
        if action == "resegment":
            form = ResegmentForm(request.POST)
            if not form.is_valid():
                raise ValidationError("Choose a segmentation rule.")
            count, message = services.resegment_policy(
                actor=request.user, policy=policy, rule=form.cleaned_data["rule"]
            )
            messages.success(request, f"Policy {policy.number} now has {count} clauses. {message}".strip())
        elif action in ("split", "merge"):
            form = ClauseSplitForm(request.POST) if action == "split" else ClauseForm(request.POST)
            if not form.is_valid():
                raise ValidationError("Say which clause, and for a split where (a character count from its start).")
            clause = Clause.objects.filter(policy=policy, number=form.cleaned_data["clause"]).first()
            if clause is None:
                raise ValidationError(f"Clause {policy.number}-{form.cleaned_data['clause']} does not exist.")
            clause.policy = policy
            if action == "split":
                second = services.split_clause(
                    actor=request.user, clause=clause, at=clause.start + form.cleaned_data["offset"]
                )
                messages.success(
                    request, f"Clause {policy.number}-{clause.number} split; the rest is now {second.number}."
                )
            else:
                services.merge_clauses(actor=request.user, clause=clause)
                messages.success(request, f"Clause {policy.number}-{clause.number} merged with the clause after it.")
        else:
            raise ValidationError("Unknown action.")
    except ValidationError as exc:
        for message in _errors(exc):
            messages.error(request, message)


# --- members -------------------------------------------------------------------------------


@login_required
def members(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
    project = acc.project
    if request.method == "POST":
        _member_action(request, acc)
        if not request.htmx:
            return redirect("coding:members", slug=slug)
    memberships = list(Membership.objects.filter(project=project).select_related("user").order_by("user__username"))
    counts = dict(
        Reference.objects.filter(policy__project=project, consensus=False)
        .values("coder_id")
        .annotate(n=Count("pk"))
        .values_list("coder_id", "n")
    )
    member_ids = {m.user_id for m in memberships}
    former = _former_members(project, member_ids, counts)
    context = {
        "access": acc,
        "project": project,
        "rows": [(m, counts.get(m.user_id, 0)) for m in memberships],
        "former": former,
        "add_form": MemberAddForm(),
        "roles": Role.choices,
    }
    template = "coding/members.html#member-list" if request.htmx else "coding/members.html"
    return TemplateResponse(request, template, context)


def _former_members(project, member_ids: set[int], counts: dict[int, int]) -> list:
    """People who coded here and are no longer members: their references stay theirs."""
    former_ids = [user_id for user_id in counts if user_id not in member_ids]
    users = get_user_model().objects.filter(pk__in=former_ids).order_by("username") if former_ids else []
    return [(user, counts[user.pk]) for user in users]


def _member_action(request: HttpRequest, acc: access.ProjectAccess) -> None:
    action = request.POST.get("action")
    try:
        if action == "add":
            form = MemberAddForm(request.POST)
            if not form.is_valid():
                raise ValidationError("Give a username and a role.")
            membership, outcome = services.add_member(
                actor=request.user,
                project=acc.project,
                username=form.cleaned_data["username"],
                role=form.cleaned_data["role"],
            )
            name = membership.user.get_username()
            text = {
                "added": f"{name} added as {membership.role}.",
                "changed": f"{name} was a member already; their role is now {membership.role}.",
                "unchanged": f"{name} already is {membership.role}.",
            }[outcome]
            messages.success(request, text)
            return
        form = MemberRoleForm(request.POST) if action == "role" else MemberRemoveForm(request.POST)
        if action not in ("role", "remove") or not form.is_valid():
            raise ValidationError("Unknown action.")
        membership = (
            Membership.objects.filter(project=acc.project, pk=form.cleaned_data["member"])
            .select_related("user")
            .first()
        )
        if membership is None:
            raise ValidationError("That person is not a member of this project (any more).")
        name = membership.user.get_username()
        if action == "role":
            services.change_member_role(actor=request.user, membership=membership, role=form.cleaned_data["role"])
            messages.success(request, f"{name} is now {form.cleaned_data['role']}.")
        else:
            services.remove_member(actor=request.user, membership=membership)
            messages.success(request, f"{name} removed; their references stay, attributed to them.")
    except ValidationError as exc:
        for message in _errors(exc):
            messages.error(request, message)
