"""Forms of the import wizard. They only hold and present what the user chose; the services
(contacts/importing/services.py) decide whether it is valid and say why not."""

from __future__ import annotations

from django import forms

from crm.models import Membership

from ..models import Contact
from .detect import DELIMITER_NAMES, ENCODINGS
from .mapper import CUSTOM, CUSTOM_TYPES, SKIP
from .models import ImportJob
from .services import ALLOWED_EXTENSIONS

# The order of the groups in the target dropdown (import_targets gives each target its group).
TARGET_GROUPS = ["Core", "Personal", "Address", "Social", "Company", "Compliance", "Custom"]

SKIP_LABEL = "Skip this column"
CUSTOM_LABEL = "Store as custom field"


class UploadForm(forms.Form):
    file = forms.FileField(
        label="File",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(ALLOWED_EXTENSIONS)}),
        error_messages={
            "required": "Choose a file to upload.",
            "empty": "The file is empty.",
        },
    )


class DetectionForm(forms.Form):
    """The user's correction of what detection found. The header row is shown 1-based
    ("row 3 of the file"); the job keeps it 0-based."""

    encoding = forms.ChoiceField(label="Text encoding", choices=[])
    delimiter = forms.ChoiceField(label="Values separated by", choices=[])
    header_row = forms.IntegerField(
        label="Column names are on row", min_value=1, max_value=101, initial=1
    )

    def __init__(self, *args, job: ImportJob, **kwargs):
        kwargs.setdefault(
            "initial",
            {
                "encoding": job.encoding,
                "delimiter": job.delimiter,
                "header_row": job.header_row + 1,
            },
        )
        super().__init__(*args, **kwargs)
        encodings = list(ENCODINGS)
        if job.encoding and job.encoding not in dict(encodings):
            # UTF-16 without a byte-order mark is detected with its byte order.
            byte_order = "little-endian" if job.encoding.endswith("le") else "big-endian"
            encodings.append((job.encoding, f"UTF-16 ({byte_order}, no byte-order mark)"))
        self.fields["encoding"].choices = encodings
        self.fields["delimiter"].choices = [
            (value, name.capitalize()) for value, name in DELIMITER_NAMES.items()
        ]
        if job.file_kind == "xlsx":
            # A workbook has cells, not text: only the header row can be corrected.
            del self.fields["encoding"]
            del self.fields["delimiter"]


def member_choices(members) -> list[tuple[str, str]]:
    """(public id, name) of each membership in `members`, by name."""
    members = members.select_related("user").order_by(
        "user__first_name", "user__last_name", "user__email"
    )
    return [(str(m.user.public_id), m.user.display_name) for m in members]


