"""What the API reads out (ModelSerializers over annotated querysets) and what it accepts
(plain Serializers whose validated data a view hands to a service in ``coding/services.py``;
none of them saves anything itself).

Offsets are code points of the policy text, as everywhere on the server. Policies are
addressed by number, clauses by number within their policy (label ``policy-clause``),
nodes and references by id.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from coding.agreement_data import parse_numbers
from coding.dashboard_query import MAX_QUERY_LENGTH, SEARCH_MODES, WORD_BOUNDS, WORD_DEFAULTS, compile_query
from coding.history import ACTION_PATTERN
from coding.models import Clause, Event, Membership, Node, Policy, Project, Reference, Role
from coding.segmentation import RULES
from coding.services import POLICY_FIELDS, normalise_text

# PostgreSQL's integer: anything larger is bad input to refuse, not a value to send to the database.
MAX_INT = 2_147_483_647


def policy_by_number(project: Project, number: int) -> Policy:
    """The project's policy ``number``, or a 400 on the field ``policy``."""
    policy = Policy.objects.filter(project=project, number=number).first()
    if policy is None:
        raise serializers.ValidationError({"policy": f"Policy {number} does not exist in this project."})
    return policy


def clause_by_number(policy: Policy, number: int) -> Clause:
    """Clause ``number`` of ``policy`` (its ``policy`` set to it), or a 400 on the field ``clause``."""
    clause = Clause.objects.filter(policy=policy, number=number).first()
    if clause is None:
        raise serializers.ValidationError({"clause": f"Policy {policy.number} has no clause {number}."})
    clause.policy = policy
    return clause


# --- output --------------------------------------------------------------------------------


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.ChoiceField(choices=Role.choices, read_only=True, help_text="Your role in the project.")

    class Meta:
        model = Project
        fields = ["slug", "name", "description", "blind_coding", "role"]


class EventSerializer(serializers.ModelSerializer):
    """One row of the audit trail: who did what to which object, with its state before and after."""

    actor = serializers.CharField(
        source="actor.username", allow_null=True, help_text="The username; null for a command or a deleted account."
    )
    target_label = serializers.CharField(help_text="The object as named when it changed, e.g. `23-4` for a clause.")
    policy = serializers.SerializerMethodField(
        help_text="The number of the policy the change concerns (its clause, reference, done mark…), if that policy "
        "still exists."
    )
    before = serializers.JSONField(allow_null=True, help_text="The fields before the change; null for a creation.")
    after = serializers.JSONField(allow_null=True, help_text="The fields after the change; null for a deletion.")

    class Meta:
        model = Event
        fields = ["id", "created_at", "actor", "action", "target_type", "target_id", "target_label", "policy"]
        fields += ["before", "after"]
        read_only_fields = fields

    def get_policy(self, event: Event) -> int | None:
        return self.context["policies"].get(event.pk)


class ClauseSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="0 is the preamble; otherwise the document's own number.")
    label = serializers.CharField(help_text="`{policy number}-{clause number}`, e.g. `23-4`.")
    start = serializers.IntegerField(help_text="Code-point offset into the policy text (inclusive).")
    end = serializers.IntegerField(help_text="Code-point offset into the policy text (exclusive).")
    text = serializers.CharField()


class PolicySerializer(serializers.ModelSerializer):
    release_departments = serializers.ListField(child=serializers.CharField())
    attributes = serializers.DictField()
    text_length = serializers.IntegerField(read_only=True, help_text="Length of the text in code points.")
    clause_count = serializers.IntegerField(read_only=True)
    done = serializers.BooleanField(read_only=True, help_text="Whether you marked this policy done.")

    class Meta:
        model = Policy
        # The metadata the services keep (and audit), so a new field shows here without a second list.
        fields = [*POLICY_FIELDS, "text_length", "clause_count", "done"]


class PolicyDetailSerializer(PolicySerializer):
    clauses = serializers.SerializerMethodField()

    class Meta(PolicySerializer.Meta):
        fields = [*PolicySerializer.Meta.fields, "text", "clauses"]

    @extend_schema_field(ClauseSerializer(many=True))
    def get_clauses(self, policy: Policy) -> list[dict]:
        rows = [clause_row(clause, policy) for clause in Clause.objects.filter(policy=policy).order_by("start")]
        return ClauseSerializer(rows, many=True).data


def clause_row(clause: Clause, policy: Policy) -> dict:
    """What ClauseSerializer shows of ``clause`` of ``policy``."""
    return {
        "number": clause.number,
        "label": clause.label_for(policy),
        "start": clause.start,
        "end": clause.end,
        "text": clause.text_of(policy),
    }


class DoneSerializer(serializers.Serializer):
    policy = serializers.IntegerField(help_text="The policy number.")
    done = serializers.BooleanField()
    marked_at = serializers.DateTimeField()


class NodeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Node
        fields = ["id", "parent", "name", "description", "colour", "shortcut", "position"]


class NodeTreeSerializer(serializers.Serializer):
    """A node with its sub-nodes, recursively."""

    id = serializers.IntegerField()
    parent = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    description = serializers.CharField()
    colour = serializers.CharField()
    shortcut = serializers.CharField()
    position = serializers.IntegerField()

    def get_fields(self):
        fields = super().get_fields()
        # Declared here because a class cannot name itself in its own body.
        fields["children"] = NodeTreeSerializer(many=True)
        return fields


