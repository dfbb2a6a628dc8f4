"""Project-level pages: the project list, a project's home, and the health check."""

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

from coding import access, services
from coding.forms import ProjectForm
from coding.models import DoneMark, Membership, Policy, Role

POLICIES_PER_PAGE = 100


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
