"""The inbound order URL for shops and payment tools, its settings and its deliveries log."""

urlpatterns: list = []