def reference_rows(queryset: QuerySet[Reference]) -> QuerySet[Reference]:
    """References with the related values ReferenceSerializer shows, in the same query."""
    return queryset.annotate(
        policy_number=F("policy__number"),
        clause_number=F("clause__number"),
        node_name=F("node__name"),
        coder_username=F("coder__username"),
        created_by_username=F("created_by__username"),
    )


# Instances must come from ``reference_rows`` (the related values are annotations).
class ReferenceSerializer(serializers.ModelSerializer):
    """A coded passage: a node on a span of one clause, in a coder's layer or the consensus layer."""

    policy = serializers.IntegerField(source="policy_number", help_text="The policy number.")
    clause = serializers.IntegerField(source="clause_number", help_text="The clause number within the policy.")
    label = serializers.SerializerMethodField(help_text="`{policy number}-{clause number}`.")
    node = serializers.IntegerField(source="node_id")
    node_name = serializers.CharField()
    coder = serializers.CharField(
        source="coder_username", allow_null=True, help_text="The coder's username; null in the consensus layer."
    )
    created_by = serializers.CharField(source="created_by_username")

    class Meta:
        model = Reference
        fields = [
            "id",
            "policy",
            "clause",
            "label",
            "node",
            "node_name",
            "coder",
            "consensus",
            "start",
            "end",
            "text",
            "memo",
            "version",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_label(self, reference: Reference) -> str:
        return f"{reference.policy_number}-{reference.clause_number}"


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    current = ReferenceSerializer(allow_null=True, help_text="The reference as it is now.")


# --- input ---------------------------------------------------------------------------------


class ProjectCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=80, help_text="Short name used in addresses, e.g. `smart-city`; fixed.")
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, required=False, default="")
    blind_coding = serializers.BooleanField(
        default=True, help_text="Coders see only their own references (recommended; the default)."
    )


