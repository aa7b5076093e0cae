"""The import wizard (upload → map → match values → preview → import), the job's own page with
its live progress, what it changed, its error report and Undo, and the organization's import
history. One module per step: upload, mapping, values, preview, detail (the job once started),
history (with the dashboard panel); common holds what they share.

Every view needs the contacts module and the right to import (contacts create or edit); the
services re-check what they need, so a forged POST gets the same 403 as a hidden button.
An import is its creator's, as a contact is its owner's: a member reaches only the imports
their contacts scope covers (selectors.imports_in_scope), and any other is a 404. What its
pages show of contacts and of the file follows the reader's record scope and field rules.
"""
