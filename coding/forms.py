"""Forms: parse and validate what a request sends, naming what is wrong, before a view
calls a service. One section per area; sections only add."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from coding.dashboard_query import (
    MAX_QUERY_LENGTH,
    WORD_BOUNDS,
    WORD_DEFAULTS,
    PolicyFilter,
    check_attribute,
    compile_query,
)
from coding.history import ACTION_PATTERN
from coding.models import Clause, Node, Policy, Role
from coding.offsets import utf16_to_codepoint

# --- workbench (coding a policy) ---------------------------------------------------------


class NodeChoiceField(forms.ModelChoiceField):
    default_error_messages = {"invalid_choice": "That node does not exist in this project (it may have been deleted)."}

    def label_from_instance(self, obj: Node) -> str:
        return obj.name


class SelectionForm(forms.Form):
    """A passage selected on the policy page, to be coded at ``node``.

    The page sends each end of the selection as a clause number and an offset in UTF-16
    code units (what JavaScript counts) from the start of that clause's text, exactly as
    rendered. ``clean`` converts both ends to code-point offsets into the policy text
    (``cleaned_data["start"]``, ``["end"]``), the unit the server stores, and gives the
    clause when both ends lie in one (``["clause"]``, else None). ``quote``, the text the
    coder saw selected, is checked against the policy text when sent, so a passage is
    stored exactly as selected or not at all.
    """

    node = NodeChoiceField(queryset=Node.objects.none())
    start_clause = forms.IntegerField(min_value=0)
    start_offset = forms.IntegerField(min_value=0)
    end_clause = forms.IntegerField(min_value=0)
    end_offset = forms.IntegerField(min_value=0)
    quote = forms.CharField(required=False, strip=False)
    memo = forms.CharField(required=False, strip=False, max_length=10_000)

    def __init__(self, *args, policy: Policy, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy = policy
        self.fields["node"].queryset = Node.objects.for_project(policy.project_id)

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        policy = self.policy
        numbers = {data["start_clause"], data["end_clause"]}
        clauses = {c.number: c for c in Clause.objects.filter(policy=policy, number__in=numbers)}
        for number in sorted(numbers - set(clauses)):
            raise ValidationError(f"Clause {policy.number}-{number} does not exist; reload the page.")
        start = self._codepoint(clauses[data["start_clause"]], data["start_offset"])
        end = self._codepoint(clauses[data["end_clause"]], data["end_offset"])
        if start >= end:
            raise ValidationError("The selection is empty: select some text, then choose a node.")
        quote = data.get("quote")
        if quote:
            if data["start_clause"] == data["end_clause"]:
                expected = policy.text[start:end]
            else:
                # Text between clauses (headings) is not coded, so it is not part of the quote.
                spans = Clause.objects.filter(policy=policy, start__lt=end, end__gt=start).order_by("start")
                expected = "".join(
                    policy.text[max(start, s) : min(end, e)] for s, e in spans.values_list("start", "end")
                )
            if quote != expected:
                raise ValidationError(
                    "The selected text does not match the policy text at that place; reload the page and select again."
                )
        data["start"], data["end"] = start, end
        # The one clause a selection lies in (the common case), or None when it crosses clauses.
        data["clause"] = clauses[data["start_clause"]] if data["start_clause"] == data["end_clause"] else None
        return data

    def _codepoint(self, clause: Clause, offset: int) -> int:
        text = clause.text_of(self.policy)
        try:
            return clause.start + utf16_to_codepoint(text, offset)
        except ValueError as exc:
            raise ValidationError(f"Clause {clause.label_for(self.policy)}: {exc}") from None


class ReferenceEditForm(forms.Form):
    """A change to a reference's node and/or memo, made on the ``version`` the page showed.

    ``cleaned_data["memo"]`` is None when no memo was sent (leave it as it is), so an empty
    memo can still be saved to clear one.
    """

    node = NodeChoiceField(queryset=Node.objects.none(), required=False)
    memo = forms.CharField(required=False, strip=False, max_length=10_000)
    version = forms.IntegerField(min_value=1)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["node"].queryset = Node.objects.for_project(project)

    def clean(self) -> dict:
        data = super().clean()
        if "memo" not in self.data:
            data["memo"] = None
        if not self.errors and data.get("node") is None and data["memo"] is None:
            raise ValidationError("Nothing to change: send a node or a memo.")
        return data


class VersionForm(forms.Form):
    version = forms.IntegerField(min_value=1, required=False)


class RestoreForm(forms.Form):
    deletion = forms.IntegerField(min_value=1, error_messages={"required": "Say which deletion to undo."})


class DoneForm(forms.Form):
    done = forms.BooleanField(required=False)


class LayerFilterForm(forms.Form):
    """Whose references a reviewer (or anyone, with blind coding off) looks at: everyone's,
    one coder's (by username), or the consensus layer's."""

    CONSENSUS = "consensus"

    coder = forms.ChoiceField(required=False)

    def __init__(self, *args, coders=None, **kwargs):
        """``coders``: the users whose layers may be chosen; None for a user who sees only
        their own layer (blind coding), whose form then has no coder field."""
        super().__init__(*args, **kwargs)
        if coders is None:
            del self.fields["coder"]
            return
        self.fields["coder"].choices = [
            ("", "All coders"),
            *((u.get_username(), u.get_username()) for u in coders),
            (self.CONSENSUS, "Consensus layer"),
        ]
        self.fields["coder"].error_messages["invalid_choice"] = "%(value)s is not a coder in this project."


class NodeReferenceFilterForm(LayerFilterForm):
    policy = forms.IntegerField(required=False, min_value=1, label="Policy number")
    descendants = forms.BooleanField(required=False, label="Include sub-nodes")


# --- projects ----------------------------------------------------------------------------


class ProjectForm(forms.Form):
    """A new study. Only site superusers create projects; the creator becomes its admin."""

    slug = forms.SlugField(max_length=80, help_text="Short name used in addresses, e.g. smart-city.")
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    blind_coding = forms.BooleanField(
        required=False, initial=True, help_text="Coders see only their own references (recommended)."
    )


class ProjectSettingsForm(forms.Form):
    """A project's name, description and blind coding, changed by its admins. The slug stays:
    it is in every address and API call."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    blind_coding = forms.BooleanField(
        required=False,
        label="Blind coding",
        help_text="On: each coder sees only their own references. Off: coders see every coder's references "
        "and the consensus layer, on policy pages, node pages, dashboards and exports.",
    )

    def __init__(self, *args, project, **kwargs):
        initial = {"name": project.name, "description": project.description, "blind_coding": project.blind_coding}
        super().__init__(*args, initial=initial, **kwargs)

    def changes(self) -> dict[str, Any]:
        """The fields whose value differs from the project's, for ``services.update_project``."""
        return {name: self.cleaned_data[name] for name in self.changed_data}