class ProjectUpdateSerializer(serializers.Serializer):
    """Any of the project's name, description and blind coding; the slug stays."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True)
    blind_coding = serializers.BooleanField(
        help_text="Off: coders see every coder's references and the consensus layer, as reviewers do."
    )

    def validate(self, data: dict) -> dict:
        if "slug" in self.initial_data:
            raise serializers.ValidationError({"slug": "The slug cannot change: addresses and API calls use it."})
        if not data:
            raise serializers.ValidationError("Give at least one of name, description and blind_coding.")
        return data


# Input that a PATCH sends whole: its required fields stay required. DRF and drf-spectacular
# make every PATCH body partial; without this the schema would call `version` or `role` optional
# while the view refuses a body without them. (A comment: a docstring would become the schema's
# description of every such body.)
class WholeInputSerializer(serializers.Serializer):
    @property
    def partial(self) -> bool:
        return False

    @partial.setter
    def partial(self, value: bool) -> None:
        pass


class ProjectNodeField(serializers.PrimaryKeyRelatedField):
    """A node id of the project in the serializer's context; any other id is 'not found',
    so a node of another project looks exactly like one that does not exist."""

    default_error_messages = {
        "does_not_exist": "Node {pk_value} is not in this project's codebook.",
        "incorrect_type": "Give a node id (a whole number), not {data_type}.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("pk_field", serializers.IntegerField(min_value=1, max_value=MAX_INT))
        super().__init__(queryset=Node.objects.none(), **kwargs)

    def get_queryset(self) -> QuerySet[Node]:
        return Node.objects.filter(project=self.context["project"])


# A policy's metadata as input: every field of services.POLICY_FIELDS except segmentation_rule,
# which only segmenting sets (a test holds the two lists together).
class PolicyMetadataSerializer(serializers.Serializer):
    number = serializers.IntegerField(
        min_value=1,
        max_value=MAX_INT,
        required=False,
        help_text="Unique in the project; a new policy gets the next free number by default.",
    )
    title = serializers.CharField(max_length=500)
    potency_level = serializers.CharField(max_length=200, allow_blank=True, required=False)
    release_departments = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    jurisdiction = serializers.CharField(max_length=100, allow_blank=True, required=False)
    release_date = serializers.CharField(
        max_length=10, allow_blank=True, required=False, help_text="YYYY, YYYY-MM or YYYY-MM-DD."
    )
    implementation_date = serializers.CharField(
        max_length=10, allow_blank=True, required=False, help_text="YYYY, YYYY-MM or YYYY-MM-DD."
    )
    source_url = serializers.URLField(max_length=1000, allow_blank=True, required=False)
    language = serializers.CharField(max_length=20, allow_blank=True, required=False)
    attributes = serializers.DictField(required=False, help_text="Free-form classifications, e.g. for crosstabs.")


class PolicyCreateSerializer(PolicyMetadataSerializer):
    """A new policy: its metadata, and the text to segment into clauses under ``rule``."""

    text = serializers.CharField(
        allow_blank=True,
        required=False,
        trim_whitespace=False,
        help_text="The full text. CRLF and CR line ends are stored as LF, so read offsets back from the clauses. "
        "Without a text the policy is a catalogue entry.",
    )
    rule = serializers.ChoiceField(choices=RULES, default="article", help_text="Segmentation rule for the clauses.")

    def validate_text(self, value: str) -> str:
        return normalise_text(value)  # the service stores it so too; validated here so errors name the field


class PolicyUpdateSerializer(PolicyMetadataSerializer):
    """Metadata to change, any of the fields: the text has its own endpoint (``text/``), and the
    clauses change with ``resegment/`` and the clause endpoints."""

    ELSEWHERE = {
        "text": "Change the text with POST …/policies/<number>/text/.",
        "rule": "Segment the text anew with POST …/policies/<number>/resegment/.",
        "segmentation_rule": "Segment the text anew with POST …/policies/<number>/resegment/.",
    }

    def validate(self, data: dict) -> dict:
        # Said rather than ignored, as DRF would: a client sending the text here expects it changed.
        misplaced = {name: message for name, message in self.ELSEWHERE.items() if name in self.initial_data}
        if misplaced:
            raise serializers.ValidationError(misplaced)
        if not data:
            raise serializers.ValidationError("Give at least one field to change.")
        return data


class PolicyTextSerializer(serializers.Serializer):
    text = serializers.CharField(
        allow_blank=True,
        trim_whitespace=False,
        help_text="The full text; CRLF and CR line ends are stored as LF. An empty text makes the policy a "
        "catalogue entry without clauses.",
    )
    rule = serializers.ChoiceField(
        choices=RULES, required=False, help_text="Segmentation rule; default: the policy's current one (or article)."
    )

    def validate_text(self, value: str) -> str:
        return normalise_text(value)


class ResegmentSerializer(serializers.Serializer):
    rule = serializers.ChoiceField(choices=RULES, help_text="Segmentation rule for the clauses.")


class ClauseUpdateSerializer(WholeInputSerializer):
    """New bounds for a clause: code-point offsets into the policy text."""

    start = serializers.IntegerField(min_value=0, max_value=MAX_INT, help_text="Inclusive.")
    end = serializers.IntegerField(min_value=1, max_value=MAX_INT, help_text="Exclusive.")

    def validate(self, data: dict) -> dict:
        length = len(self.context["policy"].text)
        if data["start"] >= data["end"]:
            raise serializers.ValidationError({"end": f"end ({data['end']}) must be after start ({data['start']})."})
        if data["end"] > length:
            raise serializers.ValidationError({"end": f"end ({data['end']}) lies past the text's end ({length})."})
        return data


class ClauseSplitSerializer(serializers.Serializer):
    at = serializers.IntegerField(
        min_value=0,
        max_value=MAX_INT,
        help_text="Code-point offset into the policy text, strictly inside the clause: the second part starts "
        "there (white space at the cut belongs to neither part).",
    )

    def validate_at(self, value: int) -> int:
        clause = self.context["clause"]
        if not clause.start < value < clause.end:
            raise serializers.ValidationError(
                f"Clause {self.context['label']} spans [{clause.start}, {clause.end}); split it at an offset "
                "strictly inside that."
            )
        return value


class NodeInputSerializer(serializers.Serializer):
    """A new node, or (partially) the changes to one; ``parent: null`` is the top level."""

    name = serializers.CharField(max_length=200)
    parent = ProjectNodeField(allow_null=True, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    colour = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False, help_text="#rrggbb")
    shortcut = serializers.CharField(max_length=1, allow_blank=True, required=False, trim_whitespace=False)
    position = serializers.IntegerField(min_value=0, max_value=MAX_INT, required=False)

    def validate(self, data: dict) -> dict:
        if self.partial and not data:
            raise serializers.ValidationError("Give at least one field to change.")
        return data


class NodeMergeSerializer(serializers.Serializer):
    into = ProjectNodeField(help_text="The node that receives this node's references and sub-nodes.")


class ReferenceCreateSerializer(serializers.Serializer):
    """Code a whole clause (``clause``), a span of one clause (``clause`` with ``start``/``end``),
    or a selection that may cross clauses (``start``/``end`` alone: one reference per clause)."""

    policy = serializers.IntegerField(min_value=1, max_value=MAX_INT, help_text="The policy number.")
    clause = serializers.IntegerField(
        min_value=0, max_value=MAX_INT, required=False, help_text="The clause number within the policy."
    )
    start = serializers.IntegerField(
        min_value=0, max_value=MAX_INT, required=False, help_text="Code-point offset into the policy text."
    )
    end = serializers.IntegerField(
        min_value=0, max_value=MAX_INT, required=False, help_text="Code-point offset into the policy text (exclusive)."
    )
    node = ProjectNodeField()
    memo = serializers.CharField(allow_blank=True, required=False, default="", trim_whitespace=False)
    consensus = serializers.BooleanField(
        default=False, help_text="Code in the consensus layer instead of your own (supervisors and admins)."
    )

    def validate(self, data: dict) -> dict:
        project = self.context["project"]
        has_start, has_end = "start" in data, "end" in data
        if has_start != has_end:
            missing = "end" if has_start else "start"
            raise serializers.ValidationError({missing: "Give both start and end, or neither."})
        if "clause" not in data and not has_start:
            raise serializers.ValidationError({"clause": "Give a clause number, offsets (start and end), or both."})
        data["policy"] = policy = policy_by_number(project, data["policy"])
        if "clause" in data:
            data["clause"] = clause_by_number(policy, data["clause"])
        return data


class ReferenceUpdateSerializer(WholeInputSerializer):
    version = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, help_text="The version you read; a stale one gets 409."
    )
    node = ProjectNodeField(required=False)
    memo = serializers.CharField(allow_blank=True, required=False, trim_whitespace=False)

    def validate(self, data: dict) -> dict:
        if "node" not in data and "memo" not in data:
            raise serializers.ValidationError("Give the node or the memo to change.")
        return data


class VersionQuerySerializer(serializers.Serializer):
    version = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, help_text="The version you read; a stale one gets 409."
    )


class DeletedSerializer(serializers.Serializer):
    deletion = serializers.IntegerField(
        allow_null=True,
        help_text="The deletion's id in the audit trail: POST it to `references/restore/` to undo. Null when "
        "another request deleted the reference at the same moment (that one holds the undo).",
    )


class RestoreSerializer(serializers.Serializer):
    deletion = serializers.IntegerField(
        min_value=1,
        max_value=MAX_INT,
        help_text="The id a `DELETE …/references/<id>/` answered: undoes it, in your own layer (supervisors and "
        "admins: also the consensus layer).",
    )


# Query parameters arrive as text; these are validated from a plain dict (``query_params.dict()``),
# since DRF reads a missing boolean in a QueryDict as an unticked checkbox, i.e. False.


class PolicyFilterSerializer(serializers.Serializer):
    jurisdiction = serializers.CharField(required=False, max_length=100)
    year = serializers.IntegerField(required=False, min_value=1, max_value=9999, help_text="Release year.")
    potency_level = serializers.CharField(required=False, max_length=200)
    done = serializers.BooleanField(
        required=False, help_text="Only policies you have (true) or have not (false) marked done."
    )


LABEL_RE = re.compile(r"([0-9]{1,10})-([0-9]{1,10})")


class ReferenceFilterSerializer(serializers.Serializer):
    policy = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INT, help_text="Policy number.")
    clause = serializers.CharField(
        required=False, help_text="Clause label `{policy number}-{clause number}`, e.g. `23-4`."
    )
    node = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INT, help_text="Node id.")
    coder = serializers.CharField(required=False, max_length=150, help_text="The coder's username.")
    layer = serializers.ChoiceField(
        required=False, choices=["coder", "consensus"], help_text="Coders' layers or the consensus layer."
    )

    def validate_clause(self, value: str) -> tuple[int, int]:
        match = LABEL_RE.fullmatch(value)
        if not match or max(int(match[1]), int(match[2])) > MAX_INT:
            raise serializers.ValidationError(f"{value!r} is not a clause label like 23-4.")
        return int(match[1]), int(match[2])


# Empty filters filter nothing, as on the history page (whose form sends every field).
class EventFilterSerializer(serializers.Serializer):
    actor = serializers.CharField(required=False, allow_blank=True, max_length=150, help_text="The actor's username.")
    action = serializers.RegexField(
        ACTION_PATTERN,
        required=False,
        allow_blank=True,
        max_length=81,
        help_text="Exact (`reference.create`), or an area ending in a dot (`reference.`): every action of it.",
        error_messages={"invalid": "Give an action such as reference.create, or an area such as reference."},
    )
    target = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=300,
        help_text="A policy number (`23`: the policy and its clauses, references, decisions and done marks), a "
        "clause label (`23-4`), or text within the target's label (e.g. a node's name).",
    )


# --- figures: the dashboard's distribution and the agreement page ----------------------------


def _check_numbers_fit(value: str) -> str:
    if any(int(n) > MAX_INT for n in re.findall(r"[0-9]+", value)):
        raise serializers.ValidationError(f"Policy numbers go up to {MAX_INT}.")
    return value


class DashboardFilterSerializer(serializers.Serializer):
    """The dashboards' policy filters: checked here as API input, then read by the pages' own
    form (``coding/forms.py``), so the API and the pages count alike."""

    jurisdiction = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    potency = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, help_text="Potency levels."
    )
    department = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, help_text="Release departments."
    )
    year_from = serializers.IntegerField(required=False, min_value=1000, max_value=9999)
    year_to = serializers.IntegerField(required=False, min_value=1000, max_value=9999)
    attr = serializers.CharField(required=False, max_length=1000, help_text="Attributes: `key=value;key=value`.")
    policies = serializers.CharField(required=False, max_length=2000, help_text="Policy numbers, e.g. `1-5, 8`.")

    def validate_policies(self, value: str) -> str:
        return _check_numbers_fit(value)


LAYER_HELP = (
    "Repeat for several: a member's user id, `coders` (all coders) or `consensus`. Default: your own layer for "
    "a coder, all coders for a reviewer. With blind coding a coder reads only their own."
)


class DistributionQuerySerializer(DashboardFilterSerializer):
    layer = serializers.ListField(child=serializers.CharField(max_length=50), required=False, help_text=LAYER_HELP)
    mode = serializers.ChoiceField(
        choices=["sum", "side"], required=False, help_text="Several layers summed (default) or side by side."
    )
    by = serializers.CharField(
        required=False,
        max_length=200,
        help_text="A crosstab across a policy attribute instead: jurisdiction, year, potency_level, "
        "department or attr:<key>.",
    )
    measure = serializers.ChoiceField(choices=["references", "policies"], required=False, help_text="Crosstab only.")
    percent = serializers.ChoiceField(
        choices=["count", "row", "column", "total"], required=False, help_text="Crosstab only."
    )


class LayerSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()


class LayerTotalSerializer(serializers.Serializer):
    layer = serializers.CharField(help_text="The layer's key, or `sum` for layers summed.")
    references = serializers.IntegerField()
    policies = serializers.IntegerField(help_text="Policies coded at any node.")


class DistributionRowSerializer(serializers.Serializer):
    layer = serializers.CharField(help_text="The layer's key, or `sum` for layers summed.")
    level = serializers.IntegerField(help_text="1 for a tree node, 2 for a sub-node.")
    node_id = serializers.IntegerField()
    node = serializers.CharField()
    path = serializers.CharField()
    tree = serializers.CharField(help_text="The tree node it belongs to.")
    references = serializers.IntegerField()
    share = serializers.FloatField(
        allow_null=True,
        help_text="Of all references (tree node) or of its tree node's references (sub-node), "
        "as a fraction; null when that whole is 0.",
    )
    policies = serializers.IntegerField(help_text="Policies coded at the node.")


class CrosstabRowSerializer(serializers.Serializer):
    level = serializers.IntegerField(help_text="1 tree node, 2 sub-node, 0 the Total row.")
    node_id = serializers.IntegerField()
    path = serializers.CharField()
    cells = serializers.DictField(child=serializers.FloatField(allow_null=True), help_text="Figure per value.")
    total = serializers.FloatField(allow_null=True, help_text="Across values (a policy counts once).")


class CrosstabSerializer(serializers.Serializer):
    by = serializers.CharField()
    measure = serializers.CharField()
    percent = serializers.CharField()
    values = serializers.ListField(child=serializers.CharField())
    rows = CrosstabRowSerializer(many=True)


class DistributionSerializer(serializers.Serializer):
    """The dashboard's figures: the distribution over the codebook, or with ``by`` a crosstab."""

    available_layers = LayerSerializer(many=True, help_text="The layers you may read.")
    layers = LayerSerializer(many=True, help_text="The layers counted.")
    side_by_side = serializers.BooleanField()
    totals = LayerTotalSerializer(many=True)
    distribution = DistributionRowSerializer(many=True, allow_null=True, help_text="Null for a crosstab.")
    crosstab = CrosstabSerializer(allow_null=True, help_text="Null without `by`.")


