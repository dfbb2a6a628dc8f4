"""The domain model of DESIGN.md: a study (Project), who may do what in it (Membership),
its documents (Policy, split into Clause units), its codebook (Node tree), the coding
itself (Reference, per coder or in the consensus layer), per-coder done marks, and the
audit trail (Event).

Invariants that span tables (a reference inside its clause, node and policy in one
project, clause offsets within the policy text) are enforced by database triggers in
migration 0002, so that no code path, including raw SQL and the admin, can break them.
Writes go through ``coding/services.py``, which also writes the audit trail.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Count, Q
from django.db.models.functions import Length

from coding.dates import ISO_PARTIAL, parse_partial_date


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    SUPERVISOR = "supervisor", "Supervisor"
    CODER = "coder", "Coder"


ALL_ROLES = frozenset(Role.values)
REVIEW_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR})
REFI_GUID_HELP = (
    "REFI-QDA GUID kept from an imported file, so re-exports keep its identity; "
    "empty for objects made here (their GUID is derived, see coding/refi.py)."
)


class PartialDateField(models.CharField):
    """ISO date text of the precision given: "2011", "2021-04" or "2021-04-28"."""

    default_validators = [RegexValidator(ISO_PARTIAL, "Enter a date as YYYY, YYYY-MM or YYYY-MM-DD.")]

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 10)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return ""
        try:
            return parse_partial_date(value) or ""
        except ValueError as exc:
            raise ValidationError(str(exc), code="invalid") from None


class Project(models.Model):
    slug = models.SlugField(unique=True, max_length=80)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    blind_coding = models.BooleanField(
        default=True, help_text="Coders see only their own references, so agreement means something."
    )
    stopwords = models.JSONField(
        null=True,
        blank=True,
        help_text="Words left out of word frequencies; empty means the default Chinese+English list.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MembershipQuerySet(models.QuerySet):
    def coders(self) -> MembershipQuerySet:
        return self.filter(role=Role.CODER)


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    refi_guid = models.UUIDField(null=True, blank=True, editable=False, help_text=REFI_GUID_HELP)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
            models.UniqueConstraint(fields=["project", "refi_guid"], name="membership_unique_refi_guid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"


class PolicyQuerySet(models.QuerySet):
    def for_project(self, project: Project) -> PolicyQuerySet:
        return self.filter(project=project)

    def with_clause_counts(self) -> PolicyQuerySet:
        return self.annotate(clause_count=Count("clauses", distinct=True))

    def done_by_all(self, coder_ids) -> PolicyQuerySet:
        """Policies every one of ``coder_ids`` marked done: the only ones agreement may use,
        since text a coder has not finished would count as agreement on absence."""
        coder_ids = list(coder_ids)
        if not coder_ids:
            return self.none()
        return self.annotate(
            _done_by=Count("done_marks", filter=Q(done_marks__coder_id__in=coder_ids), distinct=True)
        ).filter(_done_by=len(coder_ids))


class Policy(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="policies")
    number = models.PositiveIntegerField(help_text="The study's policy number, 1..N within the project.")
    title = models.CharField(max_length=500)
    potency_level = models.CharField(max_length=200, blank=True)
    release_departments = models.JSONField(default=list, blank=True)
    jurisdiction = models.CharField(max_length=100, blank=True)
    release_date = PartialDateField()
    implementation_date = PartialDateField()
    source_url = models.URLField(max_length=1000, blank=True)
    language = models.CharField(max_length=20, blank=True, default="zh")
    text = models.TextField(blank=True, help_text="Stored once, LF line endings; offsets count code points.")
    segmentation_rule = models.CharField(max_length=20, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    refi_guid = models.UUIDField(null=True, blank=True, editable=False, help_text=REFI_GUID_HELP)
    # Stored by the database, so the clause trigger compares with a number instead of counting
    # the characters of the whole text for every clause it checks.
    text_length = models.GeneratedField(
        expression=Length("text"), output_field=models.PositiveIntegerField(), db_persist=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PolicyQuerySet.as_manager()

    class Meta:
        ordering = ["project", "number"]
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="policy_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="policy_number_positive"),
            models.UniqueConstraint(fields=["project", "refi_guid"], name="policy_unique_refi_guid"),
        ]

    def __str__(self) -> str:
        return f"{self.number}. {self.title}"

    @property
    def release_year(self) -> int | None:
        return int(self.release_date[:4]) if self.release_date else None

    @property
    def has_text(self) -> bool:
        return bool(self.text)


class Clause(models.Model):
    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="clauses")
    number = models.PositiveIntegerField(help_text="0 is the preamble; 1..M follow the document's own numbering.")
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()

    class Meta:
        ordering = ["policy", "start"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "number"], name="clause_unique_number"),
            models.CheckConstraint(condition=Q(start__gte=0) & Q(end__gt=models.F("start")), name="clause_span_valid"),
        ]

    def __str__(self) -> str:
        return f"clause {self.number} of policy {self.policy_id}"

    def label_for(self, policy: Policy) -> str:
        return f"{policy.number}-{self.number}"

    def text_of(self, policy: Policy) -> str:
        return policy.text[self.start : self.end]


class NodeQuerySet(models.QuerySet):
    def for_project(self, project: Project) -> NodeQuerySet:
        return self.filter(project=project)


class Node(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="nodes")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Definition and when to use it.")
    colour = models.CharField(
        max_length=7, default="#ffe08a", validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use #rrggbb.")]
    )
    shortcut = models.CharField(max_length=1, blank=True)
    position = models.PositiveIntegerField(default=0)
    refi_guid = models.UUIDField(null=True, blank=True, editable=False, help_text=REFI_GUID_HELP)

    objects = NodeQuerySet.as_manager()

    class Meta:
        ordering = ["project", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"], condition=Q(parent__isnull=True), name="node_unique_root_name"
            ),
            models.UniqueConstraint(
                fields=["parent", "name"], condition=Q(parent__isnull=False), name="node_unique_child_name"
            ),
            models.UniqueConstraint(
                fields=["project", "shortcut"], condition=~Q(shortcut=""), name="node_unique_shortcut"
            ),
            models.UniqueConstraint(fields=["project", "refi_guid"], name="node_unique_refi_guid"),
        ]

    def __str__(self) -> str:
        return self.name


class ReferenceQuerySet(models.QuerySet):
    def for_policy(self, policy: Policy) -> ReferenceQuerySet:
        return self.filter(policy=policy)

    def by_coder(self, user) -> ReferenceQuerySet:
        return self.filter(coder=user, consensus=False)

    def consensus_layer(self) -> ReferenceQuerySet:
        return self.filter(consensus=True)


class Reference(models.Model):
    """One coded passage: a coder's (or the consensus layer's) node on a span of one clause."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="references")
    clause = models.ForeignKey(Clause, on_delete=models.PROTECT, related_name="references")
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="references")
    coder = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="references",
        help_text="The coder whose layer this is; empty for the consensus layer.",
    )
    consensus = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    text = models.TextField(help_text="Snapshot of the coded text when it was coded.")
    memo = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    refi_guid = models.UUIDField(null=True, blank=True, editable=False, help_text=REFI_GUID_HELP)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReferenceQuerySet.as_manager()

    class Meta:
        ordering = ["policy", "start", "end", "id"]
        indexes = [
            models.Index(fields=["policy", "coder"], name="reference_policy_coder"),
            models.Index(fields=["node", "coder"], name="reference_node_coder"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(start__gte=0) & Q(end__gt=models.F("start")), name="reference_span_valid"
            ),
            models.CheckConstraint(
                condition=(Q(consensus=True) & Q(coder__isnull=True)) | (Q(consensus=False) & Q(coder__isnull=False)),
                name="reference_layer_valid",
            ),
            models.UniqueConstraint(
                fields=["coder", "node", "clause", "start", "end"],
                condition=Q(consensus=False),
                name="reference_unique_per_coder",
            ),
            models.UniqueConstraint(
                fields=["node", "clause", "start", "end"],
                condition=Q(consensus=True),
                name="reference_unique_consensus",
            ),
            models.UniqueConstraint(fields=["policy", "refi_guid"], name="reference_unique_refi_guid"),
        ]

    def __str__(self) -> str:
        return f"reference {self.pk} [{self.start}, {self.end}) at {self.node_id}"


