from django.urls import path

from coding.views import agreement, codebook, dashboard, interchange, nodes, policies, projects, setup

app_name = "coding"

urlpatterns = [
    # Projects
    path("", projects.project_list, name="project_list"),
    path("projects/new/", projects.project_create, name="project_create"),
    path("projects/<slug:slug>/", projects.project_home, name="project_home"),
    path("projects/<slug:slug>/settings/", projects.project_settings, name="project_settings"),
    # The audit trail (supervisors and admins), filtered by actor, action and target
    path("projects/<slug:slug>/history/", projects.project_history, name="project_history"),
    # Policies (addressed by number, never by database id)
    path("projects/<slug:slug>/policies/<int:number>/", policies.policy_detail, name="policy_detail"),
    # Workbench (coding a policy; partials for htmx) and a node's references
    path(
        "projects/<slug:slug>/policies/<int:number>/clauses/<int:clause_number>/",
        policies.clause_row,
        name="clause_row",
    ),
    path("projects/<slug:slug>/policies/<int:number>/panel/", policies.policy_panel, name="policy_panel"),
    path("projects/<slug:slug>/policies/<int:number>/done/", policies.policy_done, name="policy_done"),
    path("projects/<slug:slug>/policies/<int:number>/references/", policies.reference_cards, name="reference_cards"),
    path("projects/<slug:slug>/policies/<int:number>/references/add/", policies.reference_add, name="reference_add"),
    path(
        "projects/<slug:slug>/policies/<int:number>/references/restore/",
        policies.reference_restore,
        name="reference_restore",
    ),
    path(
        "projects/<slug:slug>/policies/<int:number>/references/<int:pk>/edit/",
        policies.reference_edit,
        name="reference_edit",
    ),
    path(
        "projects/<slug:slug>/policies/<int:number>/references/<int:pk>/delete/",
        policies.reference_delete,
        name="reference_delete",
    ),
    path("projects/<slug:slug>/nodes/<int:node_id>/", nodes.node_detail, name="node_detail"),
    path("projects/<slug:slug>/codebook.css", nodes.codebook_css, name="codebook_css"),
    # Setup (project admins): policy import, clause review, members
    path("projects/<slug:slug>/import/", setup.policy_import, name="policy_import"),
    path("projects/<slug:slug>/import/<int:upload_id>/", setup.policy_import_preview, name="policy_import_preview"),
    path(
        "projects/<slug:slug>/import/<int:upload_id>/confirm/",
        setup.policy_import_confirm,
        name="policy_import_confirm",
    ),
    path("projects/<slug:slug>/clauses/", setup.clause_review_list, name="clause_review_list"),
    path("projects/<slug:slug>/clauses/<int:number>/", setup.clause_review, name="clause_review"),
    path("projects/<slug:slug>/members/", setup.members, name="members"),
    # Codebook (everyone reads; admins edit on the same page)
    path("projects/<slug:slug>/nodes/", codebook.codebook, name="codebook"),
    path("projects/<slug:slug>/nodes/export.<str:fmt>", codebook.codebook_export, name="codebook_export"),
    # Interchange (REFI-QDA .qdpx/.qdc): reviewers export, admins import
    path("projects/<slug:slug>/interchange/", interchange.interchange, name="interchange"),
    path(
        "projects/<slug:slug>/interchange/export.<str:fmt>", interchange.interchange_export, name="interchange_export"
    ),
    path("projects/<slug:slug>/interchange/import/", interchange.interchange_import, name="interchange_import"),
    path(
        "projects/<slug:slug>/interchange/imports/<int:event_id>/",
        interchange.interchange_report,
        name="interchange_report",
    ),
    # Agreement (supervisors and admins): figures, drill-down, adjudication, downloads
    path("projects/<slug:slug>/agreement/", agreement.agreement, name="agreement"),
    path("projects/<slug:slug>/agreement/disagreements/", agreement.disagreements, name="agreement_disagreements"),
    path("projects/<slug:slug>/agreement/adjudicate/", agreement.adjudicate, name="agreement_adjudicate"),
    path("projects/<slug:slug>/agreement/adopt/", agreement.adopt, name="agreement_adopt"),
    path("projects/<slug:slug>/agreement/export/<slug:table>.<slug:fmt>", agreement.export, name="agreement_export"),
    # Dashboard (every member; blind coding decides the layers): distribution, crosstab, trend,
    # word frequency, text search; ?export=csv|xlsx downloads the table on screen
    path("projects/<slug:slug>/dashboard/", dashboard.dashboard, name="dashboard"),
    path("projects/<slug:slug>/dashboard/crosstab/", dashboard.crosstab, name="dashboard_crosstab"),
    path("projects/<slug:slug>/dashboard/trend/", dashboard.trend, name="dashboard_trend"),
    path("projects/<slug:slug>/dashboard/words/", dashboard.words, name="dashboard_words"),
    path("projects/<slug:slug>/dashboard/stopwords/", dashboard.stopwords, name="dashboard_stopwords"),
    path("projects/<slug:slug>/dashboard/search/", dashboard.search, name="dashboard_search"),
    path("projects/<slug:slug>/dashboard/search/code/", dashboard.search_code, name="dashboard_search_code"),
]
