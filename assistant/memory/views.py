"""The "What the assistant remembers about you" page: list, edit, delete (after a confirmation
page, which needs no script under the strict CSP), delete all, pause, and learning on or off."""

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.defaultfilters import truncatechars
from django.views.decorators.http import require_http_methods, require_POST

from assistant.memory import selectors, services
from assistant.models import MemoryItem


def memory_page(request):
    return render(
        request,
        "assistant/memory.html",
        {
            "items": selectors.items_of(request.user),
            "enabled": selectors.is_enabled(request.user),
            "auto_learn": selectors.auto_learn_for(request.user),
            "kinds": MemoryItem.Kind.choices,
            "max_chars": services.MAX_ITEM_CHARS,
        },
    )


@require_POST
def memory_add(request):
    try:
        services.remember(user=request.user, text=request.POST.get("text", ""))
    except services.MemoryRefused as exc:
        messages.error(request, str(exc))
    return redirect("memory")


@require_POST
def memory_edit(request, item_id: int):
    try:
        item = services.item_update(
            user=request.user,
            item_id=item_id,
            text=request.POST.get("text", ""),
            kind=request.POST.get("kind") or None,
        )
    except ObjectDoesNotExist:
        raise Http404("No such memory.") from None
    except services.MemoryRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Saved: “{truncatechars(item.text, 80)}”.")
    return redirect("memory")


@require_http_methods(["GET", "POST"])
def memory_delete(request, item_id: int):
    """GET asks first (a page of its own); POST deletes and says what was forgotten."""
    try:
        if request.method == "GET":
            item = selectors.item_of(user=request.user, item_id=item_id)
            return render(request, "assistant/memory_delete.html", {"item": item})
        text = services.item_delete(user=request.user, item_id=item_id)
    except ObjectDoesNotExist:
        raise Http404("No such memory.") from None
    messages.success(request, f"Deleted: “{truncatechars(text, 80)}”. It won't be used again.")
    return redirect("memory")


@require_http_methods(["GET", "POST"])
def memory_delete_all(request):
    """GET asks first, saying how many items would go; POST deletes them."""
    if request.method == "GET":
        count = selectors.items_of(request.user).count()
        return render(request, "assistant/memory_delete.html", {"item": None, "count": count})
    count = services.delete_all(user=request.user)
    messages.success(request, f"Forgot {count} item(s). The assistant remembers nothing about you.")
    return redirect("memory")


@require_POST
def memory_pause(request):
    paused = request.POST.get("paused") == "1"
    services.set_paused(user=request.user, paused=paused)
    messages.success(request, "Memory is paused." if paused else "Memory is on.")
    return redirect("memory")


@require_POST
def memory_learning(request):
    on = request.POST.get("on") == "1"
    services.set_auto_learn(user=request.user, on=on)
    messages.success(
        request,
        "The assistant will learn from what you write."
        if on
        else "The assistant won't learn from what you write. It still keeps what you add yourself.",
    )
    return redirect("memory")