# ReferenceTally.layer values besides coders' user ids.
CONSENSUS_LAYER = 0
ALL_CODERS_LAYER = -1


class ReferenceTally(models.Model):
    """How many references one layer has at one node in one policy: what dashboards count from.

    ``layer`` is the coder's user id, ``CONSENSUS_LAYER`` for the consensus layer, or
    ``ALL_CODERS_LAYER`` for every coder's references together (kept as well, so that the
    reviewers' usual view reads its rows as they are instead of summing the coders' rows).
    Database triggers (migration 0004) keep the table equal to a recount of ``Reference`` in the
    same transaction as every insert, update and delete of a reference, whatever writes it
    (services, bulk imports, raw SQL, the admin); a row whose count falls to zero is deleted, so
    each row is one policy coded at that node in that layer. Never written by application code.
    """

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="+")
    # Only deleting a node looks tally rows up by node, and a node with references cannot be
    # deleted: an index on node would cost every write and serve nothing.
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="+", db_index=False)
    layer = models.BigIntegerField(help_text="The coder's user id, 0 for the consensus layer, -1 for all coders.")
    reference_count = models.PositiveIntegerField()

    class Meta:
        constraints = [
            # Also the dashboards' index: a layer's rows are one range, in (node, policy) order.
            # On PostgreSQL migration 0004 makes it covering (INCLUDE reference_count), so
            # dashboards read the counts from the index alone.
            models.UniqueConstraint(fields=["layer", "node", "policy"], name="referencetally_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.reference_count} reference(s) at node {self.node_id} in policy {self.policy_id}"


class DoneMark(models.Model):
    """A coder's statement that they finished coding one policy."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="done_marks")
    coder = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="done_marks")
    marked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["policy", "coder"], name="donemark_unique")]

    def __str__(self) -> str:
        return f"{self.coder} done with policy {self.policy_id}"


class Adjudication(models.Model):
    """A supervisor's decision on one disagreement: what the consensus layer holds for one
    node in one clause. ``neither`` leaves the consensus empty there and is still recorded,
    so that progress can count the disagreement as resolved.

    ``scope`` says what "the node" meant when deciding: the node as coded (sub-node level)
    or the node with everything under it (tree-node level), since a tree node's disagreement
    covers its sub-nodes' references.
    """

    class Decision(models.TextChoices):
        ACCEPT = "accept", "Accepted one coder's coding"
        BOTH = "both", "Accepted every compared coder's coding"
        NEITHER = "neither", "Neither: not coded"
        ANEW = "anew", "Coded anew"

    class Scope(models.TextChoices):
        NODE = "node", "The node as coded"
        SUBTREE = "subtree", "The node and its sub-nodes"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="adjudications")
    clause = models.ForeignKey(Clause, on_delete=models.CASCADE, related_name="adjudications")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="adjudications")
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.NODE)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    accepted_coder = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clause", "node", "scope"], name="adjudication_unique_unit"),
            models.CheckConstraint(
                condition=Q(decision__in=["accept", "both", "neither", "anew"]), name="adjudication_decision_valid"
            ),
            models.CheckConstraint(condition=Q(scope__in=["node", "subtree"]), name="adjudication_scope_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.decision} for node {self.node_id} in clause {self.clause_id}"


class Event(models.Model):
    """Audit trail: who changed what, when, with the state before and after."""

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    action = models.CharField(max_length=60)
    target_type = models.CharField(max_length=40)
    target_id = models.BigIntegerField(null=True, blank=True)
    target_label = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "created_at"], name="event_project_time")]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id} by {self.actor_id}"


class ImportUpload(models.Model):
    """A file an admin uploaded on the import page, kept until they confirm the preview.

    Kept in the database rather than on local disk so that whichever web process serves
    the confirmation can read it; emptied once imported. Each admin has at most one pending
    upload per project (a new upload replaces it).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IMPORTED = "imported", "Imported"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_uploads")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="import_uploads"
    )
    name = models.CharField(max_length=255)
    data = models.BinaryField()
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    rule = models.CharField(max_length=20)
    update = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    summary = models.JSONField(default=dict, help_text="The preview shown before confirming.")
    created_at = models.DateTimeField(auto_now_add=True)
    imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.status}) for {self.project}"
