"""Custom objects: the types an admin defines (Settings → Custom objects) and their records."""

urlpatterns: list = []
