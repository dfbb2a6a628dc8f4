"""A policy's page: its metadata and its clauses with their labels ``N-M``."""

from django.contrib.auth.decorators import login_required
from django.db.models import Max, Min, Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from coding import access
from coding.models import Clause, Policy


@login_required
def policy_detail(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug)
    policy = access.get_policy(acc, number)
    clauses = [
        {"clause": clause, "label": clause.label_for(policy), "text": clause.text_of(policy)}
        for clause in Clause.objects.filter(policy=policy).order_by("start")
    ]
    neighbours = Policy.objects.for_project(acc.project).aggregate(
        previous=Max("number", filter=Q(number__lt=number)), next=Min("number", filter=Q(number__gt=number))
    )
    context = {
        "access": acc,
        "project": acc.project,
        "policy": policy,
        "clauses": clauses,
        "previous": neighbours["previous"],
        "next": neighbours["next"],
    }
    return TemplateResponse(request, "coding/policy_detail.html", context)