class ComparisonSerializer(serializers.Serializer):
    """Whose coding to compare, and over which policies: the agreement page's selection."""

    coders = serializers.ListField(
        child=serializers.CharField(max_length=1000),
        required=False,
        help_text="Usernames (comma-separated or repeated) and `consensus` for the consensus layer; "
        "two or more. Default: the project's coders.",
    )
    unit = serializers.ChoiceField(choices=["clause", "character"], required=False)
    policies = serializers.CharField(required=False, max_length=2000, help_text="Policy numbers, e.g. `1-10, 15`.")
    jurisdiction = serializers.CharField(required=False, max_length=100)
    potency_level = serializers.CharField(required=False, max_length=200)

    def validate_policies(self, value: str) -> str:
        _check_numbers_fit(value)
        try:
            parse_numbers(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return value


class AgreementQuerySerializer(ComparisonSerializer):
    """The agreement page's query parameters."""

    level = serializers.ChoiceField(choices=["sub", "tree", "both"], required=False)


LEVEL_HELP = "Sub-nodes as coded (`sub`, the default) or tree nodes with their sub-nodes rolled up (`tree`)."


class DisagreementQuerySerializer(ComparisonSerializer):
    """The agreement page's drill-down: the clauses behind a figure."""

    level = serializers.ChoiceField(choices=["sub", "tree"], default="sub", help_text=LEVEL_HELP)
    node = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT, help_text="Only this node's disagreements (a node id)."
    )
    policy = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT, help_text="Only this policy's (a policy number)."
    )
    pair = serializers.CharField(
        required=False, max_length=1000, help_text="Only where these two of the compared coders differ: `a,b`."
    )


