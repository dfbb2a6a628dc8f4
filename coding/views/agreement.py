"""The supervisors' agreement page: figures per node, overall, per coder pair and per policy;
the drill-down into the clauses behind each figure; adjudication into the consensus layer;
and CSV/XLSX downloads of every table. Supervisors and admins only."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from coding import access, agreement_data, services
from coding.agreement_data import CONSENSUS, Selection
from coding.models import REVIEW_ROLES, Adjudication, Clause, Project

UNITS_PER_PAGE = 20
POLICIES_PER_PAGE = 50
SELECTION_FIELDS = ("level", "unit", "policies", "jurisdiction", "potency_level")


def _parse(project: Project, data: QueryDict) -> tuple[Selection | None, list[str], list[str]]:
    """The selection in ``data`` (GET or POST), the coders asked for, and any errors."""
    coders = data.getlist("coders")
    asked = agreement_data.split_coders(coders) if coders else agreement_data.default_coders(project)
    try:
        selection = agreement_data.parse_selection(
            project, coders=asked, **{name: data.get(name, "") for name in SELECTION_FIELDS}
        )
    except ValidationError as exc:
        return None, asked, exc.messages
    return selection, asked, []


def _query(selection: Selection, **extra) -> str:
    return urlencode(selection.params() | {k: v for k, v in extra.items() if v not in (None, "")})


def _int(data: QueryDict, name: str, *, required: bool = False) -> int | None:
    raw = data.get(name, "")
    if raw == "" and not required:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a whole number, got {raw!r}.") from None


@login_required
def agreement(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
    selection, asked, errors = _parse(acc.project, request.GET)
    report = agreement_data.build_report(acc.project, selection) if selection else None
    levels = []
    if report:
        for level in report.levels:
            page = Paginator(level.policies, POLICIES_PER_PAGE).get_page(request.GET.get("ppage"))
            levels.append({"report": level, "policies": page})
    context = {
        "access": acc,
        "project": acc.project,
        "options": agreement_data.selection_options(acc.project),
        "asked": asked,
        "form": request.GET if request.GET else QueryDict(),
        "selection": selection,
        "report": report,
        "levels": levels,
        "errors": errors,
        "query": _query(selection) if selection else "",
        "tables": agreement_data.TABLES,
        "consensus": CONSENSUS,
        # Reversed once: the tables link every row to its drill-down.
        "drill_url": reverse("coding:agreement_disagreements", args=[slug]),
    }
    template = "coding/agreement.html#agreement-report" if request.htmx else "coding/agreement.html"
    return TemplateResponse(request, template, context)


def _drilldown_filters(request_data: QueryDict, selection: Selection, dataset: agreement_data.Dataset) -> dict:
    """The drill-down's filters from the query string; Http404 for a node, policy or pair that
    is not part of this comparison, ValidationError (a 400) for malformed input."""
    try:
        return agreement_data.drilldown_filters(
            selection,
            dataset,
            at=request_data.get("at"),
            node=request_data.get("node"),
            policy=request_data.get("policy"),
            pair=request_data.get("pair", ""),
        )
    except agreement_data.NotCompared as exc:
        raise Http404(" ".join(exc.messages)) from None


@login_required
def disagreements(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
    selection, _, errors = _parse(acc.project, request.GET)
    context = {"access": acc, "project": acc.project, "selection": selection, "errors": errors}
    if selection:
        dataset = agreement_data.load_dataset(acc.project, selection)
        try:
            filters = _drilldown_filters(request.GET, selection, dataset)
        except ValidationError as exc:
            return HttpResponseBadRequest(" ".join(exc.messages))
        data = filters["data"]
        rows = data.disagreement_units(column=filters["column"], policy_pos=filters["policy_pos"], pair=filters["pair"])
        resolved = int(data.resolved[rows[:, 0], rows[:, 1]].sum()) if len(rows) else 0
        page = Paginator(rows, UNITS_PER_PAGE).get_page(request.GET.get("page"))
        units = [
            (int(dataset.clauses["clause_id"].iloc[unit]), data.columns[column]) for unit, column in page.object_list
        ]
        filter_params = {
            "at": filters["at"],
            "node": filters.get("node"),
            "policy": filters.get("policy"),
            "pair": filters.get("pair_text"),
        }
        context |= {
            "at": filters["at"],
            "level_name": agreement_data.LEVEL_NAMES[filters["at"]],
            "title": ", ".join(filters["title"]) or "all nodes",
            "units": agreement_data.describe_units(acc.project, selection, dataset.codebook, filters["at"], units),
            "page": page,
            "total": len(rows),
            "resolved": resolved,
            "query": _query(selection),
            "filter_query": _query(selection, **filter_params),
        }
    template = (
        "coding/agreement_disagreements.html#disagreement-list"
        if request.htmx
        else "coding/agreement_disagreements.html"
    )
    return TemplateResponse(request, template, context)


@require_POST
@login_required
def adjudicate(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
    selection, _, errors = _parse(acc.project, request.POST)
    if errors:
        return HttpResponseBadRequest(" ".join(errors))
    at = request.POST.get("at", "")
    if at not in ("sub", "tree"):
        return HttpResponseBadRequest("Say at which level (sub or tree) this disagreement was decided.")
    try:
        number = _int(request.POST, "policy", required=True)
        clause_number = _int(request.POST, "clause", required=True)
        node = access.get_node(acc, _int(request.POST, "node", required=True))
    except ValidationError as exc:
        return HttpResponseBadRequest(" ".join(exc.messages))
    policy = access.get_policy(acc, number)
    clause = get_object_or_404(Clause.objects.select_related("policy__project"), policy=policy, number=clause_number)
    users = get_user_model().objects.in_bulk([layer.user_id for layer in selection.coders])
    coders = [users[layer.user_id] for layer in selection.coders]
    decision = request.POST.get("decision", "")
    scope = agreement_data.SCOPES[at]
    error = ""
    try:
        if decision == Adjudication.Decision.ANEW:
            services.code_consensus_anew(
                actor=request.user,
                clause=clause,
                node=node,
                scope=scope,
                code_node=access.get_node(acc, _int(request.POST, "code_node", required=True)),
                start=_int(request.POST, "start", required=True),
                end=_int(request.POST, "end", required=True),
                memo=request.POST.get("memo", "").strip(),
            )
        else:
            accepted = None
            if decision.startswith("accept:"):
                layer = selection.layer(decision.removeprefix("accept:"))
                if layer is None or layer.is_consensus:
                    raise ValidationError("Accept the coding of one of the compared coders.")
                decision, accepted = Adjudication.Decision.ACCEPT, users[layer.user_id]
            services.adjudicate(
                actor=request.user,
                clause=clause,
                node=node,
                scope=scope,
                decision=decision,
                coders=coders,
                accepted=accepted,
            )
    except ValidationError as exc:
        error = " ".join(exc.messages)
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"Decided {clause.label_for(policy)} {node.name}.")
        url = reverse("coding:agreement_disagreements", args=[slug])
        return redirect(f"{url}?{_query(selection, at=at, node=node.pk)}")
    codebook = agreement_data.Codebook.load(acc.project)
    context = {
        "access": acc,
        "project": acc.project,
        "selection": selection,
        "at": at,
        "query": _query(selection),
        "unit": agreement_data.describe_units(acc.project, selection, codebook, at, [(clause.pk, node.pk)])[0],
        "error": error,
    }
    return TemplateResponse(request, "coding/agreement_disagreements.html#disagreement-unit", context)


@require_POST
@login_required
def adopt(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
    selection, _, errors = _parse(acc.project, request.POST)
    if errors:
        return HttpResponseBadRequest(" ".join(errors))
    if selection.has_consensus:
        return HttpResponseBadRequest("Compare coders only: it is their agreed coding that goes into the consensus.")
    at = request.POST.get("at", "")
    if at not in selection.levels:
        return HttpResponseBadRequest(f"Level {at!r} is not part of this comparison.")
    dataset = agreement_data.load_dataset(acc.project, selection)
    data = dataset.level(at)
    clause_ids = dataset.clauses["clause_id"].to_numpy()
    units = [(int(clause_ids[unit]), data.columns[column]) for unit, column in data.agreed_units().tolist()]
    users = get_user_model().objects.in_bulk([layer.user_id for layer in selection.coders])
    coders = [users[layer.user_id] for layer in selection.coders]
    try:
        added = services.adopt_agreed_coding(
            actor=request.user, project=acc.project, units=units, scope=agreement_data.SCOPES[at], coders=coders
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"{len(units)} clause × node decisions where every coder agrees: {added} reference(s) of "
            f"{coders[0].get_username()} copied into the consensus layer "
            "(decided or already copied ones were left as they were).",
        )
    return redirect(f"{reverse('coding:agreement', args=[slug])}?{_query(selection)}")


@login_required
def export(request: HttpRequest, slug: str, table: str, fmt: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
    if fmt not in ("csv", "xlsx") or table not in (*agreement_data.TABLES, "disagreements"):
        raise Http404("Download nodes, overall, pairs, policies or disagreements as csv or xlsx.")
    selection, _, errors = _parse(acc.project, request.GET)
    if errors:
        return HttpResponseBadRequest(" ".join(errors))
    if table == "disagreements":
        dataset = agreement_data.load_dataset(acc.project, selection)
        try:
            filters = _drilldown_filters(request.GET, selection, dataset)
        except ValidationError as exc:
            return HttpResponseBadRequest(" ".join(exc.messages))
        rows = filters["data"].disagreement_units(
            column=filters["column"], policy_pos=filters["policy_pos"], pair=filters["pair"]
        )
        records = agreement_data.disagreement_records(selection, dataset, filters["at"], rows)
    else:
        records = agreement_data.build_report(acc.project, selection).records(table)
    if fmt == "csv":
        body = agreement_data.records_csv(records).encode("utf-8-sig")  # the BOM lets Excel read Chinese
        content_type = "text/csv; charset=utf-8"
    else:
        body = agreement_data.records_xlsx(records, table)
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{acc.project.slug}-agreement-{table}.{fmt}"'
    return response
