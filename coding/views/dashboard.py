"""Dashboards: the distribution (and the study's Table 3), crosstabs, trends over release
years, word frequencies and text search, each with its charts and CSV/XLSX downloads of
exactly the table on screen. Every member reads them; blind coding decides which layers
(``stats.resolve_layers``). Filters live in the query string, so a URL is a shareable view,
and htmx redraws the result part of the page (``#dashboard-body``) when they change."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from coding import access, agreement_data, exports, services, stats
from coding.access import ProjectAccess
from coding.forms import (
    CodeHitsForm,
    CrosstabForm,
    DashboardFilterForm,
    SearchForm,
    StopwordsForm,
    WordFrequencyForm,
)
from coding.models import REVIEW_ROLES, Policy

TABS = [
    ("dashboard", "Distribution"),
    ("dashboard_crosstab", "Crosstab"),
    ("dashboard_trend", "Trend"),
    ("dashboard_words", "Word frequency"),
    ("dashboard_search", "Text search"),
]
SEARCH_HITS_SHOWN = 500


class Dashboard:
    """What every dashboard page parses from its query string: the layers and the filters."""

    def __init__(self, request: HttpRequest, acc: ProjectAccess, *, layers: bool = True):
        self.request = request
        self.acc = acc
        self.errors: list[str] = []
        # The pickers' options cost two queries: only the full page shows them.
        self.choices = None if request.htmx else stats.filter_choices(acc.project)
        self.filter_form = DashboardFilterForm(request.GET, choices=self.choices)
        self.filters = stats.PolicyFilter()
        if self.filter_form.is_valid():
            self.filters = self.filter_form.policy_filter()
        else:
            self.errors += [e for errors in self.filter_form.errors.values() for e in errors]
        self.available = stats.available_layers(acc) if layers else []
        self.selection = None
        if layers:
            try:
                # PermissionDenied (another coder's layer under blind coding) propagates: 403.
                self.selection = stats.resolve_layers(
                    acc,
                    request.GET.getlist("layer"),
                    side_by_side=request.GET.get("mode") == "side",
                    available=self.available,
                )
            except ValidationError as exc:
                self.errors += exc.messages

    @property
    def ok(self) -> bool:
        return not self.errors

    def context(self, **extra) -> dict:
        return {
            "access": self.acc,
            "project": self.acc.project,
            "tabs": TABS,
            "filter_form": self.filter_form,
            "available_layers": self.available,
            "selected_layers": self.selection.keys if self.selection else self.request.GET.getlist("layer"),
            "selection": self.selection,
            "mode": "side" if self.selection and self.selection.side_by_side else "sum",
            "errors": self.errors,
            "query": self.request.GET.urlencode(),
            **extra,
        }


# Chart colours when the codebook's own do not tell the series apart (Tableau 10).
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


def series_colours(node_ids: Sequence[int], nodes: Sequence[stats.CodebookNode]) -> list[str]:
    """The nodes' own colours when they differ from each other, else a palette."""
    own = {n.id: n.colour for n in nodes}
    colours = [own.get(pk, "") for pk in node_ids]
    if len(set(colours)) == len(colours) and all(colours):
        return colours
    return [PALETTE[i % len(PALETTE)] for i in range(len(node_ids))]


def _export_format(request: HttpRequest) -> str | None:
    fmt = request.GET.get("export")
    return fmt if fmt in exports.FORMATS or fmt == "table3" else None


def _render(request: HttpRequest, template: str, context: dict, *, ok: bool = True) -> TemplateResponse:
    name = f"{template}#dashboard-body" if request.htmx else template
    return TemplateResponse(request, name, context, status=200 if ok else 400)


def _layer_labels(selection: stats.LayerSelection) -> list[tuple[str, str]]:
    if selection.side_by_side:
        return [(layer.key, layer.label) for layer in selection.layers]
    return [("sum", selection.label)]


# --- distribution ----------------------------------------------------------------------------


ALPHA = "Krippendorff's α"


