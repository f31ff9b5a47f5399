from django.urls import path

from tasks_app import consumers

websocket_urlpatterns = [
    path("ws/board/", consumers.BoardConsumer.as_asgi()),
]
