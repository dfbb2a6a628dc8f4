"""The REST API: thin edges that parse input, call ``access.py`` / ``services.py`` and answer JSON.

Every project endpoint starts with ``access.get_project_for_user`` (404 for non-members, 403
for a role that may not act), scopes every further lookup to that project, and writes only
through services, so an API change is audited exactly like a page change. Reads use DRF
generics over annotated querysets; writes validate a plain input serializer and call a service.
"""

from __future__ import annotations

import hashlib
import math

from django.db import IntegrityError
from django.db.models import Exists, OuterRef, QuerySet, Subquery, Value
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import api_view, authentication_classes, permission_classes, renderer_classes
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from coding import access, agreement_data, services, stats
from coding.api.errors import StrictJSONParser, check_body_size
from coding.api.schema import ApiSchema
from coding.api.serializers import (
    AgreementQuerySerializer,
    AgreementSerializer,
    ConflictSerializer,
    DistributionQuerySerializer,
    DistributionSerializer,
    DoneSerializer,
    NodeInputSerializer,
    NodeMergeSerializer,
    NodeSerializer,
    NodeTreeSerializer,
    PolicyCreateSerializer,
    PolicyDetailSerializer,
    PolicyFilterSerializer,
    PolicySerializer,
    ProjectSerializer,
    ReferenceCreateSerializer,
    ReferenceFilterSerializer,
    ReferenceSerializer,
    ReferenceUpdateSerializer,
    VersionQuerySerializer,
    reference_rows,
)
from coding.forms import CrosstabForm, DashboardFilterForm
from coding.models import REVIEW_ROLES, DoneMark, Membership, Node, Policy, Project, Reference, Role

ADMIN = {Role.ADMIN}


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000


class ApiView:
    """Settings every endpoint shares; mixed into DRF's APIView and generics."""

    # Token first: its WWW-Authenticate header is what makes DRF answer an anonymous call with
    # 401 rather than 403. Session auth (with CSRF) serves the browser and the API docs.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    parser_classes = [StrictJSONParser]
    # JSON only, as the schema says; people browse the API at /api/docs/.
    renderer_classes = [JSONRenderer]
    pagination_class = Pagination
    schema = ApiSchema()

    def initial(self, request, *args, **kwargs):
        check_body_size(request)
        super().initial(request, *args, **kwargs)

    def is_schema_generation(self) -> bool:
        return getattr(self, "swagger_fake_view", False)


def validated(serializer_class: type[serializers.Serializer], data, **context) -> dict:
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- auth ----------------------------------------------------------------------------------


class TokenAddressThrottle(SimpleRateThrottle):
    """Attempts per client address.

    DRF keeps throttle history in the default cache, which is per process here (LocMemCache;
    DESIGN.md keeps shared state in PostgreSQL only). With N web processes a client gets at
    most N times the rate, which is still far too slow to guess a password: this is a brake,
    not an account. A deployment that configures a shared CACHES backend gets an exact limit
    without code changes.
    """

    scope = "token"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class TokenUsernameThrottle(SimpleRateThrottle):
    """Attempts per username, so guessing one account's password from many addresses (or
    behind a forged X-Forwarded-For) is slowed as well. Per process, as above."""

    scope = "token_username"

    def get_cache_key(self, request, view) -> str | None:
        username = request.data.get("username") if hasattr(request.data, "get") else None
        if not isinstance(username, str) or not username:
            return None
        # Hashed: a username may hold any character, a cache key should not.
        ident = hashlib.sha256(username.casefold().encode("utf-8", "replace")).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class TokenView(ApiView, ObtainAuthToken):
    """Exchange a username and password for an API token (`Authorization: Token <key>`)."""

    authentication_classes = []
    parser_classes = [StrictJSONParser, FormParser]
    throttle_classes = [TokenAddressThrottle, TokenUsernameThrottle]


# --- projects ------------------------------------------------------------------------------


class ProjectList(ApiView, generics.ListAPIView):
    """Your projects, with your role in each."""

    serializer_class = ProjectSerializer

    def get_queryset(self) -> QuerySet[Project]:
        user = self.request.user
        if self.is_schema_generation():
            return Project.objects.none()
        if user.is_superuser:
            role = Value(Role.ADMIN)
        else:
            role = Subquery(Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1])
        return access.projects_for_user(user).annotate(role=role).order_by("name", "slug")


# --- policies ------------------------------------------------------------------------------


def _policy_rows(acc: access.ProjectAccess) -> QuerySet[Policy]:
    return (
        Policy.objects.for_project(acc.project)
        .with_clause_counts()
        .annotate(done=Exists(DoneMark.objects.filter(policy=OuterRef("pk"), coder=acc.user)))
        .order_by("number")
    )


