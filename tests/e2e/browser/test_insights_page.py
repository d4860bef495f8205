"""The Insights page in a real browser (issue 17): seeded usage draws its charts as SVG, the
knowledge gaps are grouped, and an admin marks one resolved, all under the strict CSP (the
page runs no script; ``watch_for_problems`` fails the test on any CSP report or error)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from playwright.sync_api import expect

from assistant.insights.models import GapResolution
from knowledge.models import Source
from tests.support.browser import log_in
from tests.support.insights import ask
from tests.support.knowledge import make_collection

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

VACATION = "How many vacation days do I get per year?"


@pytest.fixture
def seeded(make_user):
    person = make_user(email="person@example.com")
    collection = make_collection("Handbook", everyone=True)
    source = Source.objects.create(
        collection=collection, kind="file", name="leave-policy.md", status="ready"
    )
    earlier = timezone.now() - timedelta(days=3)
    for day in range(10):
        ask(person, f"Meal allowance {day}?", cite=source, at=timezone.now() - timedelta(days=day))
    ask(person, VACATION, nothing_found=True, at=earlier)
    ask(person, "How many days of vacation do I get each year?", rating=-1, at=earlier)
    ask(person, "<b>What is the guest wifi password?</b>", nothing_found=True, at=earlier)
    return source


def test_staff_see_the_charts_and_the_gaps_and_mark_one_resolved(
    chat_server, page, make_user, seeded, screenshot
):
    staff = make_user(email="lead@example.com", password="correct horse battery", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="read_user_conversations"))
    log_in(page, chat_server, staff.email)

    page.goto(chat_server + "/insights/", timeout=60_000)  # the first load starts the embedder

    expect(page.locator('[data-chart="questions"] rect.bar')).to_have_count(30)
    expect(page.locator('[data-chart="latency"] polyline')).to_have_count(4)
    expect(page.locator('[data-total="questions"]')).to_have_text("13")
    groups = page.locator(".gap-group")
    expect(groups).to_have_count(2)
    vacation = groups.filter(has_text="asked 2 times")
    expect(vacation).to_contain_text("1 found nothing")
    expect(groups.filter(has_text="wifi")).to_contain_text(
        "<b>What is the guest wifi password?</b>"
    )
    screenshot(page, "insights-page", full_page=True)

    vacation.locator("select[name=source_id]").select_option(label="leave-policy.md (Handbook)")
    vacation.get_by_role("button", name="Mark resolved").click()

    expect(page.locator(".messages")).to_contain_text("Marked resolved")
    expect(page.locator(".gap-group")).to_have_count(1)
    expect(page.locator("tr.resolution")).to_contain_text("leave-policy.md")
    resolution = GapResolution.objects.get()
    assert resolution.source == seeded and resolution.question_count == 2
    assert page.problems == []
    screenshot(page, "insights-resolved", full_page=True)
