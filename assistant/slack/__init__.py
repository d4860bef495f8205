"""The Slack app (label ``slack``): a signed webhook, a Celery task that answers in threads, the
Web API client, and the deliveries it records (``models.SlackEventReceipt``)."""
