from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from coding.api import views

app_name = "api"

project_urls = [
    path("", views.ProjectDetail.as_view(), name="project-detail"),
    path("events/", views.EventList.as_view(), name="event-list"),
    path("policies/", views.PolicyList.as_view(), name="policy-list"),
    path("policies/import/", views.PolicyImport.as_view(), name="policy-import"),
    path("policies/<int:number>/", views.PolicyDetail.as_view(), name="policy-detail"),
    path("policies/<int:number>/done/", views.PolicyDone.as_view(), name="policy-done"),
    path("policies/<int:number>/text/", views.PolicyText.as_view(), name="policy-text"),
    path("policies/<int:number>/resegment/", views.PolicyResegment.as_view(), name="policy-resegment"),
    path("policies/<int:number>/clauses/<int:clause_number>/", views.ClauseDetail.as_view(), name="clause-detail"),
    path("policies/<int:number>/clauses/<int:clause_number>/split/", views.ClauseSplit.as_view(), name="clause-split"),
    path("policies/<int:number>/clauses/<int:clause_number>/merge/", views.ClauseMerge.as_view(), name="clause-merge"),
    path("members/", views.MemberList.as_view(), name="member-list"),
    path("members/<str:username>/", views.MemberDetail.as_view(), name="member-detail"),
    path("nodes/", views.NodeList.as_view(), name="node-list"),
    path("nodes/import/", views.CodebookImport.as_view(), name="codebook-import"),
    path("nodes/export/<str:fmt>/", views.CodebookExport.as_view(), name="codebook-export"),
    path("nodes/<int:node_id>/", views.NodeDetail.as_view(), name="node-detail"),
    path("nodes/<int:node_id>/merge/", views.NodeMerge.as_view(), name="node-merge"),
    path("references/", views.ReferenceList.as_view(), name="reference-list"),
    path("references/restore/", views.ReferenceRestore.as_view(), name="reference-restore"),
    path("references/export/<str:fmt>/", views.ReferenceExport.as_view(), name="reference-export"),
    path("references/<int:reference_id>/", views.ReferenceDetail.as_view(), name="reference-detail"),
    path("distribution/", views.Distribution.as_view(), name="distribution"),
    path("trend/", views.Trend.as_view(), name="trend"),
    path("words/", views.Words.as_view(), name="words"),
    path("words/stopwords/", views.Stopwords.as_view(), name="stopwords"),
    path("search/", views.Search.as_view(), name="search"),
    path("search/code/", views.SearchCode.as_view(), name="search-code"),
    path("agreement/", views.Agreement.as_view(), name="agreement"),
    path("agreement/disagreements/", views.Disagreements.as_view(), name="disagreements"),
    path("agreement/adjudications/", views.Adjudications.as_view(), name="adjudications"),
    path("agreement/adopt/", views.AdoptAgreed.as_view(), name="adopt"),
    path("interchange/qdpx/", views.ProjectQdpx.as_view(), name="qdpx"),
    path("interchange/qdc/", views.ProjectQdc.as_view(), name="qdc"),
    path("interchange/import/", views.RefiImport.as_view(), name="refi-import"),
]

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("projects/", views.ProjectList.as_view(), name="project-list"),
    path("projects/<slug:slug>/", include(project_urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", views.api_docs, name="docs"),
    # [\s\S], not ".": an id with a newline in it must not fall through to the HTML 404 page.
    re_path(r"^(?P<path>[\s\S]*)$", views.not_found),
]