class PolicyList(ApiView, generics.ListAPIView):
    """The project's policies, by number; filter by jurisdiction, release year, potency level,
    and whether you marked them done."""

    serializer_class = PolicySerializer

    def get_queryset(self) -> QuerySet[Policy]:
        if self.is_schema_generation():
            return Policy.objects.none()
        acc = access.get_project_for_user(self.request.user, self.kwargs["slug"])
        filters = validated(PolicyFilterSerializer, self.request.query_params.dict())
        policies = _policy_rows(acc).defer("text")
        if "jurisdiction" in filters:
            policies = policies.filter(jurisdiction=filters["jurisdiction"])
        if "potency_level" in filters:
            policies = policies.filter(potency_level=filters["potency_level"])
        if "year" in filters:
            policies = policies.filter(release_date__startswith=f"{filters['year']:04d}")
        if "done" in filters:
            policies = policies.filter(done=filters["done"])
        return policies

    @extend_schema(parameters=[PolicyFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=PolicyCreateSerializer, responses={201: PolicyDetailSerializer})
    def post(self, request, slug: str) -> Response:
        """Create a policy (admins): its text is segmented into clauses under `rule`."""
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        data = validated(PolicyCreateSerializer, request.data)
        policy = services.create_policy(actor=request.user, project=acc.project, **data)
        policy = _policy_rows(acc).get(pk=policy.pk)
        location = reverse("api:policy-detail", args=[slug, policy.number])
        return Response(
            PolicyDetailSerializer(policy).data, status=status.HTTP_201_CREATED, headers={"Location": location}
        )


class PolicyDetail(ApiView, generics.RetrieveAPIView):
    """A policy with its text and its clauses (offsets in code points)."""

    serializer_class = PolicyDetailSerializer

    def get_object(self) -> Policy:
        acc = access.get_project_for_user(self.request.user, self.kwargs["slug"])
        number = self.kwargs["number"]
        policy = _policy_rows(acc).filter(number=number).first()
        if policy is None:
            raise Http404(f"Policy {number} does not exist in this project.")
        return policy


class PolicyDone(ApiView, APIView):
    """Your "done" mark on a policy: agreement uses only policies every compared coder marked done."""

    @extend_schema(request=None, responses={200: DoneSerializer})
    def post(self, request, slug: str, number: int) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        policy = access.get_policy(acc, number)
        mark = services.mark_policy_done(actor=request.user, policy=policy, coder=request.user)
        return Response(DoneSerializer({"policy": policy.number, "done": True, "marked_at": mark.marked_at}).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, slug: str, number: int) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        policy = access.get_policy(acc, number)
        services.unmark_policy_done(actor=request.user, policy=policy, coder=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- codebook ------------------------------------------------------------------------------


def _tree(project: Project) -> list[dict]:
    """The codebook as nested dicts, from one query."""
    rows = [
        {
            "id": node.pk,
            "parent": node.parent_id,
            "name": node.name,
            "description": node.description,
            "colour": node.colour,
            "shortcut": node.shortcut,
            "position": node.position,
            "children": [],
        }
        for node in Node.objects.for_project(project).order_by("position", "id")
    ]
    by_id = {row["id"]: row for row in rows}
    roots = []
    for row in rows:
        parent = by_id.get(row["parent"])
        (parent["children"] if parent else roots).append(row)
    return roots


class NodeList(ApiView, APIView):
    """The codebook as a tree; admins add nodes."""

    pagination_class = None  # a codebook is tens to hundreds of nodes, and a tree does not page

    @extend_schema(responses=NodeTreeSerializer(many=True))
    def get(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        return Response(NodeTreeSerializer(_tree(acc.project), many=True).data)

    @extend_schema(request=NodeInputSerializer, responses={201: NodeSerializer})
    def post(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        data = validated(NodeInputSerializer, request.data, project=acc.project)
        node = services.add_node(actor=request.user, project=acc.project, **data)
        return Response(NodeSerializer(node).data, status=status.HTTP_201_CREATED)


class NodeDetail(ApiView, APIView):
    """One node; admins rename, describe, recolour or move it (`parent`, `position`), or delete it
    (refused while it or a sub-node has references: merge it instead)."""

    @extend_schema(responses=NodeSerializer)
    def get(self, request, slug: str, node_id: int) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        return Response(NodeSerializer(access.get_node(acc, node_id)).data)

    @extend_schema(request=NodeInputSerializer(partial=True), responses=NodeSerializer)
    def patch(self, request, slug: str, node_id: int) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        node = access.get_node(acc, node_id)
        serializer = NodeInputSerializer(data=request.data, partial=True, context={"project": acc.project})
        serializer.is_valid(raise_exception=True)
        node = services.update_node(actor=request.user, node=node, **serializer.validated_data)
        return Response(NodeSerializer(node).data)

    @extend_schema(responses={204: None})
    def delete(self, request, slug: str, node_id: int) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        services.delete_node(actor=request.user, node=access.get_node(acc, node_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class NodeMerge(ApiView, APIView):
    """Merge this node into another (admins): its references and sub-nodes move there."""

    @extend_schema(request=NodeMergeSerializer, responses=NodeSerializer)
    def post(self, request, slug: str, node_id: int) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        source = access.get_node(acc, node_id)
        data = validated(NodeMergeSerializer, request.data, project=acc.project)
        target = services.merge_nodes(actor=request.user, source=source, target=data["into"])
        return Response(NodeSerializer(target).data)


# --- references ----------------------------------------------------------------------------

REFERENCE_ORDER = ("policy__number", "start", "end", "id")


class ReferenceList(ApiView, generics.ListAPIView):
    """References you may see (with blind coding, a coder sees only their own), by policy and
    position; filter by policy, clause label, node, coder and layer. Offsets are code points."""

    serializer_class = ReferenceSerializer

    def get_queryset(self) -> QuerySet[Reference]:
        if self.is_schema_generation():
            return Reference.objects.none()
        acc = access.get_project_for_user(self.request.user, self.kwargs["slug"])
        filters = validated(ReferenceFilterSerializer, self.request.query_params.dict())
        # Filters narrow what access.visible_references allows; they can never widen it.
        references = access.visible_references(acc)
        if "policy" in filters:
            references = references.filter(policy__number=filters["policy"])
        if "clause" in filters:
            policy_number, clause_number = filters["clause"]
            references = references.filter(policy__number=policy_number, clause__number=clause_number)
        if "node" in filters:
            references = references.filter(node_id=filters["node"])
        if "coder" in filters:
            references = references.filter(coder__username=filters["coder"])
        if "layer" in filters:
            references = references.filter(consensus=filters["layer"] == "consensus")
        return reference_rows(references).order_by(*REFERENCE_ORDER)

    @extend_schema(parameters=[ReferenceFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=ReferenceCreateSerializer, responses={201: ReferenceSerializer(many=True)})
    def post(self, request, slug: str) -> Response:
        """Code a passage in your layer (or, for supervisors and admins, the consensus layer).
        Answers the references made: one, or one per clause a selection crosses. Coding the same
        span at the same node again returns the existing reference instead of a duplicate."""
        acc = access.get_project_for_user(request.user, slug)
        data = validated(ReferenceCreateSerializer, request.data, project=acc.project)
        consensus = data["consensus"]
        if consensus and not acc.can_review:
            raise PermissionDenied("Only supervisors and admins code the consensus layer.")
        coding = {
            "actor": request.user,
            "node": data["node"],
            "coder": None if consensus else request.user,
            "consensus": consensus,
            "memo": data["memo"],
        }
        if "clause" in data:
            clause = data["clause"]
            start, end = data.get("start", clause.start), data.get("end", clause.end)
            made = [services.add_reference(clause=clause, start=start, end=end, **coding)]
        else:
            made = services.add_references_for_selection(
                policy=data["policy"], start=data["start"], end=data["end"], **coding
            )
        rows = reference_rows(Reference.objects.filter(pk__in=[r.pk for r in made])).order_by(*REFERENCE_ORDER)
        return Response(ReferenceSerializer(rows, many=True).data, status=status.HTTP_201_CREATED)


CONFLICT = OpenApiResponse(ConflictSerializer, description="Stale version: the reference as it is now.")


class ReferenceDetail(ApiView, APIView):
    """One reference; change or delete your own (supervisors and admins: the consensus layer's),
    giving the `version` you read."""

    @extend_schema(responses=ReferenceSerializer)
    def get(self, request, slug: str, reference_id: int) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        reference = access.get_reference(acc, reference_id)
        return Response(ReferenceSerializer(reference_rows(Reference.objects.filter(pk=reference.pk)).get()).data)

    @extend_schema(request=ReferenceUpdateSerializer, responses={200: ReferenceSerializer, 409: CONFLICT})
    def patch(self, request, slug: str, reference_id: int) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        reference = access.get_reference(acc, reference_id, for_write=True)
        data = validated(ReferenceUpdateSerializer, request.data, project=acc.project)
        try:
            services.update_reference(actor=request.user, reference=reference, **data)
        except IntegrityError:
            # The only constraint a valid change can break: the layer already has this span at that node.
            raise serializers.ValidationError(
                {"node": "This passage is already coded at that node in the same layer."}
            ) from None
        return Response(ReferenceSerializer(reference_rows(Reference.objects.filter(pk=reference.pk)).get()).data)

    @extend_schema(parameters=[VersionQuerySerializer], responses={204: None, 409: CONFLICT})
    def delete(self, request, slug: str, reference_id: int) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        reference = access.get_reference(acc, reference_id, for_write=True)
        query = validated(VersionQuerySerializer, request.query_params.dict())
        services.delete_reference(actor=request.user, reference=reference, version=query["version"])
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- figures -------------------------------------------------------------------------------


def _finite(value):
    """NaN (a share of nothing) and infinities as null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _form_errors(form) -> serializers.ValidationError:
    return serializers.ValidationError(
        {("non_field_errors" if name == "__all__" else name): list(errors) for name, errors in form.errors.items()}
    )


class Distribution(ApiView, APIView):
    """The dashboard's distribution: references, their share and policies coded per tree node and
    sub-node, for the chosen layers and policies; with `by`, the crosstab across a policy
    attribute. The same figures as the dashboard pages."""

    @extend_schema(parameters=[DistributionQuerySerializer], responses=DistributionSerializer)
    def get(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        query = DistributionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filter_form = DashboardFilterForm(request.query_params)
        if not filter_form.is_valid():
            raise _form_errors(filter_form)
        available = stats.available_layers(acc)
        # PermissionDenied (a layer hidden by blind coding) is a 403, an unknown layer a 400.
        selection = stats.resolve_layers(
            acc,
            query.validated_data.get("layer", []),
            side_by_side=query.validated_data.get("mode") == "side",
            available=available,
        )
        keys = selection.keys if selection.side_by_side else ["sum"]
        nodes = stats.codebook(acc.project)
        figures = {
            "available_layers": [{"key": layer.key, "label": layer.label} for layer in available],
            "layers": [{"key": layer.key, "label": layer.label} for layer in selection.layers],
            "side_by_side": selection.side_by_side,
            "distribution": None,
            "crosstab": None,
        }
        if "by" in request.query_params:
            form = CrosstabForm(request.query_params)
            if not form.is_valid():
                raise _form_errors(form)
            by, measure, percent = (form.cleaned_data[name] for name in ("by", "measure", "percent"))
            # Summed, as on the page: side by side a crosstab would need a third dimension.
            summed = stats.LayerSelection(selection.layers)
            counts = stats.tally_counts(acc.project, summed, filter_form.policy_filter(), by=by, nodes=nodes)
            frame = stats.crosstab(counts, nodes, by, measure=measure, percent=percent)
            values = [c for c in frame.columns if c not in ("level", "node_id", "path", "Total")]
            keys = ["sum"]
            figures["side_by_side"] = False
            figures["crosstab"] = {
                "by": by,
                "measure": measure,
                "percent": percent,
                "values": values,
                "rows": [
                    {
                        "level": int(row["level"]),
                        "node_id": int(row["node_id"]),
                        "path": row["path"],
                        "cells": {value: float(row[value]) for value in values},
                        "total": float(row["Total"]),
                    }
                    for row in frame.to_dict("records")
                ],
            }
        else:
            counts = stats.tally_counts(acc.project, selection, filter_form.policy_filter(), nodes=nodes)
            figures["distribution"] = stats.distribution(counts, nodes, keys).to_dict("records")
        figures["totals"] = [
            {"layer": key, "references": refs, "policies": coded}
            for key, (refs, coded) in stats.totals(counts, keys).items()
        ]
        return Response(DistributionSerializer(_finite(figures)).data)


class Agreement(ApiView, APIView):
    """Inter-coder agreement (supervisors and admins): the agreement page's figures per node,
    overall, per coder pair and per policy, over the policies every compared coder marked done."""

    @extend_schema(parameters=[AgreementQuerySerializer], responses=AgreementSerializer)
    def get(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
        query = validated(AgreementQuerySerializer, request.query_params)
        coders = query.get("coders") or agreement_data.default_coders(acc.project)
        selection = agreement_data.parse_selection(
            acc.project,
            coders=coders,
            level=query.get("level", ""),
            unit=query.get("unit", ""),
            policies=query.get("policies", ""),
            jurisdiction=query.get("jurisdiction", ""),
            potency_level=query.get("potency_level", ""),
        )
        report = agreement_data.build_report(acc.project, selection)
        return Response(AgreementSerializer(_finite(report.as_dict())).data)


# --- the rest ------------------------------------------------------------------------------


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@authentication_classes([])
@permission_classes([])
@renderer_classes([JSONRenderer])
def not_found(request, path: str) -> Response:
    # Without this, a path under /api/ that matches no endpoint (or an id that is not a
    # number) would get Django's HTML 404 page.
    return Response(
        {"detail": f"No API endpoint at /api/{path} (API paths end with a slash; see /api/docs/)."},
        status=status.HTTP_404_NOT_FOUND,
    )


# --- docs ----------------------------------------------------------------------------------


def api_docs(request: HttpRequest) -> HttpResponse:
    """Swagger UI over /api/schema/, from vendored static files."""
    return TemplateResponse(request, "coding/api_docs.html", {"schema_url": reverse("api:schema")})
