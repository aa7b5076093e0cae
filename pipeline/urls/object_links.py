"""Links between custom object records and contacts or deals (associations)."""

urlpatterns: list = []
