"""The Slack door: a signed webhook, a Celery task that answers in threads, and the Web API client."""
