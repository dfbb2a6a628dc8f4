"""The REST API: thin edges that parse input, call ``access.py`` / ``services.py`` and answer JSON.

Every project endpoint starts with ``access.get_project_for_user`` (404 for non-members, 403
for a role that may not act), scopes every further lookup to that project, and writes only
through services, so an API change is audited exactly like a page change. Reads use DRF
generics over annotated querysets; writes validate a plain input serializer and call a service.
"""

from __future__ import annotations

import hashlib
import math
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery, Value
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import api_view, authentication_classes, permission_classes, renderer_classes
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from coding import access, agreement_data, codebook_io, exports, history, importing, refi, services, stats
from coding.api.errors import PayloadTooLarge, StrictJSONParser, check_body_size
from coding.api.schema import ApiSchema
from coding.api.serializers import (
    AdjudicationInputSerializer,
    AdoptedSerializer,
    AdoptInputSerializer,
    AgreementQuerySerializer,
    AgreementSerializer,
    ClauseSerializer,
    ClauseSplitSerializer,
    ClauseUpdateSerializer,
    CodebookFileNodeSerializer,
    CodebookImportedSerializer,
    CodebookImportSerializer,
    CodedHitsSerializer,
    ConflictSerializer,
    DeletedSerializer,
    DisagreementPageSerializer,
    DisagreementQuerySerializer,
    DisagreementSerializer,
    DistributionQuerySerializer,
    DistributionSerializer,
    DoneSerializer,
    EventFilterSerializer,
    EventSerializer,
    ImportedPoliciesSerializer,
    ImportPlanSerializer,
    MemberAddedSerializer,
    MemberAddSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    NodeInputSerializer,
    NodeMergeSerializer,
    NodeSerializer,
    NodeTreeSerializer,
    PolicyCreateSerializer,
    PolicyDetailSerializer,
    PolicyFilterSerializer,
    PolicyImportSerializer,
    PolicySerializer,
    PolicyTextSerializer,
    PolicyUpdateSerializer,
    ProjectCreateSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
    QdpxQuerySerializer,
    ReferenceCreateSerializer,
    ReferenceFilterSerializer,
    ReferenceSerializer,
    ReferenceUpdateSerializer,
    RefiImportSerializer,
    RefiReportSerializer,
    ResegmentSerializer,
    RestoreSerializer,
    SearchCodeSerializer,
    SearchPageSerializer,
    SearchQuerySerializer,
    StopwordsSerializer,
    TrendQuerySerializer,
    TrendSerializer,
    VersionQuerySerializer,
    WordsQuerySerializer,
    WordsSerializer,
    clause_row,
    member_rows,
    reference_rows,
)
from coding.dashboard_query import WORD_DEFAULTS
from coding.forms import CrosstabForm, DashboardFilterForm
from coding.models import REVIEW_ROLES, Clause, DoneMark, Event, Membership, Node, Policy, Project, Reference, Role

ADMIN = {Role.ADMIN}


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000


# For the endpoints that page a computed list (not a queryset of a generic list view).
PAGE_PARAMETERS = [
    OpenApiParameter("page", int, description="A page number within the paginated result set."),
    OpenApiParameter("page_size", int, description="Number of results to return per page."),
]


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

    def body_limit(self) -> int | None:
        return None  # DATA_UPLOAD_MAX_MEMORY_SIZE

    def initial(self, request, *args, **kwargs):
        check_body_size(request, self.body_limit())
        super().initial(request, *args, **kwargs)

    def is_schema_generation(self) -> bool:
        return getattr(self, "swagger_fake_view", False)


def validated(serializer_class: type[serializers.Serializer], data, **context) -> dict:
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def validated_partial(serializer_class: type[serializers.Serializer], data, **context) -> dict:
    serializer = serializer_class(data=data, partial=True, context=context)
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

    @extend_schema(request=ProjectCreateSerializer, responses={201: ProjectSerializer})
    def post(self, request) -> Response:
        """Create a project (site superusers); you become its admin, as on the page."""
        if not request.user.is_superuser:
            raise PermissionDenied("Only site administrators create projects.")
        data = validated(ProjectCreateSerializer, request.data)
        with transaction.atomic():
            project = services.create_project(actor=request.user, **data)
            services.set_membership(actor=request.user, project=project, user=request.user, role=Role.ADMIN)
        project.role = Role.ADMIN
        location = reverse("api:project-detail", args=[project.slug])
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED, headers={"Location": location})


def _project_data(acc: access.ProjectAccess) -> dict:
    acc.project.role = acc.role
    return ProjectSerializer(acc.project).data


class ProjectDetail(ApiView, APIView):
    """The project with your role; admins change its name, description and blind coding."""

    @extend_schema(responses=ProjectSerializer)
    def get(self, request, slug: str) -> Response:
        return Response(_project_data(access.get_project_for_user(request.user, slug)))

    @extend_schema(request=ProjectUpdateSerializer(partial=True), responses=ProjectSerializer)
    def patch(self, request, slug: str) -> Response:
        """Change any of the fields (admins). Turning `blind_coding` off lets coders see every coder's
        references and the consensus layer; turning it on hides them again. Audited as on the page."""
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        data = validated_partial(ProjectUpdateSerializer, request.data)
        services.update_project(actor=request.user, project=acc.project, **data)
        return Response(_project_data(acc))


