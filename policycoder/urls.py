from django.contrib import admin
from django.urls import include, path

from coding.views import projects

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", projects.healthz, name="healthz"),
    path("api/", include("coding.api.urls")),
    path("", include("coding.urls")),
]
