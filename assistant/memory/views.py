"""The "What the assistant remembers about you" page: list, edit, delete, delete all, pause."""

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from assistant.memory import selectors, services


def memory_page(request):
    return render(
        request,
        "assistant/memory.html",
        {
            "items": selectors.items_of(request.user),
            "enabled": selectors.is_enabled(request.user),
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
        services.item_update(user=request.user, item_id=item_id, text=request.POST.get("text", ""))
    except ObjectDoesNotExist:
        raise Http404("No such memory.") from None
    except services.MemoryRefused as exc:
        messages.error(request, str(exc))
    return redirect("memory")


@require_POST
def memory_delete(request, item_id: int):
    try:
        services.item_delete(user=request.user, item_id=item_id)
    except ObjectDoesNotExist:
        raise Http404("No such memory.") from None
    return redirect("memory")


@require_POST
def memory_delete_all(request):
    count = services.delete_all(user=request.user)
    messages.success(request, f"Forgot {count} item(s).")
    return redirect("memory")


@require_POST
def memory_pause(request):
    paused = request.POST.get("paused") == "1"
    services.set_paused(user=request.user, paused=paused)
    messages.success(request, "Memory is paused." if paused else "Memory is on.")
    return redirect("memory")