class AdjudicationInputSerializer(serializers.Serializer):
    """One decision on a disagreement: what the consensus layer holds for ``node`` in a clause."""

    coders = serializers.ListField(
        child=serializers.CharField(max_length=1000),
        required=False,
        help_text="The compared coders' usernames (comma-separated or repeated), as in the drill-down. "
        "Default: the project's coders.",
    )
    level = serializers.ChoiceField(
        choices=["sub", "tree"],
        default="sub",
        help_text="`sub`: the node as coded; `tree`: the node with its sub-nodes (a tree-node disagreement).",
    )
    policy = serializers.IntegerField(min_value=1, max_value=MAX_INT, help_text="The policy number.")
    clause = serializers.IntegerField(min_value=0, max_value=MAX_INT, help_text="The clause number in the policy.")
    node = ProjectNodeField(help_text="The node the coders disagree on.")
    decision = serializers.ChoiceField(
        choices=["accept", "both", "neither", "anew"],
        help_text="`accept` one coder's coding (`accepted`), `both`: every compared coder's, `neither`, or "
        "code it `anew` (`code_node`, `start`, `end`, `memo`).",
    )
    accepted = serializers.CharField(
        required=False, max_length=150, help_text="With `accept`: the username whose coding to accept."
    )
    code_node = ProjectNodeField(
        required=False, help_text="With `anew`: the node to code at (`node`, or at tree level one of its sub-nodes)."
    )
    start = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_INT, help_text="With `anew`: code-point offset into the text."
    )
    end = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_INT, help_text="With `anew`: code-point offset (exclusive)."
    )
    memo = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)

    def validate(self, data: dict) -> dict:
        if data["decision"] == "accept" and not data.get("accepted"):
            raise serializers.ValidationError({"accepted": "Say whose coding to accept (a username)."})
        if data["decision"] == "anew":
            missing = [name for name in ("code_node", "start", "end") if name not in data]
            if missing:
                raise serializers.ValidationError(dict.fromkeys(missing, "Coding anew needs this."))
        policy = policy_by_number(self.context["project"], data["policy"])
        data["clause"] = clause_by_number(policy, data["clause"])
        return data


