"""The REST API under ``/api/`` (Django REST framework, OpenAPI schema by drf-spectacular)."""
