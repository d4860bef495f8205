"""Settings for a worker whose Slack answer leases run out in seconds, so a test can see a
redelivered task take over from a worker that was killed (the default lease is 6 minutes)."""

from tests.settings import *  # noqa: F403

SLACK_ANSWER_LEASE_SECONDS = 3
