"""Input parsing for the knowledge pages. Forms validate; services write."""

from __future__ import annotations

from django import forms
from django.contrib.auth.models import Group
from django.core.validators import URLValidator

from knowledge.models import Collection


class SourceUrlForm(forms.Form):
    url = forms.URLField(
        label="Web page address",
        max_length=2000,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        error_messages={
            "invalid": "Enter a full web address, like https://intranet.example.com/page."
        },
    )


class CollectionForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    visibility = forms.ChoiceField(
        choices=Collection.Visibility.choices,
        initial=Collection.Visibility.GROUPS,
        widget=forms.RadioSelect,
        label="Who may read it",
    )
    read_groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Read groups",
        help_text="Used with 'only the chosen groups'.",
    )
    manage_groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Manage groups",
        help_text="May add, re-index and delete sources (staff always may).",
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Collection.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError("A collection with this name already exists.")
        return name

    def service_kwargs(self) -> dict:
        """The keyword arguments of ``services.collection_create`` (besides ``user``)."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "description": data["description"],
            "visibility": data["visibility"],
            "read_group_ids": [group.pk for group in data["read_groups"]],
            "manage_group_ids": [group.pk for group in data["manage_groups"]],
        }
