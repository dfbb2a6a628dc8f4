"""The one way views, API endpoints and commands fetch project-scoped objects.

Every page, partial and endpoint starts with ``get_project_for_user`` (or one of the
helpers built on it). A user who is not a member gets 404, so a project's existence does
not leak; a member whose role may not act gets 403. Further lookups are scoped to the
project the helper returned, and reference visibility (blind coding) is decided here.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from coding.models import ALL_ROLES, REVIEW_ROLES, Event, Membership, Node, Policy, Project, Reference, Role


@dataclass(frozen=True)
class ProjectAccess:
    """A user's standing in one project, as decided on the server."""

    project: Project
    user: object
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def can_review(self) -> bool:
        """Supervisors and admins compare coders and see every layer."""
        return self.role in REVIEW_ROLES

    @property
    def sees_all_references(self) -> bool:
        return self.can_review or not self.project.blind_coding


def role_in_project(user, project: Project) -> str | None:
    """The user's role in ``project``; site superusers are admins everywhere."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    membership = Membership.objects.filter(project=project, user=user).only("role").first()
    return membership.role if membership else None


# The projects whose membership this user object was checked against in this request (the
# user object lives one request): services skip asking the database again for the same fact.
MEMBER_OF = "_policycoder_member_of"


def get_project_for_user(user, slug: str, *, roles: Collection[str] = ALL_ROLES) -> ProjectAccess:
    """Return the project ``slug`` and the user's role if it is one of ``roles``.

    Raise Http404 when the project does not exist or the user is not a member (the same
    answer for both, so outsiders learn nothing), PermissionDenied when the user is a
    member with a role that may not act here.
    """
    if not user.is_authenticated or not user.is_active:
        raise Http404("No such project.")
    if user.is_superuser:
        project = Project.objects.filter(slug=slug).first()
        role = Role.ADMIN
    else:
        membership = Membership.objects.select_related("project").filter(project__slug=slug, user=user).first()
        project = membership.project if membership else None
        role = membership.role if membership else None
    if project is None:
        raise Http404("No such project.")
    if role not in roles:
        raise PermissionDenied(f"Your role in this project ({role}) may not do this.")
    user.__dict__.setdefault(MEMBER_OF, set()).add(project.pk)
    return ProjectAccess(project=project, user=user, role=role)


def projects_for_user(user) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def get_policy(access: ProjectAccess, number: int) -> Policy:
    """A policy of the accessed project, by its number (never by database id)."""
    policy = Policy.objects.filter(project=access.project, number=number).first()
    if policy is None:
        raise Http404(f"Policy {number} does not exist in this project.")
    return policy


def get_node(access: ProjectAccess, node_id: int) -> Node:
    node = Node.objects.filter(project=access.project, pk=node_id).first()
    if node is None:
        raise Http404("No such node in this project.")
    return node


def visible_references(access: ProjectAccess) -> QuerySet[Reference]:
    """References the user may see in this project.

    With blind coding on, a coder sees only their own layer (not other coders', not the
    consensus); supervisors and admins see every layer.
    """
    qs = Reference.objects.filter(policy__project=access.project)
    if access.sees_all_references:
        return qs
    return qs.filter(coder=access.user, consensus=False)


def get_reference(access: ProjectAccess, reference_id: int, *, for_write: bool = False) -> Reference:
    """A reference the user may see (and, with ``for_write``, change).

    Coders change only their own layer; the consensus layer is changed by reviewers.
    """
    reference = visible_references(access).filter(pk=reference_id).first()
    if reference is None:
        raise Http404("No such reference.")
    if for_write:
        own = not reference.consensus and reference.coder_id == access.user.pk
        if not own and not (reference.consensus and access.can_review):
            raise PermissionDenied("You may change only your own references.")
    return reference


def may_change_reference(access: ProjectAccess, reference: Reference) -> bool:
    """Whether the user may change or delete ``reference`` (the rule ``get_reference``
    applies with ``for_write``): coders their own layer, reviewers the consensus layer."""
    if reference.consensus:
        return access.can_review
    return reference.coder_id == access.user.pk


def get_reference_deletion(access: ProjectAccess, event_id: int) -> Event:
    """The audit row of a reference deletion that the user may undo.

    The rules of ``get_reference(..., for_write=True)`` applied to the reference's state
    when it was deleted: a coder undoes deletions in their own layer, reviewers in the
    consensus layer; a deletion in a layer the user may not see is a 404 (blind coding).
    """
    event = Event.objects.filter(project=access.project, pk=event_id, action="reference.delete").first()
    if event is None or not event.before:
        raise Http404("No such deletion.")
    layer = event.before
    own = not layer.get("consensus") and layer.get("coder_id") == access.user.pk
    if not own and not access.sees_all_references:
        raise Http404("No such deletion.")
    if not own and not (layer.get("consensus") and access.can_review):
        raise PermissionDenied("You may restore only your own references.")
    return event