def distribution_table(
    dist: pd.DataFrame, layers: Sequence[tuple[str, str]], agreement: stats.NodeAgreement | None = None
) -> exports.Table:
    """The distribution as shown: one row per node, per layer its references, share and
    policies coded (several layers side by side get a column group each), and with
    ``agreement`` the node's α across the layers compared (empty where not computable)."""
    first = dist[dist["layer"] == layers[0][0]].reset_index(drop=True)
    frame = pd.DataFrame({"level": first["level"], "node_id": first["node_id"], "Node": first["path"]})
    shares = set()
    for key, label in layers:
        part = dist[dist["layer"] == key].reset_index(drop=True)
        prefix = f"{label} · " if len(layers) > 1 else ""
        frame[f"{prefix}References"] = part["references"]
        frame[f"{prefix}Share"] = part["share"]
        frame[f"{prefix}Policies coded"] = part["policies"]
        shares.add(f"{prefix}Share")
    decimals = {}
    if agreement is not None:
        frame[ALPHA] = pd.Series([f.value for f in _row_figures(frame, agreement)], dtype="float64")
        decimals[ALPHA] = 3
    return exports.Table(
        "distribution", frame, frozenset(shares), hidden=frozenset({"level", "node_id"}), decimals=decimals
    )


def _node_agreement(
    acc: ProjectAccess, board: Dashboard, nodes: Sequence[stats.CodebookNode]
) -> tuple[stats.NodeAgreement | None, str]:
    """The α column when asked for, or why there is none. Like the agreement page, only for
    reviewers: under blind coding it would tell a coder how others coded."""
    if not acc.can_review:
        return None, "Agreement per node is for supervisors and admins, as on the agreement page."
    if not board.selection.side_by_side:
        return None, (
            "Agreement per node compares layers side by side: choose two or more coders "
            "(or a coder and the consensus), side by side."
        )
    try:
        return stats.node_agreement(acc.project, board.selection, board.filters, nodes=nodes), ""
    except ValidationError as exc:
        return None, " ".join(exc.messages)


def _distribution_chart(
    dist: pd.DataFrame, layers: Sequence[tuple[str, str]], nodes: Sequence[stats.CodebookNode]
) -> dict:
    """Sub-nodes' references as horizontal bars: one dataset per layer, or for one layer the
    bars in their nodes' colours."""
    subs = dist[(dist["layer"] == layers[0][0]) & (dist["level"] == 2)]
    datasets = []
    for key, label in layers:
        part = dist[(dist["layer"] == key) & (dist["level"] == 2)]
        dataset = {"label": label, "data": part["references"].tolist()}
        if len(layers) == 1:
            dataset["backgroundColor"] = series_colours(part["node_id"].tolist(), nodes)
        datasets.append(dataset)
    return {
        "type": "bar",
        "data": {"labels": subs["path"].tolist(), "datasets": datasets},
        "options": {"indexAxis": "y", "plugins": {"legend": {"display": len(layers) > 1}}},
        "title": "References per sub-node",
    }


def _table3_display(columns: list[stats.Table3Column]) -> dict:
    """Table 3 for the template: head cells (tree node, references, share) and rows of
    sub-node cells (name, references, share), None where a column has no more sub-nodes."""
    depth = max((len(c.subs) for c in columns), default=0)
    return {
        "heads": [(c.tree, c.references, exports.percent(c.share)) for c in columns],
        "rows": [
            [(c.subs[i][0], c.subs[i][1], exports.percent(c.subs[i][2])) if i < len(c.subs) else None for c in columns]
            for i in range(depth)
        ],
    }


