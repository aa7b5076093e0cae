"""The app's one date and time format (docs/glossary.md), for English locales.

Django reads these through FORMAT_MODULE_PATH, so `|date:"DATETIME_FORMAT"`, a bare
`{{ value }}` and the shared `|datetime` / `|day` filters (crm/templatetags/crm_tags.py)
all print the same: "Dec 3, 2026, 03:31" and "Dec 3, 2026".
"""

DATETIME_FORMAT = "M j, Y, H:i"
DATE_FORMAT = "M j, Y"
TIME_FORMAT = "H:i"
SHORT_DATETIME_FORMAT = "M j, Y, H:i"
SHORT_DATE_FORMAT = "M j, Y"
MONTH_DAY_FORMAT = "M j"