class HistoryFilterForm(forms.Form):
    """The project history's filters, from the query string (see ``history.filter_events``)."""

    actor = forms.CharField(required=False, max_length=150, label="Who", help_text="A username.")
    action = forms.RegexField(
        required=False,
        regex=ACTION_PATTERN,
        max_length=81,
        label="Action",
        help_text="Exact (reference.create) or every action of an area (reference.).",
        error_messages={"invalid": "Give an action such as reference.create, or an area such as reference."},
    )
    target = forms.CharField(
        required=False,
        max_length=300,
        label="Target",
        help_text="A policy number (23), a clause label (23-4), or part of a label (a node's name).",
    )


RULE_CHOICES = [
    ("article", "Articles (第X条)"),
    ("item", "Numbered items (一、 / （一） / 1.)"),
    ("paragraph", "Paragraphs (every non-blank line)"),
    ("sentence", "Sentences (。！？；)"),
]


class PolicyImportForm(forms.Form):
    file = forms.FileField(
        help_text="A table (.csv, .xlsx, .json), a document (.txt, .docx, .pdf, .html), "
        "or a .zip of documents with an optional metadata table."
    )
    rule = forms.ChoiceField(choices=RULE_CHOICES, initial="article", label="Segment clauses by")
    update = forms.BooleanField(
        required=False,
        label="Update existing policies by number",
        help_text="Attach texts to catalogue entries, or change metadata, of the policies with these numbers.",
    )

    def __init__(self, *args, max_bytes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.max_bytes:
            raise ValidationError(
                f"{upload.name} is {upload.size / 1024 / 1024:.1f} MB; the limit is "
                f"{self.max_bytes / 1024 / 1024:.0f} MB."
            )
        return upload


class ResegmentForm(forms.Form):
    rule = forms.ChoiceField(choices=RULE_CHOICES, label="Segment by")


class ClauseSplitForm(forms.Form):
    """Where to cut a clause: characters (code points) from the start of its text."""

    clause = forms.IntegerField(min_value=0)
    offset = forms.IntegerField(min_value=1, label="Split after character")


class ClauseForm(forms.Form):
    clause = forms.IntegerField(min_value=0)


class NodeChoice(forms.TypedChoiceField):
    """A node of the project, offered by its path ("Supply-based › Talent")."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("coerce", int)
        super().__init__(*args, **kwargs)


def node_choices(outline, *, blank: str | None = None) -> list[tuple[Any, str]]:
    choices = [(entry.node.pk, entry.path) for entry in outline]
    return [("", blank), *choices] if blank is not None else choices


class NodeCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    parent = NodeChoice(required=False, empty_value=None, label="Under")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    colour = forms.RegexField(
        regex=r"^#[0-9a-fA-F]{6}$",
        initial="#ffe08a",
        widget=forms.TextInput(attrs={"type": "color"}),
        error_messages={"invalid": "Use a colour written as #rrggbb."},
    )
    shortcut = forms.CharField(max_length=1, required=False, strip=True)

    def __init__(self, *args, outline, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["parent"].choices = node_choices(outline, blank="— top level —")


class NodeEditForm(forms.Form):
    node = NodeChoice()
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    colour = forms.RegexField(
        regex=r"^#[0-9a-fA-F]{6}$",
        widget=forms.TextInput(attrs={"type": "color"}),
        error_messages={"invalid": "Use a colour written as #rrggbb."},
    )
    shortcut = forms.CharField(max_length=1, required=False, strip=True)

    def __init__(self, *args, outline, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["node"].choices = node_choices(outline)


class NodeForm(forms.Form):
    """One node to act on (reorder, delete)."""

    node = NodeChoice()

    def __init__(self, *args, outline, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["node"].choices = node_choices(outline)


class NodeMoveForm(NodeForm):
    parent = NodeChoice(required=False, empty_value=None, label="Under")

    def __init__(self, *args, outline, **kwargs):
        super().__init__(*args, outline=outline, **kwargs)
        self.fields["parent"].choices = node_choices(outline, blank="— top level —")


class NodeMergeForm(NodeForm):
    into = NodeChoice(label="Into")

    def __init__(self, *args, outline, **kwargs):
        super().__init__(*args, outline=outline, **kwargs)
        self.fields["into"].choices = node_choices(outline)


class CodebookImportForm(forms.Form):
    file = forms.FileField(help_text="JSON (as exported) or CSV with path, description, colour, shortcut.")


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.CODER)


class MemberRoleForm(forms.Form):
    member = forms.IntegerField(min_value=1)
    role = forms.ChoiceField(choices=Role.choices)


class MemberRemoveForm(forms.Form):
    member = forms.IntegerField(min_value=1)


# --- dashboards: filters, crosstab, word frequency, text search ---------------------------


class AnyValuesField(forms.MultipleChoiceField):
    """Several values of a policy attribute; any value is accepted (one no policy has just
    matches nothing), so a shared URL never fails because the data changed."""

    def valid_value(self, value: str) -> bool:
        return True


def parse_policy_numbers(raw: str) -> tuple[int, ...]:
    """Policy numbers from "1-5, 8 12" → (1, 2, 3, 4, 5, 8, 12); a clear ValidationError otherwise."""
    numbers: list[int] = []
    for part in raw.replace(",", " ").replace("，", " ").split():
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise ValidationError(f"{part!r} is not a policy number or a range like 3-7.") from None
        if first < 1 or last < first:
            raise ValidationError(f"{part!r} is not a range of policy numbers (from 1 up, low-high).")
        if last - first > 100_000:
            raise ValidationError(f"{part!r} spans more than 100,000 policies.")
        numbers.extend(range(first, last + 1))
    return tuple(dict.fromkeys(numbers))


class DashboardFilterForm(forms.Form):
    """Which policies a dashboard counts, from the query string (shareable URLs)."""

    jurisdiction = AnyValuesField(required=False)
    potency = AnyValuesField(required=False, label="Potency level")
    department = AnyValuesField(required=False, label="Release department")
    year_from = forms.IntegerField(required=False, min_value=1000, max_value=9999, label="Released from")
    year_to = forms.IntegerField(required=False, min_value=1000, max_value=9999, label="to")
    attr = forms.CharField(
        required=False, label="Attributes", max_length=1000, help_text="key=value; several separated by ';'"
    )
    policies = forms.CharField(required=False, label="Policies", max_length=2000, help_text="e.g. 1-5, 8, 12")

    def __init__(self, *args, choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        if choices is not None:
            self.fields["jurisdiction"].choices = [(v, v) for v in choices.jurisdictions]
            self.fields["potency"].choices = [(v, v) for v in choices.potency_levels]
            self.fields["department"].choices = [(v, v) for v in choices.departments]

    def clean_attr(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        for part in self.cleaned_data["attr"].split(";"):
            if not part.strip():
                continue
            key, equals, value = part.partition("=")
            if not equals or not key.strip():
                raise ValidationError(f"{part.strip()!r} is not an attribute filter; write key=value.")
            pairs.append((key.strip(), value.strip()))
        return tuple(pairs)

    def clean_policies(self) -> tuple[int, ...]:
        return parse_policy_numbers(self.cleaned_data["policies"])

    def clean(self) -> dict:
        data = super().clean()
        low, high = data.get("year_from"), data.get("year_to")
        if low is not None and high is not None and low > high:
            raise ValidationError(f"The release years run from {low} to {high}: the first must not be after the last.")
        return data

    def policy_filter(self) -> PolicyFilter:
        data = self.cleaned_data
        return PolicyFilter(
            jurisdictions=tuple(data["jurisdiction"]),
            year_from=data["year_from"],
            year_to=data["year_to"],
            potency_levels=tuple(data["potency"]),
            departments=tuple(data["department"]),
            attributes=data["attr"],
            numbers=data["policies"],
        )


class CrosstabForm(forms.Form):
    by = forms.CharField(required=False, initial="jurisdiction", label="Across")
    measure = forms.ChoiceField(
        required=False, choices=[("references", "References"), ("policies", "Policies coded")], label="Count"
    )
    percent = forms.ChoiceField(
        required=False,
        choices=[("count", "Counts"), ("row", "Row %"), ("column", "Column %"), ("total", "Total %")],
        label="Show",
    )

    def clean_by(self) -> str:
        return check_attribute(self.cleaned_data["by"] or "jurisdiction")

    def clean_measure(self) -> str:
        return self.cleaned_data["measure"] or "references"

    def clean_percent(self) -> str:
        return self.cleaned_data["percent"] or "count"


class WordFrequencyForm(forms.Form):
    min_length = forms.IntegerField(
        required=False,
        min_value=WORD_BOUNDS["min_length"][0],
        max_value=WORD_BOUNDS["min_length"][1],
        label="Minimum length",
    )
    top = forms.IntegerField(
        required=False, min_value=WORD_BOUNDS["top"][0], max_value=WORD_BOUNDS["top"][1], label="Top"
    )
    threshold = forms.FloatField(
        required=False,
        min_value=WORD_BOUNDS["threshold"][0],
        max_value=WORD_BOUNDS["threshold"][1],
        label="Drop words under (%)",
    )

    def clean_min_length(self) -> int:
        return self.cleaned_data["min_length"] or WORD_DEFAULTS["min_length"]

    def clean_top(self) -> int:
        return self.cleaned_data["top"] or WORD_DEFAULTS["top"]

    def clean_threshold(self) -> float:
        return self.cleaned_data["threshold"] or WORD_DEFAULTS["threshold"]


class StopwordsForm(forms.Form):
    words = forms.CharField(required=False, widget=forms.Textarea, max_length=100_000, strip=False)
    reset = forms.BooleanField(required=False)

    def word_list(self) -> list[str] | None:
        if self.cleaned_data["reset"]:
            return None
        return self.cleaned_data["words"].split()


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=MAX_QUERY_LENGTH, label="Search", strip=False)
    mode = forms.ChoiceField(
        required=False,
        choices=[("phrase", "Phrase"), ("word", "Word"), ("regex", "Regular expression")],
        label="As",
    )

    def clean_mode(self) -> str:
        return self.cleaned_data["mode"] or "phrase"

    def clean(self) -> dict:
        data = super().clean()
        if data.get("q", "").strip() and "mode" in data:
            compile_query(data["q"], data["mode"])
        return data


class CodeHitsForm(forms.Form):
    """Code text-search hits at a node: the ones ticked (``hit``: "number:start:end"), or
    every hit of the search when ``all`` is sent."""

    node = NodeChoiceField(queryset=Node.objects.none())
    hit = forms.MultipleChoiceField(required=False)
    all = forms.BooleanField(required=False)

    def __init__(self, *args, project, hits: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["node"].queryset = Node.objects.for_project(project)
        self.fields["hit"].choices = [(h.key, h.label) for h in hits if h.clause is not None]
        self.fields["hit"].error_messages["invalid_choice"] = (
            "%(value)s is not a hit of this search any more (the text or the search changed); search again."
        )

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("all") and not data.get("hit"):
            raise ValidationError("Tick the hits to code, or code all of them.")
        return data
