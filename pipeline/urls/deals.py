"""deals routes."""

urlpatterns: list = []