class AdoptInputSerializer(ComparisonSerializer):
    """Copy the coding every compared coder agrees on, at ``level``, into the consensus layer."""

    level = serializers.ChoiceField(choices=["sub", "tree"], default="sub", help_text=LEVEL_HELP)


class AdoptedSerializer(serializers.Serializer):
    agreed = serializers.IntegerField(help_text="Clause × node decisions where every compared coder agrees.")
    added = serializers.IntegerField(
        help_text="References copied into the consensus layer (decided or already copied ones are left as they are)."
    )


class AgreementSelectionSerializer(serializers.Serializer):
    coders = serializers.ListField(child=serializers.CharField())
    level = serializers.CharField()
    unit = serializers.CharField()
    policies = serializers.CharField()


class CoverageSerializer(serializers.Serializer):
    considered = serializers.IntegerField()
    compared = serializers.IntegerField(help_text="Policies every compared coder marked done.")
    left_out = serializers.IntegerField()
    clauses = serializers.IntegerField()
    reasons = serializers.ListField(child=serializers.CharField())


class AgreementSerializer(serializers.Serializer):
    """The agreement page's figures (supervisors and admins)."""

    selection = AgreementSelectionSerializer()
    coverage = CoverageSerializer()
    levels = serializers.DictField(
        child=serializers.DictField(child=serializers.ListField(child=serializers.DictField())),
        help_text="Per level (`sub`, `tree`): the tables `nodes`, `overall`, `pairs` and `policies` as rows, "
        "as in the page's CSV downloads; a figure that cannot be computed is null, with the reason in `notes`.",
    )


# --- the agreement drill-down and adjudication -------------------------------------------------
# Read from agreement_data's UnitView / LayerView / Segment dataclasses, as the page shows them.


class SegmentSerializer(serializers.Serializer):
    start = serializers.IntegerField(help_text="Code-point offset into the policy text.")
    end = serializers.SerializerMethodField(help_text="Code-point offset (exclusive).")
    text = serializers.CharField()
    nodes = serializers.ListField(child=serializers.CharField(), help_text="Paths of the nodes coded on it.")
    focus = serializers.BooleanField(help_text="Whether one of them is the compared node.")

    def get_end(self, segment) -> int:
        return segment.start + len(segment.text)


class LayerViewSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The coder's username, or `consensus`.")
    consensus = serializers.BooleanField(source="is_consensus")
    applied = serializers.BooleanField(help_text="Whether this layer applied the compared node to the clause.")
    nodes = serializers.ListField(child=serializers.CharField(), help_text="Every node it applied in the clause.")
    segments = SegmentSerializer(many=True, help_text="The clause cut at every reference boundary.")


class DecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["accept", "both", "neither", "anew"])
    accepted = serializers.CharField(allow_null=True, help_text="With `accept`: whose coding.")
    decided_by = serializers.CharField(source="by", allow_null=True)
    decided_at = serializers.DateTimeField(source="at")


class NodePathSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    path = serializers.CharField()


class DisagreementSerializer(serializers.Serializer):
    """One disagreement: a clause and a compared node, each layer's coding side by side."""

    policy = serializers.IntegerField(source="policy_number", help_text="The policy number.")
    policy_title = serializers.CharField()
    clause = serializers.IntegerField(source="clause_number")
    label = serializers.CharField()
    start = serializers.IntegerField(source="clause_start", help_text="The clause's code-point offsets.")
    end = serializers.IntegerField(source="clause_end")
    text = serializers.CharField(source="clause_text")
    level = serializers.ChoiceField(choices=["sub", "tree"])
    node = NodePathSerializer(help_text="The compared node.")
    layers = LayerViewSerializer(many=True, help_text="The compared layers, in the order asked.")
    consensus = LayerViewSerializer(
        allow_null=True, help_text="The consensus layer when it is not one of the compared layers."
    )
    decision = DecisionSerializer(allow_null=True, help_text="The adjudication, once decided.")
    code_nodes = NodePathSerializer(many=True, help_text="The nodes a decision to code anew may use.")


class DisagreementPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Disagreements in all pages.")
    resolved = serializers.IntegerField(help_text="How many of them are decided.")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DisagreementSerializer(many=True)


# --- members -------------------------------------------------------------------------------------


def member_rows(project: Project) -> QuerySet[Membership]:
    """The project's memberships with what MemberSerializer shows, in one query."""
    coded = (
        Reference.objects.filter(policy__project=project, consensus=False, coder=OuterRef("user"))
        .order_by()
        .values("coder")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Membership.objects.filter(project=project)
        .annotate(username=F("user__username"), references=Coalesce(Subquery(coded), 0))
        .order_by("username")
    )


# Instances must come from ``member_rows``.
class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField()
    references = serializers.IntegerField(help_text="References in their layer (they stay when they leave).")

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "references"]
        read_only_fields = fields


class MemberAddedSerializer(MemberSerializer):
    outcome = serializers.ChoiceField(
        choices=["added", "changed", "unchanged"], help_text="Added, or a member whose role changed or already was."
    )

    class Meta(MemberSerializer.Meta):
        fields = [*MemberSerializer.Meta.fields, "outcome"]
        read_only_fields = fields


class MemberAddSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, help_text="An existing user; a site administrator creates users.")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.CODER)


class MemberRoleSerializer(WholeInputSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


# --- the other dashboards: trend, word frequency, text search -------------------------------------


class TrendQuerySerializer(DashboardFilterSerializer):
    layer = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, help_text=LAYER_HELP + " Summed."
    )


class TrendRowSerializer(serializers.Serializer):
    level = serializers.IntegerField(help_text="1 tree node, 2 sub-node, 0 the Total row.")
    node_id = serializers.IntegerField()
    path = serializers.CharField()
    cells = serializers.DictField(child=serializers.IntegerField(), help_text="References per release year.")
    total = serializers.IntegerField()


class TrendSerializer(serializers.Serializer):
    """References per release year and node: the trend dashboard's table."""

    available_layers = LayerSerializer(many=True, help_text="The layers you may read.")
    layers = LayerSerializer(many=True, help_text="The layers counted (summed).")
    years = serializers.ListField(
        child=serializers.CharField(), help_text="Every year from the first to the last, then `(none)` if undated."
    )
    rows = TrendRowSerializer(many=True)
    undated = serializers.IntegerField(help_text="References in policies without a release date.")


class WordsQuerySerializer(DashboardFilterSerializer):
    min_length = serializers.IntegerField(
        required=False,
        min_value=WORD_BOUNDS["min_length"][0],
        max_value=WORD_BOUNDS["min_length"][1],
        help_text=f"Default {WORD_DEFAULTS['min_length']}.",
    )
    top = serializers.IntegerField(
        required=False,
        min_value=WORD_BOUNDS["top"][0],
        max_value=WORD_BOUNDS["top"][1],
        help_text=f"Default {WORD_DEFAULTS['top']}.",
    )
    threshold = serializers.FloatField(
        required=False,
        min_value=WORD_BOUNDS["threshold"][0],
        max_value=WORD_BOUNDS["threshold"][1],
        help_text="Drop words under this share (%) of all words.",
    )


class WordSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    word = serializers.CharField()
    count = serializers.IntegerField()
    share = serializers.FloatField(help_text="Of all words counted, as a fraction.")
    policies = serializers.IntegerField(help_text="Policies whose text has it.")


class WordsSerializer(serializers.Serializer):
    policies = serializers.IntegerField(help_text="Policy texts counted.")
    stopwords = serializers.IntegerField(help_text="Stop words left out.")
    custom_stopwords = serializers.BooleanField(help_text="Whether the project has its own stop-word list.")
    words = WordSerializer(many=True)


class StopwordsSerializer(serializers.Serializer):
    words = serializers.ListField(
        child=serializers.CharField(max_length=100),
        allow_null=True,
        max_length=20_000,
        help_text="The project's stop words, which word frequencies leave out; null for the default list.",
    )
    custom = serializers.BooleanField(read_only=True, help_text="Whether the project has its own list.")


class SearchQuerySerializer(DashboardFilterSerializer):
    q = serializers.CharField(
        max_length=MAX_QUERY_LENGTH, trim_whitespace=False, help_text="A word, a phrase or a regular expression."
    )
    mode = serializers.ChoiceField(choices=list(SEARCH_MODES), default="phrase")

    def validate(self, data: dict) -> dict:
        try:
            compile_query(data["q"], data["mode"])
        except DjangoValidationError as exc:  # compile_query names what is wrong, a{99999999999} included
            raise serializers.ValidationError({"q": exc.messages}) from None
        return data


class HitSerializer(serializers.Serializer):
    """One search hit in context; ``key`` names it to ``search/code/``."""

    key = serializers.CharField(help_text="`policy:start:end`.")
    label = serializers.CharField(help_text="`policy-clause`, or `policy (no clause)` outside every clause.")
    policy = serializers.IntegerField(source="number", help_text="The policy number.")
    title = serializers.CharField()
    clause = serializers.IntegerField(allow_null=True, help_text="Null outside every clause (a heading).")
    start = serializers.IntegerField(help_text="Code-point offset into the policy text.")
    end = serializers.IntegerField()
    before = serializers.CharField(allow_blank=True)
    match = serializers.CharField()
    after = serializers.CharField(allow_blank=True)


class SearchPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Hits listed in all pages.")
    total = serializers.IntegerField(help_text="Every match, also those past the limit.")
    truncated = serializers.BooleanField(help_text="More matched than are listed.")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = HitSerializer(many=True)


class SearchCodeSerializer(SearchQuerySerializer):
    """Code hits of a search at a node in your own layer: the search runs again, and only its
    hits can be coded."""

    node = ProjectNodeField()
    hits = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, help_text="Keys of the hits to code."
    )
    all = serializers.BooleanField(default=False, help_text="Code every hit in a clause instead.")
    memo = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)

    def validate(self, data: dict) -> dict:
        data = super().validate(data)
        if not data["all"] and not data.get("hits"):
            raise serializers.ValidationError({"hits": "Give the keys of the hits to code, or all: true."})
        return data


class CodedHitsSerializer(serializers.Serializer):
    hits = serializers.IntegerField(help_text="Hits coded (hits outside every clause cannot be).")
    created = serializers.IntegerField(
        help_text="New references in your layer: one per clause a hit touches, none where the passage was "
        "already coded at the node."
    )


# --- files in and out ------------------------------------------------------------------------------
# Uploads are multipart (a `file` part and form fields); downloads are the files the pages offer.


class PolicyImportSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="A table (.csv, .xlsx, .json), a document (.txt, .docx, .pdf, .html), or a .zip of documents "
        "with an optional metadata table, as on the import page."
    )
    rule = serializers.ChoiceField(choices=RULES, default="article", help_text="Segmentation rule for the clauses.")
    update = serializers.BooleanField(
        default=False,
        help_text="Change the existing policies with the file's numbers (e.g. attach texts to catalogue entries) "
        "instead of creating policies.",
    )
    dry_run = serializers.BooleanField(
        default=False, help_text="Check the file and answer what the import would do; write nothing."
    )


class PlannedPolicySerializer(serializers.Serializer):
    number = serializers.IntegerField()
    title = serializers.CharField(allow_blank=True)
    action = serializers.ChoiceField(choices=["create", "update"])
    clauses = serializers.IntegerField(allow_null=True, help_text="Null: the row brings no text.")
    rule_used = serializers.CharField(allow_blank=True, help_text="The rule that made the clauses (a fallback).")
    message = serializers.CharField(allow_blank=True)
    encoding = serializers.CharField(allow_blank=True, help_text="How the text's bytes were decoded.")
    source = serializers.CharField(help_text="The file (or archive member) the policy came from.")
    row = serializers.IntegerField(allow_null=True, help_text="Its row in a table; null for a document.")


class ImportPlanSerializer(serializers.Serializer):
    """What a policy import would do: the dry run's answer."""

    rule = serializers.CharField()
    update = serializers.BooleanField()
    policies = serializers.IntegerField()
    creates = serializers.IntegerField()
    updates = serializers.IntegerField()
    with_text = serializers.IntegerField(help_text="Policies with a text; the others are catalogue entries.")
    clauses = serializers.IntegerField()
    encodings = serializers.DictField(child=serializers.IntegerField(), help_text="Texts per detected encoding.")
    rows = PlannedPolicySerializer(many=True)
    notices = serializers.ListField(child=serializers.CharField())


class ImportedPoliciesSerializer(serializers.Serializer):
    created = serializers.ListField(child=serializers.IntegerField(), help_text="Numbers of the policies created.")
    updated = serializers.ListField(child=serializers.IntegerField())
    unchanged = serializers.ListField(child=serializers.IntegerField())
    clauses = serializers.IntegerField(help_text="Clauses written.")
    notices = serializers.ListField(child=serializers.CharField())


class CodebookImportSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="JSON (nested, as exported) or CSV (`path` with names joined by ` > `, `description`, "
        "`colour`, `shortcut`); the suffix says which."
    )


class CodebookImportedSerializer(serializers.Serializer):
    created = serializers.IntegerField(help_text="Nodes created (missing ancestors included).")
    updated = serializers.IntegerField(help_text="Existing nodes given the file's description, colour or shortcut.")
    unchanged = serializers.IntegerField()


class CodebookFileNodeSerializer(serializers.Serializer):
    """A node of the codebook file, with its sub-nodes (what `nodes/import/` reads back)."""

    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    colour = serializers.CharField()
    shortcut = serializers.CharField(allow_blank=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["children"] = CodebookFileNodeSerializer(many=True)
        return fields


class QdpxQuerySerializer(serializers.Serializer):
    nvivo = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Count positions in UTF-16 code units, as NVivo does (matters only past U+FFFF).",
    )


class RefiImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A REFI-QDA project (.qdpx, or a bare .qde) or codebook (.qdc).")
    rule = serializers.ChoiceField(
        choices=RULES,
        required=False,
        help_text="How the imported texts are split into clauses; default: the rule the file names for each "
        "source, else articles, else paragraphs.",
    )


class RefiReportSerializer(serializers.Serializer):
    """What a REFI-QDA import did (the page's import report). The counts read from the file add up: every
    selection was placed or is listed in `unplaced` with the reason. Each list holds its first 500
    entries; `…_total` says how many there are."""

    id = serializers.IntegerField(help_text="The `project.import` event in the audit trail that keeps this report.")
    file_name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["qdpx", "qde", "qdc"])
    origin = serializers.CharField(allow_blank=True, help_text="The program that wrote the file.")
    project = serializers.CharField()
    project_created = serializers.BooleanField()
    rule = serializers.CharField(allow_blank=True)
    codes = serializers.IntegerField()
    nodes_created = serializers.IntegerField()
    nodes_matched = serializers.IntegerField()
    sources = serializers.IntegerField()
    policies_created = serializers.IntegerField()
    clauses_created = serializers.IntegerField()
    selections = serializers.IntegerField()
    codings = serializers.IntegerField()
    selections_placed = serializers.IntegerField()
    references_created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    users = serializers.IntegerField()
    users_matched = serializers.IntegerField()
    users_created = serializers.IntegerField()
    units = serializers.ListField(child=serializers.DictField(), help_text="How positions were counted per source.")
    unplaced = serializers.ListField(child=serializers.DictField())
    split = serializers.ListField(child=serializers.DictField())
    trimmed = serializers.ListField(child=serializers.DictField())
    notes = serializers.ListField(child=serializers.CharField())
    ignored = serializers.DictField(
        child=serializers.IntegerField(), help_text="What the file held that is not imported."
    )
    units_total = serializers.IntegerField()
    unplaced_total = serializers.IntegerField()
    split_total = serializers.IntegerField()
    trimmed_total = serializers.IntegerField()
    notes_total = serializers.IntegerField()
