"""The Insights page (staff only): parse the window, call the selectors, render.

Figures are for staff; people's words (the 👎 list, the questions of knowledge gaps) need the
explicit ``assistant.read_user_conversations`` permission, as in the admin, and each look at
them is recorded in the audit trail like opening a conversation there.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import Action, audit_record
from assistant.insights import charts, selectors, services, tables
from knowledge.models import Source

NOT_STAFF = "Insights are for staff. Ask an administrator if you need them."
NO_TEXTS = (
    "This table holds what people wrote. Reading it needs the permission to read people's "
    "conversations, which an administrator can grant."
)


def _staff(request) -> None:
    if not (request.user.is_active and request.user.is_staff):
        raise PermissionDenied(NOT_STAFF)


def _audit_texts(request, what: str, days: int) -> None:
    audit_record(
        actor=request.user,
        action=Action.CONVERSATION_VIEWED,
        detail={"insights": what, "days": days},
    )


def _charts(data: selectors.Insights) -> dict:
    days = [row["day"].isoformat() for row in data.daily]
    weeks = [row["week"].isoformat() for row in data.weekly]
    return {
        "questions": charts.bar_chart(
            "Questions per day", days, [r["questions"] for r in data.daily]
        ),
        "latency": charts.line_chart(
            "Answer time per day (ms)",
            days,
            [
                ("first token p50", "series-a", [r["first_token_p50"] for r in data.daily]),
                ("first token p95", "series-b", [r["first_token_p95"] for r in data.daily]),
                ("whole answer p50", "series-c", [r["total_p50"] for r in data.daily]),
                ("whole answer p95", "series-d", [r["total_p95"] for r in data.daily]),
            ],
        ),
        "tokens": charts.line_chart(
            "Tokens per day",
            days,
            [
                ("in (prompt)", "series-a", [r["tokens_in"] for r in data.daily]),
                ("out (answer)", "series-c", [r["tokens_out"] for r in data.daily]),
            ],
        ),
        "helpful": charts.bar_chart(
            "Helpful answers per week (% of rated)",
            weeks,
            [r["helpful_rate"] for r in data.weekly],
            zero_is_data=True,
            top=100,
        ),
    }


@login_required
@require_GET
def insights_page(request):
    _staff(request)
    days = selectors.window_days(request.GET.get("days"))
    data = selectors.insights_for(user=request.user, days=days)
    texts = data.downvotes is not None
    if texts:
        _audit_texts(request, "page", days)
    return render(
        request,
        "insights/index.html",
        {
            "data": data,
            "texts": texts,
            "charts": _charts(data),
            "day_choices": selectors.DAY_CHOICES,
            "tables": list(tables.TABLES),
        },
    )


@login_required
@require_GET
def insights_csv(request, table: str):
    _staff(request)
    spec = tables.TABLES.get(table)
    if spec is None:
        raise Http404("No such table.")
    days = selectors.window_days(request.GET.get("days"))
    if spec.texts:
        if not selectors.may_read_conversations(request.user):
            raise PermissionDenied(NO_TEXTS)
        _audit_texts(request, f"{table}.csv", days)
    body = tables.csv_text(spec.header, spec.rows(days))
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="insights-{table}-{days}d.csv"'
    return response


@login_required
@require_POST
def gap_resolve(request):
    _staff(request)
    days = selectors.window_days(request.POST.get("days"))
    back = reverse("insights:index") + f"?days={days}#gaps"
    answer_id = (request.POST.get("answer_id") or "").strip()[:64]
    raw_source = (request.POST.get("source_id") or "").strip()
    try:
        source_id = int(raw_source) if raw_source else None
    except ValueError:
        source_id = -1  # not a number: refused below like an unknown id
    try:
        resolution = services.gap_resolve(
            user=request.user, days=days, answer_id=answer_id, source_id=source_id
        )
    except services.GapChanged:
        messages.error(
            request,
            "That group has changed since the page was loaded (someone may have resolved it). "
            "Here is the current list.",
        )
        return redirect(back)
    except Source.DoesNotExist:
        messages.error(request, "That source no longer exists. Choose another, or none.")
        return redirect(back)
    # The question is someone's words: named only to staff granted reading them (the page's
    # rule); the others learn the group's size.
    if selectors.may_read_conversations(request.user):
        what = f"“{resolution.question[:80]}”"
    else:
        what = f"a group of {resolution.question_count} questions"
    messages.success(
        request, f"Marked resolved: {what}. Later questions like it are followed below."
    )
    return redirect(back)
