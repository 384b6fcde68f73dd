"""Celery tasks of the subscribers app (thin wrappers around subscribers.services)."""
