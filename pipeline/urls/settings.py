"""settings routes."""

urlpatterns: list = []
