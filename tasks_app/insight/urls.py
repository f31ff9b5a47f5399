"""URLs of the insight pages (the JSON route lives with the API under /api/metrics/)."""

from django.urls import path

from . import views

urlpatterns = [
    path("metrics/", views.metrics_page, name="metrics"),
    path("metrics/done/", views.done_page, name="metrics_done"),
    path("metrics/prometheus", views.prometheus_metrics, name="prometheus_metrics"),
    path("activity/", views.activity_page, name="activity"),
    path("activity/rows/", views.activity_rows, name="activity_rows"),
    path("chains/<str:task_id>/", views.chain_page, name="chain"),
    path("chains/<str:task_id>/graph/", views.chain_graph, name="chain_graph"),
]