class EventList(ApiView, generics.ListAPIView):
    """The project's audit trail (supervisors and admins), newest first: every change with who made
    it and the fields before and after. Filter by actor, action (exact or an area such as
    `reference.`) and target (a policy number, a clause label or text in the label)."""

    serializer_class = EventSerializer

    def get_queryset(self) -> QuerySet[Event]:
        if self.is_schema_generation():
            return Event.objects.none()
        self.access = access.get_project_for_user(self.request.user, self.kwargs["slug"], roles=REVIEW_ROLES)
        filters = validated(EventFilterSerializer, self.request.query_params.dict())
        return history.filter_events(history.project_events(self.access.project), self.access.project, **filters)

    def get_serializer_context(self) -> dict:
        return super().get_serializer_context() | {"policies": getattr(self, "policies", {})}

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        # The policies the page's events concern, in at most two queries for the whole page.
        self.policies = history.policy_numbers(self.access.project, page or [])
        return page

    @extend_schema(parameters=[EventFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


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
    """A policy with its text and its clauses (offsets in code points); admins change its
    metadata or delete it (with every reference to it)."""

    serializer_class = PolicyDetailSerializer

    def get_object(self) -> Policy:
        acc = access.get_project_for_user(self.request.user, self.kwargs["slug"])
        return _policy_detail(acc, self.kwargs["number"])

    @extend_schema(request=PolicyUpdateSerializer(partial=True), responses=PolicyDetailSerializer)
    def patch(self, request, slug: str, number: int) -> Response:
        """Change the metadata (admins); the text has its own endpoint. A new `number` moves the
        policy to that number's URL."""
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        policy = access.get_policy(acc, number)
        serializer = PolicyUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        policy = services.update_policy(actor=request.user, policy=policy, **serializer.validated_data)
        return Response(PolicyDetailSerializer(_policy_detail(acc, policy.number)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, slug: str, number: int) -> Response:
        """Delete the policy with its clauses and every layer's references to it (admins)."""
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        services.delete_policy(actor=request.user, policy=access.get_policy(acc, number))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _policy_detail(acc: access.ProjectAccess, number: int) -> Policy:
    policy = _policy_rows(acc).filter(number=number).first()
    if policy is None:
        raise Http404(f"Policy {number} does not exist in this project.")
    return policy


class PolicyText(ApiView, APIView):
    """Attach or replace a policy's text (admins); it is segmented anew. Refused once the policy
    has references, since they point into the text."""

    @extend_schema(request=PolicyTextSerializer, responses=PolicyDetailSerializer)
    def post(self, request, slug: str, number: int) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        policy = access.get_policy(acc, number)
        data = validated(PolicyTextSerializer, request.data)
        services.set_policy_text(actor=request.user, policy=policy, text=data["text"], rule=data.get("rule"))
        return Response(PolicyDetailSerializer(_policy_detail(acc, number)).data)


class PolicyResegment(ApiView, APIView):
    """Segment the text into clauses anew under a rule (admins); refused once the policy has
    references. A rule that finds nothing falls back to paragraphs: `segmentation_rule` says
    which rule was used."""

    @extend_schema(request=ResegmentSerializer, responses=PolicyDetailSerializer)
    def post(self, request, slug: str, number: int) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        policy = access.get_policy(acc, number)
        data = validated(ResegmentSerializer, request.data)
        services.resegment_policy(actor=request.user, policy=policy, rule=data["rule"])
        return Response(PolicyDetailSerializer(_policy_detail(acc, number)).data)


# --- clause review (admins, before coding starts) --------------------------------------------


def _clause(acc: access.ProjectAccess, number: int, clause_number: int) -> Clause:
    policy = access.get_policy(acc, number)
    clause = Clause.objects.filter(policy=policy, number=clause_number).first()
    if clause is None:
        raise Http404(f"Policy {number} has no clause {clause_number}.")
    clause.policy = policy
    return clause


def _clause_data(clause: Clause) -> dict:
    return ClauseSerializer(clause_row(clause, clause.policy)).data


class ClauseDetail(ApiView, APIView):
    """One clause; admins move its bounds (code-point offsets into the policy text). Clause
    edits are refused where references would fall outside their clause."""

    @extend_schema(responses=ClauseSerializer)
    def get(self, request, slug: str, number: int, clause_number: int) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        return Response(_clause_data(_clause(acc, number, clause_number)))

    @extend_schema(request=ClauseUpdateSerializer, responses=ClauseSerializer)
    def patch(self, request, slug: str, number: int, clause_number: int) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        clause = _clause(acc, number, clause_number)
        data = validated(ClauseUpdateSerializer, request.data, policy=clause.policy)
        clause = services.update_clause(actor=request.user, clause=clause, start=data["start"], end=data["end"])
        return Response(_clause_data(clause))


class ClauseSplit(ApiView, APIView):
    """Split a clause in two at an offset (admins; refused once the policy has references). The
    first part keeps the number, the second takes the next, and later clauses move up by one."""

    @extend_schema(request=ClauseSplitSerializer, responses=ClauseSerializer(many=True))
    def post(self, request, slug: str, number: int, clause_number: int) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        clause = _clause(acc, number, clause_number)
        label = clause.label_for(clause.policy)
        data = validated(ClauseSplitSerializer, request.data, clause=clause, label=label)
        second = services.split_clause(actor=request.user, clause=clause, at=data["at"])
        second.policy = clause.policy
        return Response([_clause_data(clause), _clause_data(second)])


class ClauseMerge(ApiView, APIView):
    """Merge a clause with the one after it in the text (admins; refused once the policy has
    references). The merged clause keeps the first number; later numbers stay as they are."""

    @extend_schema(request=None, responses=ClauseSerializer)
    def post(self, request, slug: str, number: int, clause_number: int) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        clause = services.merge_clauses(actor=request.user, clause=_clause(acc, number, clause_number))
        return Response(_clause_data(clause))


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


# --- members (admins) ----------------------------------------------------------------------


def _membership(acc: access.ProjectAccess, username: str) -> Membership:
    membership = None
    # A NUL cannot be in a username, and PostgreSQL refuses it in a query.
    if "\x00" not in username and len(username) <= 150:
        membership = Membership.objects.filter(project=acc.project, user__username=username).first()
    if membership is None:
        raise Http404(f"{username!r} is not a member of this project.")
    membership.project = acc.project
    return membership


def _member_data(acc: access.ProjectAccess, membership: Membership, **extra) -> dict:
    row = member_rows(acc.project).get(pk=membership.pk)
    for name, value in extra.items():
        setattr(row, name, value)
    serializer = MemberAddedSerializer if extra else MemberSerializer
    return serializer(row).data


class MemberList(ApiView, generics.ListAPIView):
    """The project's members with their roles (admins); admins add existing users."""

    serializer_class = MemberSerializer

    def get_queryset(self) -> QuerySet[Membership]:
        if self.is_schema_generation():
            return Membership.objects.none()
        acc = access.get_project_for_user(self.request.user, self.kwargs["slug"], roles=ADMIN)
        return member_rows(acc.project)

    @extend_schema(
        request=MemberAddSerializer,
        responses={
            201: OpenApiResponse(MemberAddedSerializer, description="Added."),
            200: OpenApiResponse(MemberAddedSerializer, description="A member already: their role is changed."),
        },
    )
    def post(self, request, slug: str) -> Response:
        """Give an existing user a role here: adds them, or changes a member's role (a project
        keeps at least one admin)."""
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        data = validated(MemberAddSerializer, request.data)
        membership, outcome = services.add_member(
            actor=request.user, project=acc.project, username=data["username"], role=data["role"]
        )
        code = status.HTTP_201_CREATED if outcome == "added" else status.HTTP_200_OK
        return Response(_member_data(acc, membership, outcome=outcome), status=code)


USERNAME = OpenApiParameter(
    "username",
    str,
    OpenApiParameter.PATH,
    pattern=r"^[\w.@+-]{1,150}$",
    description="The member's username (letters, digits and @.+-_).",
)


@extend_schema(parameters=[USERNAME])
class MemberDetail(ApiView, APIView):
    """One member, by username (admins): change their role or take them out of the project. Their
    references stay, attributed to them; a project keeps at least one admin."""

    @extend_schema(responses=MemberSerializer)
    def get(self, request, slug: str, username: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        return Response(_member_data(acc, _membership(acc, username)))

    @extend_schema(request=MemberRoleSerializer, responses=MemberSerializer)
    def patch(self, request, slug: str, username: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        membership = _membership(acc, username)
        data = validated(MemberRoleSerializer, request.data)
        membership = services.change_member_role(actor=request.user, membership=membership, role=data["role"])
        return Response(_member_data(acc, membership))

    @extend_schema(responses={204: None})
    def delete(self, request, slug: str, username: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        services.remove_member(actor=request.user, membership=_membership(acc, username))
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


def _filtered_references(acc: access.ProjectAccess, query_params) -> QuerySet[Reference]:
    """The references the user may see, narrowed by the list's filters (ReferenceFilterSerializer)."""
    filters = validated(ReferenceFilterSerializer, query_params.dict())
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
    return references


class ReferenceList(ApiView, generics.ListAPIView):
    """References you may see (with blind coding, a coder sees only their own), by policy and
    position; filter by policy, clause label, node, coder and layer. Offsets are code points."""

    serializer_class = ReferenceSerializer

    def get_queryset(self) -> QuerySet[Reference]:
        if self.is_schema_generation():
            return Reference.objects.none()
        acc = access.get_project_for_user(self.request.user, self.kwargs["slug"])
        return reference_rows(_filtered_references(acc, self.request.query_params)).order_by(*REFERENCE_ORDER)

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

    @extend_schema(
        parameters=[VersionQuerySerializer],
        responses={200: OpenApiResponse(DeletedSerializer, description="Deleted; undo with the id."), 409: CONFLICT},
    )
    def delete(self, request, slug: str, reference_id: int) -> Response:
        """Delete the reference; the answer holds the deletion's id, which `references/restore/`
        takes to undo it."""
        acc = access.get_project_for_user(request.user, slug)
        reference = access.get_reference(acc, reference_id, for_write=True)
        query = validated(VersionQuerySerializer, request.query_params.dict())
        event = services.delete_reference(actor=request.user, reference=reference, version=query["version"])
        return Response(DeletedSerializer({"deletion": event.pk if event else None}).data)


class ReferenceRestore(ApiView, APIView):
    """Undo a reference deletion, as the page's "Undo" does: the reference comes back with its id,
    layer, node, span and memo. You undo deletions in your own layer (supervisors and admins: the
    consensus layer too); with blind coding another layer's deletion does not exist for a coder.
    Refused with the reason when its clause, node or text has changed since."""

    @extend_schema(
        request=RestoreSerializer,
        responses={
            201: OpenApiResponse(ReferenceSerializer, description="Restored."),
            200: OpenApiResponse(
                ReferenceSerializer, description="Restored already, or the passage was coded again at the node."
            ),
        },
    )
    def post(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        data = validated(RestoreSerializer, request.data)
        event = access.get_reference_deletion(acc, data["deletion"])
        existed = Reference.objects.filter(pk=event.target_id).exists()
        try:
            reference = services.restore_reference(actor=request.user, event=event)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"deletion": exc.messages}) from None
        body = ReferenceSerializer(reference_rows(Reference.objects.filter(pk=reference.pk)).get()).data
        if existed or reference.pk != event.target_id:
            return Response(body)
        location = reverse("api:reference-detail", args=[slug, reference.pk])
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})


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


def _policy_filter(data) -> stats.PolicyFilter:
    """The dashboards' policy filter from input already checked by a DashboardFilterSerializer,
    read by the pages' own form so that the API counts the same policies."""
    form = DashboardFilterForm(data)
    if not form.is_valid():
        raise _form_errors(form)
    return form.policy_filter()


def _layers(layers) -> list[dict]:
    return [{"key": layer.key, "label": layer.label} for layer in layers]


class Distribution(ApiView, APIView):
    """The dashboard's distribution: references, their share and policies coded per tree node and
    sub-node, for the chosen layers and policies; with `by`, the crosstab across a policy
    attribute. The same figures as the dashboard pages."""

    @extend_schema(parameters=[DistributionQuerySerializer], responses=DistributionSerializer)
    def get(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        query = DistributionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = _policy_filter(request.query_params)
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
            "available_layers": _layers(available),
            "layers": _layers(selection.layers),
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
            counts = stats.tally_counts(acc.project, summed, filters, by=by, nodes=nodes)
            frame = stats.crosstab(counts, nodes, by, measure=measure, percent=percent)
            values = [c for c in frame.columns if c not in ("level", "node_id", "path", "Total")]
            keys = ["sum"]
            figures["side_by_side"] = False
            figures["crosstab"] = {
                "by": by,
                "measure": measure,
                "percent": percent,
                "values": values,
                "rows": _table_rows(frame, values, float),
            }
        else:
            counts = stats.tally_counts(acc.project, selection, filters, nodes=nodes)
            figures["distribution"] = stats.distribution(counts, nodes, keys).to_dict("records")
        figures["totals"] = [
            {"layer": key, "references": refs, "policies": coded}
            for key, (refs, coded) in stats.totals(counts, keys).items()
        ]
        return Response(DistributionSerializer(_finite(figures)).data)


def _table_rows(frame, columns: list, cast: Callable) -> list[dict]:
    """A crosstab / trend frame (nodes as rows) as the API's rows: node, cells, total."""
    return [
        {
            "level": int(row["level"]),
            "node_id": int(row["node_id"]),
            "path": row["path"],
            "cells": {column: cast(row[column]) for column in columns},
            "total": cast(row["Total"]),
        }
        for row in frame.to_dict("records")
    ]


class Trend(ApiView, APIView):
    """The trend dashboard: references per release year for every tree node and sub-node, the
    chosen layers summed, every year from the first to the last. The same figures as the page."""

    @extend_schema(parameters=[TrendQuerySerializer], responses=TrendSerializer)
    def get(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        query = validated(TrendQuerySerializer, request.query_params)
        filters = _policy_filter(request.query_params)
        available = stats.available_layers(acc)
        # A layer hidden by blind coding is a 403 (PermissionDenied), an unknown one a 400.
        selection = stats.resolve_layers(acc, query.get("layer", []), available=available)
        nodes = stats.codebook(acc.project)
        summed = stats.LayerSelection(selection.layers)
        counts = stats.tally_counts(acc.project, summed, filters, by="year", nodes=nodes)
        frame = stats.crosstab(counts, nodes, "year", fill_years=True)
        years = [c for c in frame.columns if c not in ("level", "node_id", "path", "Total")]
        rows = _table_rows(frame, years, int)
        figures = {
            "available_layers": _layers(available),
            "layers": _layers(selection.layers),
            "years": years,
            "rows": rows,
            "undated": rows[-1]["cells"].get(stats.NONE_VALUE, 0),
        }
        return Response(TrendSerializer(figures).data)


class Words(ApiView, APIView):
    """Word frequency over the filtered policies' texts (jieba segmentation), without the
    project's stop words: the word frequency dashboard's table."""

    @extend_schema(parameters=[WordsQuerySerializer], responses=WordsSerializer)
    def get(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        query = validated(WordsQuerySerializer, request.query_params)
        filters = _policy_filter(request.query_params)
        options = WORD_DEFAULTS | {name: query[name] for name in WORD_DEFAULTS if name in query}
        stopwords = stats.project_stopwords(acc.project)
        texts = stats.policy_texts(acc.project, filters)
        frame = stats.word_frequency(texts, stopwords=stopwords, **options)
        body = {
            "policies": len(texts),
            "stopwords": len(stopwords),
            "custom_stopwords": acc.project.stopwords is not None,
            "words": frame.to_dict("records"),
        }
        return Response(WordsSerializer(body).data)


class Stopwords(ApiView, APIView):
    """The stop words word frequencies leave out: the project's own list, or the default one
    (Chinese function words and legal boilerplate, English function words). Supervisors and
    admins replace it; `null` goes back to the default."""

    @extend_schema(responses=StopwordsSerializer)
    def get(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        return Response(_stopwords(acc.project))

    @extend_schema(request=StopwordsSerializer, responses=StopwordsSerializer)
    def put(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
        data = validated(StopwordsSerializer, request.data)
        services.set_project_stopwords(actor=request.user, project=acc.project, words=data["words"])
        return Response(_stopwords(acc.project))


def _stopwords(project: Project) -> dict:
    custom = project.stopwords is not None
    return StopwordsSerializer({"words": stats.project_stopwords(project), "custom": custom}).data


def _search(acc: access.ProjectAccess, query: dict, data) -> stats.SearchResult:
    try:
        return stats.search(acc.project, query["q"], query["mode"], _policy_filter(data))
    except DjangoValidationError as exc:  # a regular expression stopped for taking too long
        raise serializers.ValidationError({"q": exc.messages}) from None


class Search(ApiView, APIView):
    """Text search in the filtered policies' texts: every hit with its clause label and
    keyword in context, in policy and text order (offsets in code points)."""

    @extend_schema(parameters=[SearchQuerySerializer, *PAGE_PARAMETERS], responses=SearchPageSerializer)
    def get(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        query = validated(SearchQuerySerializer, request.query_params)
        result = _search(acc, query, request.query_params)
        paginator = Pagination()
        page = paginator.paginate_queryset(result.hits, request, view=self)
        body = {
            "count": paginator.page.paginator.count,
            "total": result.total,
            "truncated": result.truncated,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": page,
        }
        return Response(SearchPageSerializer(body).data)


class SearchCode(ApiView, APIView):
    """Code hits of a text search at a node in your own layer: the ones named by key, or every
    hit that lies in a clause. The search runs again here, so only its real hits are coded."""

    @extend_schema(request=SearchCodeSerializer, responses=CodedHitsSerializer)
    def post(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug)
        data = validated(SearchCodeSerializer, request.data, project=acc.project)
        result = _search(acc, data, {name: data[name] for name in DashboardFilterForm.base_fields if name in data})
        codable = {hit.key: hit for hit in result.hits if hit.clause is not None}
        if data["all"]:
            hits = list(codable.values())
        else:
            unknown = [key for key in data["hits"] if key not in codable]
            if unknown:
                raise serializers.ValidationError(
                    {"hits": [f"{key!r} is not a hit of this search in a clause; search again." for key in unknown]}
                )
            hits = [codable[key] for key in dict.fromkeys(data["hits"])]
        numbers = {hit.number for hit in hits}
        policies = {policy.number: policy for policy in Policy.objects.filter(project=acc.project, number__in=numbers)}
        created, _ = services.code_hits(
            actor=request.user,
            coder=request.user,
            node=data["node"],
            hits=[(policies[hit.number], hit.start, hit.end) for hit in hits],
            memo=data["memo"],
        )
        return Response(CodedHitsSerializer({"hits": len(hits), "created": created}).data)


def _comparison(acc: access.ProjectAccess, query: dict, level: str) -> agreement_data.Selection:
    """The selection of the agreement page from validated input; the coders are checked against
    the project's members here, so their errors name the field."""
    try:
        return agreement_data.parse_selection(
            acc.project,
            coders=query.get("coders") or agreement_data.default_coders(acc.project),
            level=level,
            unit=query.get("unit", ""),
            policies=query.get("policies", ""),
            jurisdiction=query.get("jurisdiction", ""),
            potency_level=query.get("potency_level", ""),
        )
    except DjangoValidationError as exc:
        raise serializers.ValidationError({"coders": exc.messages}) from None


def _users(selection: agreement_data.Selection) -> dict[str, object]:
    """The compared coders (not the consensus layer) by username, from one query."""
    users = get_user_model().objects.in_bulk([layer.user_id for layer in selection.coders])
    return {layer.key: users[layer.user_id] for layer in selection.coders}


class Agreement(ApiView, APIView):
    """Inter-coder agreement (supervisors and admins): the agreement page's figures per node,
    overall, per coder pair and per policy, over the policies every compared coder marked done."""

    @extend_schema(parameters=[AgreementQuerySerializer], responses=AgreementSerializer)
    def get(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
        query = validated(AgreementQuerySerializer, request.query_params)
        selection = _comparison(acc, query, query.get("level", ""))
        report = agreement_data.build_report(acc.project, selection)
        return Response(AgreementSerializer(_finite(report.as_dict())).data)


class Disagreements(ApiView, APIView):
    """The agreement page's drill-down (supervisors and admins): the clause × node decisions
    where the compared coders differ, each layer's coding side by side, and the decision once
    taken; by node, policy or coder pair. In policy, clause and codebook order."""

    @extend_schema(parameters=[DisagreementQuerySerializer, *PAGE_PARAMETERS], responses=DisagreementPageSerializer)
    def get(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
        query = validated(DisagreementQuerySerializer, request.query_params)
        selection = _comparison(acc, query, query["level"])
        dataset = agreement_data.load_dataset(acc.project, selection)
        try:
            filters = agreement_data.drilldown_filters(
                selection,
                dataset,
                at=query["level"],
                node=query.get("node"),
                policy=query.get("policy"),
                pair=query.get("pair"),
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        data = filters["data"]
        column, policy_pos, pair = filters["column"], filters["policy_pos"], filters["pair"]
        rows = data.disagreement_units(column=column, policy_pos=policy_pos, pair=pair)
        paginator = Pagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        clause_ids = dataset.clauses["clause_id"]
        units = [(int(clause_ids.iloc[unit]), data.columns[col]) for unit, col in page]
        views = agreement_data.describe_units(acc.project, selection, dataset.codebook, query["level"], units)
        body = {
            "count": paginator.page.paginator.count,
            "resolved": int(data.resolved[rows[:, 0], rows[:, 1]].sum()) if len(rows) else 0,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": views,
        }
        return Response(DisagreementPageSerializer(body).data)


class Adjudications(ApiView, APIView):
    """Decide a disagreement (supervisors and admins): the consensus layer then holds the accepted
    coding for the node in the clause (or nothing, or what you code anew), and the decision is
    recorded. Deciding again replaces the decision. Answers the disagreement as it now is."""

    @extend_schema(request=AdjudicationInputSerializer, responses=DisagreementSerializer)
    def post(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
        data = validated(AdjudicationInputSerializer, request.data, project=acc.project)
        selection = _comparison(acc, data, data["level"])
        users = _users(selection)
        scope = agreement_data.SCOPES[data["level"]]
        clause, node = data["clause"], data["node"]
        if data["decision"] == "anew":
            services.code_consensus_anew(
                actor=request.user,
                clause=clause,
                node=node,
                scope=scope,
                code_node=data["code_node"],
                start=data["start"],
                end=data["end"],
                memo=data["memo"],
            )
        else:
            accepted = None
            if data["decision"] == "accept":
                accepted = users.get(data["accepted"])
                if accepted is None:
                    raise serializers.ValidationError({"accepted": "Accept the coding of one of the compared coders."})
            services.adjudicate(
                actor=request.user,
                clause=clause,
                node=node,
                scope=scope,
                decision=data["decision"],
                coders=list(users.values()),
                accepted=accepted,
            )
        codebook = agreement_data.Codebook.load(acc.project)
        [view] = agreement_data.describe_units(acc.project, selection, codebook, data["level"], [(clause.pk, node.pk)])
        return Response(DisagreementSerializer(view).data)


class AdoptAgreed(ApiView, APIView):
    """Copy the coding every compared coder agrees on into the consensus layer (supervisors and
    admins): the first coder's passages, where the disagreement is not decided yet and the
    consensus holds nothing at the node. Running it again adds nothing."""

    @extend_schema(request=AdoptInputSerializer, responses=AdoptedSerializer)
    def post(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
        data = validated(AdoptInputSerializer, request.data)
        selection = _comparison(acc, data, data["level"])
        if selection.has_consensus:
            raise serializers.ValidationError(
                {"coders": "Compare coders only: it is their agreed coding that goes into the consensus."}
            )
        dataset = agreement_data.load_dataset(acc.project, selection)
        level = dataset.level(data["level"])
        clause_ids = dataset.clauses["clause_id"].to_numpy()
        units = [(int(clause_ids[unit]), level.columns[column]) for unit, column in level.agreed_units().tolist()]
        added = services.adopt_agreed_coding(
            actor=request.user,
            project=acc.project,
            units=units,
            scope=agreement_data.SCOPES[data["level"]],
            coders=list(_users(selection).values()),
        )
        return Response(AdoptedSerializer({"agreed": len(units), "added": added}).data)


# --- files in and out ----------------------------------------------------------------------
# The imports and downloads the pages offer, through the same readers (importing.py,
# codebook_io.py, refi.py), services and access rules. Uploads are multipart; a file over the
# page's limit is a 413, a file the reader refuses a 400 listing every problem, and nothing is
# written then.

MB = 1024 * 1024
MULTIPART_SLACK = MB  # room for the multipart framing and form fields around a file of the largest size
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Characters a file name may not bring into messages and audit rows (PostgreSQL refuses NUL in text).
_NAME_UNSAFE_RE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def _upload_name(upload) -> str:
    return _NAME_UNSAFE_RE.sub("", upload.name or "") or "upload"


def _file_problems(problems) -> serializers.ValidationError:
    return serializers.ValidationError({"file": [f"{problem}" for problem in problems]})


def _attachment(response: HttpResponse, filename: str) -> HttpResponse:
    # A slug is already safe in a header and a file name.
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class UploadView(ApiView, APIView):
    """An endpoint that takes a file (multipart/form-data), up to ``upload_limit`` bytes."""

    parser_classes = [MultiPartParser]

    def upload_limit(self) -> int:
        return settings.MAX_UPLOAD_MB * MB

    def body_limit(self) -> int:
        return self.upload_limit() + MULTIPART_SLACK

    def read_file(self, upload, name: str) -> bytes:
        limit = self.upload_limit()
        if upload.size > limit:
            raise PayloadTooLarge(
                f"{name} is {upload.size / MB:.1f} MB; uploads here may be at most {limit / MB:g} MB."
            )
        return upload.read()


class DownloadView(ApiView, APIView):
    """An endpoint that answers a file. Its errors are JSON whatever the Accept header asks for."""

    pagination_class = None

    def perform_content_negotiation(self, request, force: bool = False):
        renderer = JSONRenderer()
        return renderer, renderer.media_type


def _binary(description: str) -> OpenApiResponse:
    return OpenApiResponse(OpenApiTypes.BINARY, description=description)


class PolicyImport(UploadView):
    """Import policies from a file (admins), as the import page does: all or nothing, every
    problem located by file, row and column. With `dry_run` nothing is written and the answer
    is the preview: each policy with its clause count under `rule`."""

    @extend_schema(
        request={"multipart/form-data": PolicyImportSerializer},
        responses={
            201: OpenApiResponse(ImportedPoliciesSerializer, description="Imported."),
            200: OpenApiResponse(ImportPlanSerializer, description="The dry run: what the import would do."),
        },
    )
    def post(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        data = validated(PolicyImportSerializer, request.data)
        name = _upload_name(data["file"])
        content = self.read_file(data["file"], name)
        limits = importing.Limits.from_megabytes(settings.MAX_UPLOAD_MB)
        parsed = importing.read_upload(name, content, limits=limits, update=data["update"])
        options = {"project": acc.project, "parsed": parsed, "rule": data["rule"], "update": data["update"]}
        if data["dry_run"]:
            plan = services.plan_policy_import(**options)
            if plan.problems:
                raise _file_problems(plan.problems)
            return Response(ImportPlanSerializer(plan.summary()).data)
        try:
            result = services.import_policies(actor=request.user, **options)
        except services.ImportRefused as exc:
            raise _file_problems(exc.problems) from None
        body = {
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "clauses": result.clauses,
            "notices": parsed.notices,
        }
        return Response(ImportedPoliciesSerializer(body).data, status=status.HTTP_201_CREATED)


class CodebookImport(UploadView):
    """Import a codebook file into the codebook (admins), as the codebook page does: a path the
    codebook lacks is created, one it has gets the file's description, colour and shortcut. All
    or nothing."""

    def upload_limit(self) -> int:
        return codebook_io.MAX_CODEBOOK_BYTES

    @extend_schema(request={"multipart/form-data": CodebookImportSerializer}, responses=CodebookImportedSerializer)
    def post(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        data = validated(CodebookImportSerializer, request.data)
        name = _upload_name(data["file"])
        parsed = codebook_io.read_codebook(name, self.read_file(data["file"], name))
        if parsed.problems:
            raise _file_problems(parsed.problems)
        try:
            result = services.import_codebook(
                actor=request.user, project=acc.project, entries=parsed.entries, source=name
            )
        except services.ImportRefused as exc:
            raise _file_problems(exc.problems) from None
        return Response(CodebookImportedSerializer(result).data)


CODEBOOK_FORMAT = OpenApiParameter(
    "fmt", str, OpenApiParameter.PATH, enum=["json", "csv"], description="The file format."
)


CODEBOOK_FILES = "The codebook as nested JSON, or as CSV (path, description, colour, shortcut)."


class CodebookExport(DownloadView):
    """The codebook as a file, as the codebook page offers it: nested JSON or CSV (UTF-8 with a
    byte-order mark for Excel), which `nodes/import/` reads back."""

    @extend_schema(
        parameters=[CODEBOOK_FORMAT],
        responses={
            (200, "application/json"): OpenApiResponse(
                CodebookFileNodeSerializer(many=True), description=CODEBOOK_FILES
            ),
            (200, "text/csv"): _binary(CODEBOOK_FILES),
        },
    )
    def get(self, request, slug: str, fmt: str) -> HttpResponse:
        acc = access.get_project_for_user(request.user, slug)
        try:
            body, content_type, filename = codebook_io.export_file(
                Node.objects.for_project(acc.project), fmt, acc.project.slug
            )
        except ValueError as exc:
            raise Http404(str(exc)) from None
        return _attachment(HttpResponse(body, content_type=content_type), filename)


REFERENCES_FORMAT = OpenApiParameter(
    "fmt", str, OpenApiParameter.PATH, enum=["csv", "xlsx"], description="The file format."
)


REFERENCE_FILES = "CSV (UTF-8 with a byte-order mark) or an Excel workbook, by `fmt`."


class ReferenceExport(DownloadView):
    """The references you may see as a file, as `manage.py export_references` writes it (label,
    policy and title, clause, node path, layer, offsets, text, memo, created), with the filters
    of the reference list. With blind coding a coder's file holds their own layer only."""

    @extend_schema(
        parameters=[REFERENCES_FORMAT, ReferenceFilterSerializer],
        responses={
            (200, "text/csv"): _binary(REFERENCE_FILES),
            (200, XLSX): _binary(REFERENCE_FILES),
        },
    )
    def get(self, request, slug: str, fmt: str) -> HttpResponse:
        acc = access.get_project_for_user(request.user, slug)
        if fmt not in exports.FORMATS:
            raise Http404("Export the references as csv or xlsx.")
        references = _filtered_references(acc, request.query_params)
        rows = exports.reference_rows(references, stats.codebook(acc.project))
        filename = f"{acc.project.slug}-references.{fmt}"
        if fmt == "csv":
            response = StreamingHttpResponse(
                exports.csv_lines(exports.REFERENCE_COLUMNS, rows), content_type=exports.CONTENT_TYPES["csv"]
            )
            return _attachment(response, filename)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / filename
            exports.write_references(rows, path)
            content = path.read_bytes()
        return _attachment(HttpResponse(content, content_type=XLSX), filename)


class ProjectQdpx(DownloadView):
    """The project as a REFI-QDA project (.qdpx) for NVivo, ATLAS.ti, MAXQDA…: texts, codebook,
    every layer's coding and the policies' metadata (supervisors and admins, as on the page)."""

    @extend_schema(
        parameters=[QdpxQuerySerializer], responses={(200, "application/zip"): _binary("The .qdpx archive.")}
    )
    def get(self, request, slug: str) -> HttpResponse:
        acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
        query = validated(QdpxQuerySerializer, request.query_params.dict())
        out, content_type, filename = refi.export_download(acc.project, "nvivo.qdpx" if query["nvivo"] else "qdpx")
        return FileResponse(out, as_attachment=True, filename=filename, content_type=content_type)


class ProjectQdc(DownloadView):
    """The codebook as a REFI-QDA codebook (.qdc) (supervisors and admins, as on the page)."""

    @extend_schema(responses={(200, "application/xml"): _binary("The .qdc codebook.")})
    def get(self, request, slug: str) -> HttpResponse:
        acc = access.get_project_for_user(request.user, slug, roles=REVIEW_ROLES)
        try:
            out, content_type, filename = refi.export_download(acc.project, "qdc")
        except ValueError as exc:
            raise Http404(str(exc)) from None
        return FileResponse(out, as_attachment=True, filename=filename, content_type=content_type)


class RefiImport(UploadView):
    """Import a REFI-QDA file into this project (admins), as the interchange page does: codes
    become nodes, sources policies, the file's users coders (matched among the members), each
    coding one reference per clause its selection touches. All or nothing; the answer is the
    import report, kept in the audit trail."""

    @extend_schema(
        request={"multipart/form-data": RefiImportSerializer},
        responses={201: OpenApiResponse(RefiReportSerializer, description="Imported: the report.")},
    )
    def post(self, request, slug: str) -> Response:
        acc = access.get_project_for_user(request.user, slug, roles=ADMIN)
        data = validated(RefiImportSerializer, request.data)
        name = _upload_name(data["file"])
        content = self.read_file(data["file"], name)
        try:
            report = services.import_refi_upload(
                actor=request.user, project=acc.project, data=content, file_name=name, rule=data.get("rule")
            )
        except refi.RefiError as exc:
            raise serializers.ValidationError({"file": [str(exc)]}) from None
        body = RefiReportSerializer(report.as_dict() | {"id": report.event_id}).data
        return Response(body, status=status.HTTP_201_CREATED)


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
