"""Contact filter conditions over a contact's orders and associated records, registered with
the contact filter engine (contacts.filters.related) from PipelineConfig.ready(): contacts
never imports pipeline.

    {"field": "orders", "op": "has", "value": {"status": ["paid"], "days": 90}}
    {"field": "orders", "op": "has_none", "value": {"source": ["webhook"]}}
    {"field": "orders.total_paid", "op": "gt", "value": {"amount": "1000", "currency": "EUR"}}
    {"field": "orders.total_paid", "op": "between",
     "value": {"min": "100", "max": "1000", "currency": "EUR"}}
    {"field": "orders.count", "op": "gt", "value": {"count": 3, "status": ["paid"]}}
    {"field": "objects", "op": "associated",
     "value": {"type": "<object type public id>",
               "where": {"field": "level", "op": "eq", "value": "Advanced"}}}

An order's options: `status` and `source` (one or a list: any of them), and a period on the
order date, either `days` (the last N days in the organization's time zone, today included)
or `from` / `to` (inclusive dates, either end may be left open).

"Total paid" sums the value of paid orders in one currency. Orders in other currencies are
left out, not converted: an exchange rate has a date, so converting would mean a rate per
order date, and the sum would drift with every new rate; the description says so. A contact
without paid orders has a total of 0 (so "less than 100" includes them).

Record scope: the contacts listed are the member's (the list applies their contacts scope).
Orders follow the Pipeline module's rights and are visible on every contact in scope
(pipeline.order_queries), so all orders of a listed contact count, and a role without the
Pipeline view right cannot use the order conditions at all. A custom-object record is the
member's to see only inside their Custom objects scope, so only those records count:
"associated with a Course" never reveals a course the member cannot open.

Both modules must be on for the organization; a condition of a module that is off is refused
with a message saying so (a saved view keeps it, and shows the message until the module is
back on).
"""

from __future__ import annotations

from contacts.filters import register_related_condition

from .objects import OBJECT_CONDITIONS
from .orders import ORDER_CONDITIONS

CONDITIONS = [*ORDER_CONDITIONS, *OBJECT_CONDITIONS]


def register() -> None:
    """Register the conditions with the contact filter engine (PipelineConfig.ready())."""
    for condition in CONDITIONS:
        register_related_condition(condition)
