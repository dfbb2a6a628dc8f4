from django.urls import path

from coding.views import policies, projects

app_name = "coding"

urlpatterns = [
    # Projects
    path("", projects.project_list, name="project_list"),
    path("projects/<slug:slug>/", projects.project_home, name="project_home"),
    # Policies (addressed by number, never by database id)
    path("projects/<slug:slug>/policies/<int:number>/", policies.policy_detail, name="policy_detail"),
]
