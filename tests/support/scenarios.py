"""Worlds several test modules build: the in-process security tests and their browser twins
under tests/e2e/browser/ share them, so both check the same situation."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.utils import timezone

from assistant.memory import services as memory_services
from assistant.models import Conversation, Message
from knowledge import services as knowledge_services
from knowledge.models import Collection, Source
from tests.support.knowledge import index_text, make_collection

# --- a Slack conversation holding private context (tests/security/test_private_context.py) ----

HANDBOOK = """# Travel policy

## Booking flights
Employees book flights through the travel desk at least fourteen days before departure.
"""
FLIGHT_QUESTION = "How do I book a flight?"
MEMORY_SECRET = "The user books flights for a secret merger trip codenamed Bluefin."
SUMMARY_SECRET = "The user discussed their performance review and salary (SUMMARYSECRET)."
EARLIER_QUESTION = "EARLIERQUESTION: I am being moved to the Oslo team, should I book flights?"
EARLIER_ANSWER = "EARLIERANSWER: Your move to Oslo is confidential until March."


def slack_asker(make_user):
    """A person with a memory item, and a conversation with a summary and earlier turns."""
    admin = make_user(email="admin@example.com", is_staff=True)
    index_text(make_collection("Handbook", everyone=True), "travel.md", HANDBOOK, user=admin)
    user = make_user(email="asker@example.com")
    memory_services.remember(user=user, text=MEMORY_SECRET)
    conversation = Conversation.objects.create(
        owner=user, origin=Conversation.Origin.SLACK, title="t"
    )
    Message.objects.create(
        conversation=conversation, role="user", content="old question covered by the summary"
    )
    Message.objects.create(
        conversation=conversation, role="assistant", content="old answer covered by the summary"
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        summary=SUMMARY_SECRET, summary_until=timezone.now()
    )
    Message.objects.create(conversation=conversation, role="user", content=EARLIER_QUESTION)
    Message.objects.create(conversation=conversation, role="assistant", content=EARLIER_ANSWER)
    conversation.refresh_from_db()
    return user, conversation


# --- a reader who loses access to a cited passage (tests/security/test_stale_access.py) ---------

SALARIES = """# Salary bands

## Engineering
The confidential salary band for a senior engineer is 123456 kroner per year.
"""
LEVELS = """# Career levels

## Engineering levels
A junior engineer starts at level L3 and a senior engineer is at level L5.
"""
SALARY_QUESTION = "What is the salary band for a senior engineer?"
ANSWER = "ANSWERSECRET: it is 123456 kroner [1]."
FOLLOW_UP = "And what level is that?"
# Everything of the restricted passage a response or a prompt must not carry.
PASSAGE_TEXT = ("123456", "kroner", "Salary bands", "salaries.md", "confidential")


class StaleAccessWorld:
    """Pay (hr only), Vault (finance only) and Everyone collections; a reader in hr."""

    def __init__(self, make_user):
        self.admin = make_user(email="admin@example.com", is_staff=True, is_superuser=True)
        self.hr = Group.objects.create(name="hr")
        self.finance = Group.objects.create(name="finance")
        self.pay = make_collection("Pay", readers=[self.hr])
        self.vault = make_collection("Vault", readers=[self.finance])
        self.public = make_collection("Everyone", everyone=True)
        self.salaries = index_text(self.pay, "salaries.md", SALARIES, user=self.admin)
        index_text(self.public, "levels.md", LEVELS, user=self.admin)
        self.reader = make_user(email="reader@example.com")
        self.reader.groups.add(self.hr)

    # The ways a reader loses access to the passage, each through the ordinary write paths.
    def remove_group(self):
        self.reader.groups.remove(self.hr)

    def regroup_collection(self):
        self.pay.read_groups.set([self.finance])

    def close_collection(self):
        # Open to everyone at first (the reader needed no group), then narrowed to a group.
        self.pay.visibility = Collection.Visibility.GROUPS
        self.pay.save()
        self.pay.read_groups.set([])

    def move_source(self):
        knowledge_services.source_move(user=self.admin, source=self.salaries, collection=self.vault)

    def move_source_by_save(self):
        source = Source.objects.get(pk=self.salaries.pk)
        source.collection = self.vault
        source.save()


# --- a Slack user and knowledge everyone may read (tests/security/test_slack.py, e2e) ----------

TRAVEL_TEXT = "# Travel\n\nEveryone books trains and flights in the portal."


def slack_ada(make_user, slack):
    """Ada, known to the Slack server as U1 and signed up here with the same email."""
    slack.users["U1"] = {"email": "ada@example.com", "name": "Ada"}
    return make_user(email="ada@example.com")


def public_travel_knowledge(make_user):
    """An "Open" collection everyone may read, holding one travel passage."""
    admin = make_user(email="kadmin@example.com", is_staff=True)
    collection = make_collection("Open", everyone=True)
    return index_text(collection, "travel.md", TRAVEL_TEXT, user=admin)
