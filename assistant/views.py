from django.conf import settings
from django.shortcuts import render

from accounts import views as account_views
from knowledge.selectors import collections_readable_by, readable_knowledge_for
from knowledge.token_page.selectors import token_rows_for


def home(request, conversation_id=None):
    """The chat page; the conversation (if any) is loaded by the page over the API. The empty
    state says what the person's knowledge can answer (or how documents get added)."""
    return render(
        request,
        "assistant/chat.html",
        {
            "conversation_id": str(conversation_id) if conversation_id else "",
            "max_question_chars": settings.CHAT_MAX_QUESTION_CHARS,
            "knowledge": readable_knowledge_for(request.user),
        },
    )


def account(request):
    """The account page (accounts' view) with the knowledge this person can read."""
    return account_views.account(
        request,
        extra_context={
            "readable_collections": collections_readable_by(request.user).order_by("name"),
            "tokens": token_rows_for(request.user),
            "data_export": True,  # templates/privacy/_your_data.html
        },
    )
