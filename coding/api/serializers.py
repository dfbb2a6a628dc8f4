"""What the API reads out (ModelSerializers over annotated querysets) and what it accepts
(plain Serializers whose validated data a view hands to a service in ``coding/services.py``;
none of them saves anything itself).

Offsets are code points of the policy text, as everywhere on the server. Policies are
addressed by number, clauses by number within their policy (label ``policy-clause``),
nodes and references by id.
"""

from __future__ import annotations

import re

from django.db.models import F, QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from coding.models import Clause, Node, Policy, Project, Reference, Role
from coding.segmentation import RULES
from coding.services import normalise_text

# PostgreSQL's integer: anything larger is bad input to refuse, not a value to send to the database.
MAX_INT = 2_147_483_647


# --- output --------------------------------------------------------------------------------


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.ChoiceField(choices=Role.choices, read_only=True, help_text="Your role in the project.")

    class Meta:
        model = Project
        fields = ["slug", "name", "description", "blind_coding", "role"]


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
        fields = [
            "number",
            "title",
            "potency_level",
            "release_departments",
            "jurisdiction",
            "release_date",
            "implementation_date",
            "source_url",
            "language",
            "segmentation_rule",
            "attributes",
            "text_length",
            "clause_count",
            "done",
        ]


class PolicyDetailSerializer(PolicySerializer):
    clauses = serializers.SerializerMethodField()

    class Meta(PolicySerializer.Meta):
        fields = [*PolicySerializer.Meta.fields, "text", "clauses"]

    @extend_schema_field(ClauseSerializer(many=True))
    def get_clauses(self, policy: Policy) -> list[dict]:
        rows = [
            {
                "number": clause.number,
                "label": clause.label_for(policy),
                "start": clause.start,
                "end": clause.end,
                "text": clause.text_of(policy),
            }
            for clause in Clause.objects.filter(policy=policy).order_by("start")
        ]
        return ClauseSerializer(rows, many=True).data


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


class PolicyCreateSerializer(serializers.Serializer):
    number = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, required=False, help_text="Defaults to the next free number."
    )
    title = serializers.CharField(max_length=500)
    text = serializers.CharField(
        allow_blank=True,
        required=False,
        trim_whitespace=False,
        help_text="The full text. CRLF and CR line ends are stored as LF, so read offsets back from the clauses. "
        "Without a text the policy is a catalogue entry.",
    )
    rule = serializers.ChoiceField(choices=RULES, default="article", help_text="Segmentation rule for the clauses.")
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

    def validate_text(self, value: str) -> str:
        return normalise_text(value)  # the service stores it so too; validated here so errors name the field


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
        policy = Policy.objects.filter(project=project, number=data["policy"]).first()
        if policy is None:
            raise serializers.ValidationError({"policy": f"Policy {data['policy']} does not exist in this project."})
        data["policy"] = policy
        if "clause" in data:
            clause = Clause.objects.filter(policy=policy, number=data["clause"]).first()
            if clause is None:
                raise serializers.ValidationError({"clause": f"Policy {policy.number} has no clause {data['clause']}."})
            clause.policy = policy
            data["clause"] = clause
        return data


class ReferenceUpdateSerializer(serializers.Serializer):
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


# --- figures: the dashboard's distribution and the agreement page ----------------------------


def _check_numbers_fit(value: str) -> str:
    if any(int(n) > MAX_INT for n in re.findall(r"[0-9]+", value)):
        raise serializers.ValidationError(f"Policy numbers go up to {MAX_INT}.")
    return value


class DistributionQuerySerializer(serializers.Serializer):
    """The dashboard's query parameters: checked here as API input, then read by the page's own
    forms (``coding/forms.py``), so the API and the page count alike."""

    layer = serializers.ListField(
        child=serializers.CharField(max_length=50),
        required=False,
        help_text="Repeat for several: a member's user id, `coders` (all coders) or `consensus`. "
        "Default: your own layer for a coder, all coders for a reviewer. With blind coding a coder "
        "reads only their own.",
    )
    mode = serializers.ChoiceField(
        choices=["sum", "side"], required=False, help_text="Several layers summed (default) or side by side."
    )
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

    def validate_policies(self, value: str) -> str:
        return _check_numbers_fit(value)


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


class AgreementQuerySerializer(serializers.Serializer):
    """The agreement page's query parameters."""

    coders = serializers.ListField(
        child=serializers.CharField(max_length=1000),
        required=False,
        help_text="Usernames (comma-separated or repeated) and `consensus` for the consensus layer; "
        "two or more. Default: the project's coders.",
    )
    level = serializers.ChoiceField(choices=["sub", "tree", "both"], required=False)
    unit = serializers.ChoiceField(choices=["clause", "character"], required=False)
    policies = serializers.CharField(required=False, max_length=2000, help_text="Policy numbers, e.g. `1-10, 15`.")
    jurisdiction = serializers.CharField(required=False, max_length=100)
    potency_level = serializers.CharField(required=False, max_length=200)

    def validate_policies(self, value: str) -> str:
        return _check_numbers_fit(value)


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
