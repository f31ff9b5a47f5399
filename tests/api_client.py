"""A small JSON client for the Pod API tests: one call per request, a pod token per caller."""

import json

from django.test import Client


class PodClient:
    """Call the API as one pod (``token``), answering ``(status, json-or-None)``."""

    def __init__(self, token=None, client=None):
        self.token = token
        self.client = client or Client()

    def headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def call(self, method, path, body=None, raw=None, **headers):
        kwargs = {"headers": {**self.headers(), **headers}}
        if raw is not None or body is not None:
            kwargs["data"] = raw if raw is not None else json.dumps(body)
            kwargs["content_type"] = "application/json"
        response = getattr(self.client, method.lower())(path, **kwargs)
        self.last = response
        content = response.content
        return response.status_code, json.loads(content) if content else None

    def get(self, path, **params):
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return self.call("GET", f"{path}?{query}" if query else path)

    def post(self, path, body=None, **kwargs):
        return self.call("POST", path, body, **kwargs)
