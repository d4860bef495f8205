"""The Celery app. Configuration lives in settings (CELERY_*); tasks are found in each app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.project.settings")

app = Celery("assistant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker re-queues work whose task the broker lost (assistant/project/sweeping.py).
app.steps["worker"].add("assistant.project.sweeping:Sweeper")
