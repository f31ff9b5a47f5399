from django.contrib.auth import views as auth_views
from django.urls import path

from . import control_views, views

urlpatterns = [
    path("", views.board_view, name="board"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("board/move/", views.move_view, name="board_move"),
    path("board/<str:pod>/<str:status>/more/", views.column_more, name="board_more"),
    path("board/pods/<str:pod>/pause/", control_views.pause, name="pod_pause"),
    path("import/", views.import_view, name="import"),
    path("export/", views.export_view, name="export"),
    path("tasks/<str:task_id>/", views.task_detail, name="task_detail"),
    path("tasks/<str:task_id>/review/", control_views.review, name="task_review"),
    path("tasks/<str:task_id>/send_back/", control_views.send_back, name="task_send_back"),
    path("tasks/<str:task_id>/answer/", control_views.answer, name="task_answer"),
    path("tasks/<str:task_id>/comments/", control_views.comment, name="task_comments"),
    path("tasks/<str:task_id>/<str:action>/", views.task_action, name="task_action"),
]
