"""The Django admin is the operators' console. It reads everything; edits of coding data
belong in the app, where services write the audit trail, so those models are read-only here."""

from django.contrib import admin

from coding.models import Clause, DoneMark, Event, Membership, Node, Policy, Project, Reference


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    can_delete = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Project)
class ProjectAdmin(ReadOnlyAdmin):
    list_display = ["slug", "name", "blind_coding", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["project", "user", "role"]
    list_filter = ["role", "project"]
    list_select_related = ["project", "user"]


@admin.register(Policy)
class PolicyAdmin(ReadOnlyAdmin):
    list_display = ["project", "number", "title", "potency_level", "jurisdiction", "release_date"]
    list_filter = ["project", "jurisdiction", "potency_level"]
    search_fields = ["title"]
    list_select_related = ["project"]


@admin.register(Clause)
class ClauseAdmin(ReadOnlyAdmin):
    list_display = ["policy", "number", "start", "end"]
    list_select_related = ["policy"]


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin):
    list_display = ["project", "name", "parent", "position", "shortcut", "colour"]
    list_filter = ["project"]
    list_select_related = ["project", "parent"]


@admin.register(Reference)
class ReferenceAdmin(ReadOnlyAdmin):
    list_display = ["id", "policy", "node", "coder", "consensus", "start", "end", "version", "updated_at"]
    list_filter = ["consensus", "node__project"]
    list_select_related = ["policy", "node", "coder"]


@admin.register(DoneMark)
class DoneMarkAdmin(ReadOnlyAdmin):
    list_display = ["policy", "coder", "marked_at"]
    list_select_related = ["policy", "coder"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "project", "actor", "action", "target_type", "target_id", "target_label"]
    list_filter = ["action", "project"]
    list_select_related = ["project", "actor"]
