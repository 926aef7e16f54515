"""The example's page and its ``notify`` view."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from wsgisse.integrations.django import send_event_on_commit

from . import USERS


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """The page: the notifications as they arrive, and a form to send one."""
    return render(request, "notifications/index.html", {"users": USERS})


@login_required
@require_POST
@transaction.atomic
def notify(request: HttpRequest) -> JsonResponse:
    """Send ``message`` to ``to``: ``"everyone"`` (the default) or a user name.

    The event leaves once the transaction commits (here, when the view returns): a
    notification about a row you save is never seen before the row is.
    """
    text = request.POST.get("message", "").strip()
    to = request.POST.get("to", "everyone")
    if not text:
        return JsonResponse({"error": "an empty message"}, status=400)
    audience = None
    if to != "everyone":
        target = get_user_model().objects.filter(username=to).first()
        if target is None:
            return JsonResponse({"error": f"no user {to!r}"}, status=400)
        audience = [target]
    data = {"text": text, "from": request.user.get_username(), "to": to, "at": timezone.now()}
    send_event_on_commit("notifications", data, event="notification", audience=audience)
    return JsonResponse({"to": to}, status=202)
