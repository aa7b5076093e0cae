from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.db import transaction

from .services import organization_create


class SignupForm(AllauthSignupForm):
    """Sign-up makes a new organization with the new user as its Owner."""

    first_name = forms.CharField(max_length=150, label="First name")
    last_name = forms.CharField(max_length=150, label="Last name", required=False)
    organization_name = forms.CharField(
        max_length=200,
        label="Organization name",
        help_text="Your company or team. You can invite colleagues once inside.",
    )

    field_order = [
        "first_name",
        "last_name",
        "email",
        "organization_name",
        "password1",
        "password2",
    ]

    def clean_organization_name(self):
        name = self.cleaned_data["organization_name"].strip()
        if not name:
            raise forms.ValidationError("Give your organization a name.")
        return name

    @transaction.atomic
    def save(self, request):
        user = super().save(request)
        user.first_name = self.cleaned_data.get("first_name", "")
        user.last_name = self.cleaned_data.get("last_name", "")
        user.save(update_fields=["first_name", "last_name"])
        organization_create(name=self.cleaned_data["organization_name"], owner=user)
        return user
