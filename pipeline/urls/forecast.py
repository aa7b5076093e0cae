"""forecast routes."""

urlpatterns: list = []
