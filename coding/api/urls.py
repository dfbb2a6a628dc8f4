from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from coding.api import views

app_name = "api"

project_urls = [
    path("policies/", views.PolicyList.as_view(), name="policy-list"),
    path("policies/<int:number>/", views.PolicyDetail.as_view(), name="policy-detail"),
    path("policies/<int:number>/done/", views.PolicyDone.as_view(), name="policy-done"),
    path("nodes/", views.NodeList.as_view(), name="node-list"),
    path("nodes/<int:node_id>/", views.NodeDetail.as_view(), name="node-detail"),
    path("nodes/<int:node_id>/merge/", views.NodeMerge.as_view(), name="node-merge"),
    path("references/", views.ReferenceList.as_view(), name="reference-list"),
    path("references/<int:reference_id>/", views.ReferenceDetail.as_view(), name="reference-detail"),
    path("distribution/", views.Distribution.as_view(), name="distribution"),
    path("agreement/", views.Agreement.as_view(), name="agreement"),
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
