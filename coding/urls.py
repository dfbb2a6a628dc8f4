from django.urls import path

from coding import views

app_name = "coding"

urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("projects/<slug:slug>/", views.project_home, name="project_home"),
    path("projects/<slug:slug>/policies/<int:number>/", views.policy_detail, name="policy_detail"),
]
