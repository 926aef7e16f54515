"""The admin's user list, with an action that revokes users' event streams."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from wsgisse.integrations.django import revoke


class RevokingUserAdmin(UserAdmin):  # type: ignore[type-arg]
    """Django's user admin, plus "Revoke event streams"."""

    actions = ("revoke_streams",)

    @admin.action(description="Revoke event streams (and deactivate)")
    def revoke_streams(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        """Deactivate the users (so ``can_read`` refuses them), then end their streams."""
        ended = 0
        for user in queryset:
            user.is_active = False
            user.save(update_fields=["is_active"])
            ended += revoke(user)
        self.message_user(request, f"{ended} stream(s) ended.", messages.SUCCESS)


admin.site.unregister(User)
admin.site.register(User, RevokingUserAdmin)
