"""The deal board and the contact lifecycle board."""

from django.urls import path

from ..views import board, lifecycle

urlpatterns: list = [
    path("", board.board, name="board"),
    path("column/<uuid:stage_id>/", board.board_column, name="board_column"),
    path("column/<uuid:stage_id>/new/", board.board_quick_create, name="board_quick_create"),
    path("deals/<uuid:public_id>/move/", board.deal_move_view, name="deal_move"),
    path("deals/<uuid:public_id>/board-close/", board.deal_close_view, name="board_close"),
    path("lifecycle/", lifecycle.lifecycle, name="lifecycle"),
    path("lifecycle/column/<slug:stage>/", lifecycle.lifecycle_column, name="lifecycle_column"),
    path(
        "lifecycle/contacts/<uuid:public_id>/move/",
        lifecycle.lifecycle_move,
        name="lifecycle_move",
    ),
]
