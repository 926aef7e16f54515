"""The example's URLs: the page, the stream, sending, logging in, and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("notify", views.notify, name="notify"),
    path("events/", include("wsgisse.integrations.django.urls"), {"channels": ["notifications"]}),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
