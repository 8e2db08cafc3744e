"""The results dashboard: a FastAPI app over the results store (pages, charts, JSON API)."""

from dashboard.app import create_app

__all__ = ["create_app"]