class MappingForm(forms.Form):
    """One target select per column (named col_<index>, since headers may hold any text),
    the defaults for what the file leaves empty, the update and blank policies, and the
    optional name to save the mapping under."""

    default_owner = forms.ChoiceField(label="Owner", required=False)
    default_source = forms.CharField(
        label="Source",
        required=False,
        max_length=120,
        help_text="e.g. “Trade show 2026”. Used when the file has no source column.",
    )
    default_tags = forms.CharField(
        label="Tags",
        required=False,
        max_length=500,
        help_text="Comma-separated; added to every imported contact.",
    )
    default_consent_status = forms.ChoiceField(label="Consent status", required=False)
    default_consent_type = forms.ChoiceField(
        label="Consent type", choices=Contact.ConsentType.choices
    )
    policy = forms.ChoiceField(
        label="Contacts that already exist",
        choices=ImportJob.Policy.choices,
        widget=forms.RadioSelect,
    )
    blank_policy = forms.ChoiceField(
        label="Empty cells",
        choices=[
            (ImportJob.BlankPolicy.KEEP, "Keep the value the contact already has"),
            (ImportJob.BlankPolicy.OVERWRITE, "Clear the contact's value"),
        ],
        widget=forms.RadioSelect,
    )
    save_as = forms.CharField(
        label="Save this mapping as",
        required=False,
        max_length=120,
        help_text="Files with the same columns will be mapped this way automatically.",
    )

    def __init__(
        self,
        *args,
        job: ImportJob,
        targets: list[tuple[str, str, str]],
        can_create_custom: bool,
        mapping: dict | None = None,
        suggested_owner: str = "",
        owners=None,
        owner_error: str = "",
        **kwargs,
    ):
        """`owners`: the memberships the member may give the contacts to (the select offers
        only them, and `owner_error` says so to a forged choice); all active members if None."""
        self.job = job
        defaults = job.defaults or {}
        initial = {
            # Until the mapping is first saved, suggest the owner the view proposes.
            "default_owner": defaults.get(
                "owner_public_id",
                suggested_owner if job.status == ImportJob.Status.UPLOADED else "",
            ),
            "default_source": defaults.get("source", ""),
            "default_tags": ", ".join(defaults.get("tags") or []),
            "default_consent_status": defaults.get("consent_status", ""),
            "default_consent_type": defaults.get("consent_type") or Contact.ConsentType.IMPORTED,
            "policy": job.policy,
            "blank_policy": job.blank_policy,
        }
        # A mapping given here replaces the saved one ("Reset to suggestions"): so do kinds.
        chosen_types = (job.defaults or {}).get("custom_types", {}) if mapping is None else {}
        mapping = job.mapping if mapping is None else mapping
        for index, header in enumerate(job.headers):
            initial[self.column_field(index)] = mapping.get(header, SKIP)
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)

        if owners is None:
            owners = Membership.objects.for_org(job.org).active()
        self.fields["default_owner"].choices = [
            ("", "Nobody (unassigned)"),
            *member_choices(owners),
        ]
        if owner_error:
            self.fields["default_owner"].error_messages["invalid_choice"] = owner_error
        self.fields["default_consent_status"].choices = [
            ("", "Leave as Unknown"),
            *[(v, lbl) for v, lbl in Contact.ConsentStatus.choices if v != "unknown"],
        ]
        choices = self.target_choices(targets, can_create_custom)
        suggested = {s["column"]: s["target"] for s in job.suggestions or []}
        suggested_types = {s["column"]: s.get("custom_type", "text") for s in job.suggestions or []}
        for index, header in enumerate(job.headers):
            self.fields[self.column_field(index)] = forms.ChoiceField(
                label=header,
                choices=choices,
                required=False,
                # "Reset to suggestions" restores these in the page without a round trip.
                widget=forms.Select(attrs={"data-suggested": suggested.get(header, SKIP)}),
            )
            if can_create_custom:
                kind = suggested_types.get(header, "text")
                self.fields[self.type_field(index)] = forms.ChoiceField(
                    label=f"Kind of custom field for “{header}”",
                    choices=CUSTOM_TYPES,
                    required=False,
                    initial=chosen_types.get(header, kind),
                    widget=forms.Select(attrs={"data-suggested-kind": kind}),
                )

    @staticmethod
    def column_field(index: int) -> str:
        return f"col_{index}"

    @staticmethod
    def type_field(index: int) -> str:
        """The kind of custom field a column stored as one gets."""
        return f"type_{index}"

    @staticmethod
    def target_choices(targets, can_create_custom: bool) -> list:
        grouped: dict[str, list] = {group: [] for group in TARGET_GROUPS}
        for key, label, group in targets:
            grouped.setdefault(group, []).append((key, label))
        choices: list = [(SKIP, SKIP_LABEL)]
        if can_create_custom:
            choices.append((CUSTOM, CUSTOM_LABEL))
        choices += [(group, options) for group, options in grouped.items() if options]
        return choices

    def column_fields(self):
        return [self[self.column_field(i)] for i in range(len(self.job.headers))]

    def type_fields(self):
        """Each column's custom field kind, None where the member may not create fields."""
        return [
            self[self.type_field(i)] if self.type_field(i) in self.fields else None
            for i in range(len(self.job.headers))
        ]

    def custom_types(self) -> dict:
        data = self.cleaned_data
        return {
            header: data.get(self.type_field(i)) or "text"
            for i, header in enumerate(self.job.headers)
            if self.type_field(i) in self.fields
        }

    def mapping(self) -> dict:
        data = self.cleaned_data
        return {
            header: data.get(self.column_field(i)) or SKIP
            for i, header in enumerate(self.job.headers)
        }

    def defaults(self) -> dict:
        data = self.cleaned_data
        return {
            "owner": data.get("default_owner", ""),
            "source": data.get("default_source", ""),
            "tags": data.get("default_tags", ""),
            "consent_status": data.get("default_consent_status", ""),
            "consent_type": data.get("default_consent_type", ""),
        }

    def describe_errors(self) -> None:
        """Point each invalid control at its error list (rendered as "<id>-errors")."""
        for name, field in self.fields.items():
            if name in self.errors:
                field.widget.attrs["aria-describedby"] = f"{self[name].auto_id}-errors"

    # The services name problems by column header or by their own keys.
    SERVICE_KEYS = {
        "policy": "policy",
        "blank_policy": "blank_policy",
        "default_owner": "default_owner",
        "default_consent_status": "default_consent_status",
        "default_consent_type": "default_consent_type",
    }

    def add_service_errors(self, error) -> None:
        """Put a ValidationError from import_set_mapping next to the control it is about."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        columns = {header: self.column_field(i) for i, header in enumerate(self.job.headers)}
        for key, messages in error.message_dict.items():
            field = columns.get(key) or self.SERVICE_KEYS.get(key)
            for message in messages:
                self.add_error(field, message)


class ValueMatchForm(forms.Form):
    """The match-values step: one choice per shown value (named m_<column>_<row>, since
    values may hold any text), and the optional name to save the mapping under. It only
    holds what was chosen: import_set_value_map decides whether each choice is allowed."""

    save_as = forms.CharField(
        label="Save this mapping as",
        required=False,
        max_length=120,
        help_text="Files with the same columns will be mapped and matched this way.",
    )

    def __init__(self, *args, columns: list[dict], **kwargs):
        """`columns`: [{"header": ..., "top": [[value, count], ...]}, ...] as the page
        shows them."""
        super().__init__(*args, **kwargs)
        self.columns = columns
        self.rows: dict[str, tuple[str, str]] = {}  # field name -> (header, value)
        for ci, column in enumerate(columns):
            for ri, (value, _count) in enumerate(column["top"]):
                name = self.value_field(ci, ri)
                self.rows[name] = (column["header"], value)
                self.fields[name] = forms.CharField(required=False, strip=False, max_length=40)

    @staticmethod
    def value_field(column: int, row: int) -> str:
        return f"m_{column}_{row}"

    def choices(self) -> dict[str, dict[str, str]]:
        """{header: {value: stored}} of the values the page sent."""
        out: dict[str, dict[str, str]] = {}
        for name, (header, value) in self.rows.items():
            if name in self.data:
                out.setdefault(header, {})[value] = self.cleaned_data.get(name) or ""
        return out

    def add_service_errors(self, error) -> None:
        """Put a ValidationError from import_set_value_map next to the value it is about."""
        from .matching import error_key

        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        fields = {error_key(header, value): name for name, (header, value) in self.rows.items()}
        for key, messages in error.message_dict.items():
            for message in messages:
                self.add_error(fields.get(key), message)
