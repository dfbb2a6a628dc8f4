"""Project-level pages: the project list, a project's home, its settings and history (the audit
trail), and the health check."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connection, transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from coding import access, history, services
from coding.forms import HistoryFilterForm, ProjectForm, ProjectSettingsForm
from coding.models import REVIEW_ROLES, DoneMark, Membership, Policy, Role

POLICIES_PER_PAGE = 100
EVENTS_PER_PAGE = 50
ADMIN = {Role.ADMIN}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness with a real database round trip, for load balancers and `make run`."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any database failure means "not healthy", with the reason
        return JsonResponse({"status": "error", "database": f"{type(exc).__name__}: {exc}".strip()}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = access.projects_for_user(request.user).annotate(policy_count=Count("policies", distinct=True))
    roles = dict(Membership.objects.filter(user=request.user).values_list("project_id", "role"))
    rows = [(project, Role.ADMIN if request.user.is_superuser else roles.get(project.pk)) for project in projects]
    return TemplateResponse(request, "coding/project_list.html", {"rows": rows})


@login_required
def project_create(request: HttpRequest) -> HttpResponse:
    if not request.user.is_superuser:
        raise PermissionDenied("Only site administrators create projects.")
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                project = services.create_project(actor=request.user, **form.cleaned_data)
                services.set_membership(actor=request.user, project=project, user=request.user, role=Role.ADMIN)
        except ValidationError as exc:
            form.add_error(None, exc)  # a dict of field errors lands on its fields
        else:
            messages.success(request, f"Project {project.name} created; you are its admin.")
            return redirect("coding:project_home", slug=project.slug)
    return TemplateResponse(request, "coding/project_create.html", {"form": form})


@login_required
def project_home(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug)
    project = acc.project
    # Coders coding blind see their own progress only; reviewers see every coder's.
    coders = (
        Membership.objects.filter(project=project, role=Role.CODER).select_related("user").order_by("user__username")
    )
    if not acc.can_review:
        coders = coders.filter(user=request.user)
    coders = list(coders)
    coder_ids = [m.user_id for m in coders]
    policies = (
        Policy.objects.for_project(project)
        .defer("text")
        .annotate(clause_count=Count("clauses", distinct=True))
        .order_by("number")
    )
    page = Paginator(policies, POLICIES_PER_PAGE).get_page(request.GET.get("page"))
    on_page = [p.pk for p in page.object_list]
    done = set(
        DoneMark.objects.filter(policy_id__in=on_page, coder_id__in=coder_ids).values_list("policy_id", "coder_id")
    )
    done_counts = dict(
        DoneMark.objects.filter(policy__project=project, coder_id__in=coder_ids)
        .values("coder_id")
        .annotate(n=Count("id"))
        .values_list("coder_id", "n")
    )
    totals = Policy.objects.for_project(project).aggregate(
        policies=Count("id"), with_text=Count("id", filter=~Q(text=""))
    )
    rows = [(policy, [(policy.pk, m.user_id) in done for m in coders]) for policy in page.object_list]
    progress = [(m.user, done_counts.get(m.user_id, 0)) for m in coders]
    context = {
        "access": acc,
        "project": project,
        "coders": coders,
        "rows": rows,
        "page": page,
        "progress": progress,
        "totals": totals,
    }
    return TemplateResponse(request, "coding/project_home.html", context)


BLIND_CHANGED = {
    False: "Blind coding is now off: coders see every coder's references and the consensus layer, on policy "
    "pages, node pages, dashboards and exports. Coding done while they can see each other's may agree "
    "more than independent coding would.",
    True: "Blind coding is now on: each coder sees only their own references again (supervisors and admins "
    "still see every layer).",
}


@login_required
def project_settings(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
    project = acc.project
    form = ProjectSettingsForm(request.POST if request.method == "POST" else None, project=project)
    if request.method == "POST" and form.is_valid():
        changes = form.changes()
        if not changes:
            messages.info(request, "Nothing changed.")
            return redirect("coding:project_settings", slug=slug)
        try:
            services.update_project(actor=request.user, project=project, **changes)
        except ValidationError as exc:
            project.refresh_from_db()
            form.add_error(None, exc)
        else:
            messages.success(request, "Settings saved.")
            if "blind_coding" in changes:
                messages.warning(request, BLIND_CHANGED[project.blind_coding])
            return redirect("coding:project_settings", slug=slug)
    context = {"access": acc, "project": project, "form": form}
    return TemplateResponse(request, "coding/project_settings.html", context)


@login_required
def project_history(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
    form = HistoryFilterForm(request.GET)
    context = {
        "access": acc,
        "project": acc.project,
        "form": form,
        "actions": [*history.AREAS, *history.ACTIONS],
        # Evaluated only by the whole page (the filter's suggestions), not by its htmx redraws.
        "usernames": Membership.objects.filter(project=acc.project)
        .order_by("user__username")
        .values_list("user__username", flat=True),
    }
    if form.is_valid():
        events = history.filter_events(history.project_events(acc.project), acc.project, **form.cleaned_data)
        page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
        context |= {"page": page, "rows": history.describe(acc.project, page.object_list)}
    if request.htmx:
        # htmx swaps only a 2xx answer: the filter's message replaces the list in place.
        return TemplateResponse(request, "coding/project_history.html#history-list", context)
    return TemplateResponse(request, "coding/project_history.html", context, status=200 if form.is_valid() else 400)