@login_required
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug)
    board = Dashboard(request, acc)
    view = "table3" if request.GET.get("view") == "table3" else "list"
    if not board.ok:
        return _render(request, "coding/dashboard.html", board.context(view=view), ok=False)
    nodes = stats.codebook(acc.project)
    counts = stats.tally_counts(acc.project, board.selection, board.filters, nodes=nodes)
    layers = _layer_labels(board.selection)
    dist = stats.distribution(counts, nodes, [key for key, _ in layers])
    fmt = _export_format(request)
    # Alpha reads every reference of the compared layers (seconds at a million): on request only.
    alpha_asked = request.GET.get("alpha") == "1" and view != "table3" and fmt != "table3"
    agreement, alpha_note = _node_agreement(acc, board, nodes) if alpha_asked else (None, "")
    table = distribution_table(dist, layers, agreement)
    if fmt == "table3":
        title = f"{acc.project.name}: distribution of references ({board.selection.label})"
        content = exports.table3_xlsx(stats.table3(dist, layers[0][0]), title=title)
        return exports.file_response(content, filename=f"{acc.project.slug}-table3", fmt="xlsx")
    if fmt:
        return exports.table_response(table, filename=f"{acc.project.slug}-distribution", fmt=fmt)
    context = board.context(
        view=view,
        table=table,
        totals=[(label, *stats.totals(counts, [key])[key]) for key, label in layers],
        table3=_table3_display(stats.table3(dist, layers[0][0])) if view == "table3" and len(layers) == 1 else None,
        chart=_distribution_chart(dist, layers, nodes),
        has_nodes=bool(nodes),
        agreement=agreement,
        alpha_note=alpha_note,
        alpha_reasons=_alpha_reasons(table, agreement),
    )
    return _render(request, "coding/dashboard.html", context)


def _alpha_reasons(table: exports.Table, agreement: stats.NodeAgreement | None) -> list[tuple[str, str]]:
    """(node path, reason) for each row whose α is not computable."""
    if agreement is None:
        return []
    figures = _row_figures(table.frame, agreement)
    return [(path, f.reason) for path, f in zip(table.frame["Node"], figures, strict=True) if f.value is None]


def _row_figures(frame: pd.DataFrame, agreement: stats.NodeAgreement) -> list[agreement_data.Figure]:
    return [agreement.figure(level, node_id) for level, node_id in zip(frame["level"], frame["node_id"], strict=True)]


# --- crosstab and trend ------------------------------------------------------------------------


def crosstab_table(frame: pd.DataFrame, *, name: str, percent: str) -> exports.Table:
    values = [c for c in frame.columns if c not in ("level", "node_id", "path")]
    shown = frame.rename(columns={"path": "Node"})
    return exports.Table(
        name, shown, frozenset(values) if percent != "count" else frozenset(), hidden=frozenset({"level", "node_id"})
    )


