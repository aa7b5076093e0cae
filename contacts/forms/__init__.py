"""Forms for the contact record, companies, tasks, notes, quick-log and custom fields.

The contact and company forms are built from the field catalog for one member: hidden fields
are left out entirely, visible-only fields are rendered disabled (Django then ignores whatever
a forged POST sends for them), custom fields become real typed inputs. Forms only shape input;
the services check it again and do the writing.

The modules: catalog (the contact and company forms), activity (task, note, quick log and the
contact picker), definitions (the custom-field settings form), common (what they share: form
names of catalog keys, the member picker, typed inputs). Import from the package: the names
below are its interface.
"""

from .activity import ContactPickField, NoteForm, QuickLogForm, TaskForm
from .catalog import CompanyForm, ContactForm
from .common import NO_ONE, active_member_users, catalog_key, form_name
from .definitions import CustomFieldDefinitionForm

__all__ = [
    "NO_ONE",
    "CompanyForm",
    "ContactForm",
    "ContactPickField",
    "CustomFieldDefinitionForm",
    "NoteForm",
    "QuickLogForm",
    "TaskForm",
    "active_member_users",
    "catalog_key",
    "form_name",
]
