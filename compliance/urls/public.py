"""Pages for people outside the app, reached through signed links (no login): the preference
center, the one-click unsubscribe and the double opt-in confirmation."""

from django.urls import path

from ..views import public

urlpatterns = [
    path("p/<str:token>/", public.preference_center, name="preferences"),
    path("u/<str:token>/", public.unsubscribe, name="unsubscribe"),
    path("confirm/<str:token>/", public.confirm, name="confirm_opt_in"),
]