def _stacked_chart(frame: pd.DataFrame, values: list[str], nodes: list[stats.CodebookNode], percent: str) -> dict:
    """Each value a bar, stacked by tree node."""
    scale = 100 if percent != "count" else 1
    trees = frame[frame["level"] == 1]
    colours = series_colours(trees["node_id"].tolist(), nodes)
    datasets = [
        {
            "label": row["path"],
            "data": [round(float(row[v]) * scale, 4) if pd.notna(row[v]) else 0 for v in values],
            "backgroundColor": colour,
        }
        for (_, row), colour in zip(trees.iterrows(), colours, strict=True)
    ]
    return {
        "type": "bar",
        "data": {"labels": values, "datasets": datasets},
        "options": {"scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True}}},
        "title": "Stacked by tree node" + (" (%)" if percent != "count" else ""),
    }


@login_required
def crosstab(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug)
    board = Dashboard(request, acc)
    form = CrosstabForm(request.GET)
    if not form.is_valid():
        board.errors += [e for errors in form.errors.values() for e in errors]
    keys = board.choices.attribute_keys if board.choices else []
    attributes = list(stats.ATTRIBUTES.items()) + [(f"attr:{k}", k) for k in keys]
    if not board.ok:
        return _render(
            request, "coding/dashboard_crosstab.html", board.context(form=form, attributes=attributes), ok=False
        )
    by, measure, percent = form.cleaned_data["by"], form.cleaned_data["measure"], form.cleaned_data["percent"]
    # A crosstab reads its layers summed: side by side it would need a third dimension.
    selection = stats.LayerSelection(board.selection.layers)
    nodes = stats.codebook(acc.project)
    counts = stats.tally_counts(acc.project, selection, board.filters, by=by, nodes=nodes)
    frame = stats.crosstab(counts, nodes, by, measure=measure, percent=percent)
    table = crosstab_table(frame, name=f"crosstab by {stats.attribute_label(by)}", percent=percent)
    fmt = _export_format(request)
    if fmt in exports.FORMATS:
        return exports.table_response(table, filename=f"{acc.project.slug}-crosstab-{by.replace(':', '-')}", fmt=fmt)
    values = [c for c in frame.columns if c not in ("level", "node_id", "path", "Total")]
    context = board.context(
        form=form,
        attributes=attributes,
        by_label=stats.attribute_label(by),
        measure=measure,
        percent=percent,
        table=table,
        chart=_stacked_chart(frame, values, nodes, percent),
        multi_valued=by == "department",
        has_nodes=bool(nodes),
    )
    return _render(request, "coding/dashboard_crosstab.html", context)


@login_required
def trend(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug)
    board = Dashboard(request, acc)
    level = 2 if request.GET.get("level") == "sub" else 1
    if not board.ok:
        return _render(request, "coding/dashboard_trend.html", board.context(level=level), ok=False)
    nodes = stats.codebook(acc.project)
    counts = stats.tally_counts(
        acc.project, stats.LayerSelection(board.selection.layers), board.filters, by="year", nodes=nodes
    )
    frame = stats.crosstab(counts, nodes, "year", fill_years=True)
    table = crosstab_table(frame, name="references per release year", percent="count")
    fmt = _export_format(request)
    if fmt in exports.FORMATS:
        return exports.table_response(table, filename=f"{acc.project.slug}-trend", fmt=fmt)
    years = [c for c in frame.columns if c.isdigit()]
    lines = frame[frame["level"] == level]
    colours = series_colours(lines["node_id"].tolist(), nodes)
    chart = {
        "type": "line",
        "data": {
            "labels": years,
            "datasets": [
                {"label": row["path"], "data": [int(row[y]) for y in years], "borderColor": c, "backgroundColor": c}
                for (_, row), c in zip(lines.iterrows(), colours, strict=True)
            ],
        },
        "options": {"scales": {"y": {"beginAtZero": True}}},
        "title": "References per release year",
    }
    undated = int(frame.iloc[-1][stats.NONE_VALUE]) if stats.NONE_VALUE in frame.columns else 0
    context = board.context(level=level, table=table, chart=chart, undated=undated, has_nodes=bool(nodes))
    return _render(request, "coding/dashboard_trend.html", context)


# --- word frequency --------------------------------------------------------------------------


def words_table(frame: pd.DataFrame) -> exports.Table:
    shown = frame.rename(
        columns={"rank": "Rank", "word": "Word", "count": "Count", "share": "Share", "policies": "Policies"}
    )
    return exports.Table("word frequency", shown, frozenset({"Share"}))


@login_required
def words(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug)
    board = Dashboard(request, acc, layers=False)
    form = WordFrequencyForm(request.GET)
    if not form.is_valid():
        board.errors += [e for errors in form.errors.values() for e in errors]
    stopwords = stats.project_stopwords(acc.project)
    context = board.context(
        form=form,
        stopwords_form=StopwordsForm(initial={"words": "\n".join(stopwords)}),
        stopword_count=len(stopwords),
        custom_stopwords=acc.project.stopwords is not None,
        ran="run" in request.GET,
    )
    if not board.ok or "run" not in request.GET:
        return _render(request, "coding/dashboard_words.html", context, ok=board.ok)
    texts = stats.policy_texts(acc.project, board.filters)
    frame = stats.word_frequency(texts, stopwords=stopwords, **form.cleaned_data)
    table = words_table(frame)
    fmt = _export_format(request)
    if fmt in exports.FORMATS:
        return exports.table_response(table, filename=f"{acc.project.slug}-word-frequency", fmt=fmt)
    top = frame.head(30)
    context |= {
        "table": table,
        "policy_count": len(texts),
        "chart": {
            "type": "bar",
            "data": {"labels": top["word"].tolist(), "datasets": [{"label": "Count", "data": top["count"].tolist()}]},
            "options": {"plugins": {"legend": {"display": False}}},
            "title": "Most frequent words",
        },
    }
    return _render(request, "coding/dashboard_words.html", context)


@require_POST
@login_required
def stopwords(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
    form = StopwordsForm(request.POST)
    target = reverse("coding:dashboard_words", args=[slug])
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect(target)
    try:
        services.set_project_stopwords(actor=request.user, project=acc.project, words=form.word_list())
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(target)
    words = stats.project_stopwords(acc.project)
    kind = "the default list" if acc.project.stopwords is None else "the project's own list"
    messages.success(request, f"Stop words saved: {len(words)} words, {kind}.")
    return redirect(target)


# --- text search -----------------------------------------------------------------------------


def hits_table(hits: Sequence[stats.Hit]) -> exports.Table:
    frame = pd.DataFrame(
        [(h.label, h.before, h.match, h.after, h.title, h.start, h.end) for h in hits],
        columns=["Label", "Before", "Match", "After", "Policy title", "Start", "End"],
    )
    return exports.Table("search hits", frame, hidden=frozenset({"Start", "End"}))


def _search(board: Dashboard, form: SearchForm) -> stats.SearchResult | None:
    if not board.ok or not form.is_valid() or not form.cleaned_data["q"].strip():
        return None
    try:
        return stats.search(board.acc.project, form.cleaned_data["q"], form.cleaned_data["mode"], board.filters)
    except ValidationError as exc:  # a regular expression that ran out of time
        board.errors += exc.messages
        return None


@login_required
def search(request: HttpRequest, slug: str) -> HttpResponse:
    acc = access.get_project_for_user(request.user, slug)
    board = Dashboard(request, acc, layers=False)
    form = SearchForm(request.GET)
    if not form.is_valid():
        board.errors += [e for errors in form.errors.values() for e in errors]
    result = _search(board, form)
    if result is not None and _export_format(request) in exports.FORMATS:
        return exports.table_response(
            hits_table(result.hits), filename=f"{acc.project.slug}-search", fmt=_export_format(request)
        )
    shown = result.hits[:SEARCH_HITS_SHOWN] if result else []
    context = board.context(
        form=form,
        result=result,
        hits=shown,
        nodes=stats.codebook(acc.project) if result and result.hits else [],
        search_query=request.GET.urlencode(),
    )
    return _render(request, "coding/dashboard_search.html", context, ok=board.ok)


@require_POST
@login_required
def search_code(request: HttpRequest, slug: str) -> HttpResponse:
    """Code the ticked hits (or all) of the search in the query string, in the user's own layer."""
    acc = access.get_project_for_user(request.user, slug)
    query = QueryDict(request.POST.get("search", ""))
    filter_form = DashboardFilterForm(query)
    filters = filter_form.policy_filter() if filter_form.is_valid() else None
    search_form = SearchForm(query)
    target = reverse("coding:dashboard_search", args=[slug]) + "?" + query.urlencode()
    if filters is None or not search_form.is_valid() or not search_form.cleaned_data["q"].strip():
        messages.error(request, "The search to code from is not valid any more; search again.")
        return redirect(target)
    # Run the search again: only real hits of it can be coded, whatever the request says.
    try:
        result = stats.search(acc.project, search_form.cleaned_data["q"], search_form.cleaned_data["mode"], filters)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(target)
    form = CodeHitsForm(request.POST, project=acc.project, hits=result.hits)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect(target)
    chosen = {h.key for h in result.hits} if form.cleaned_data["all"] else set(form.cleaned_data["hit"])
    hits = [h for h in result.hits if h.key in chosen and h.clause is not None]
    policies = {p.number: p for p in Policy.objects.filter(project=acc.project, number__in={h.number for h in hits})}
    node = form.cleaned_data["node"]
    try:
        created, skipped = services.code_hits(
            actor=request.user,
            coder=request.user,
            node=node,
            hits=[(policies[h.number], h.start, h.end) for h in hits],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(target)
    already = len(hits) - skipped
    messages.success(
        request,
        f"Coded {len(hits)} hit(s) at {node.name} in your layer: {created} new reference(s)"
        + (f", {already - created} passage(s) were already coded there" if already > created else "")
        + ".",
    )
    return redirect(target)
