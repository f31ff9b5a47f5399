from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (the admin, Swagger).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("api/", include("tasks_app.api.urls")),
    path("", include("tasks_app.insight.urls")),
    path("", include("tasks_app.urls")),
]
