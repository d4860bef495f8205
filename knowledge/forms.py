"""Input parsing for the knowledge pages. Forms validate; services write."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import URLValidator
from django.urls import reverse
from django.utils.html import format_html

from knowledge import fetching
from knowledge.models import Collection

# How long the form waits for DNS before leaving the address check to the fetch itself.
URL_CHECK_DNS_TIMEOUT = 3.0


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

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_url(self) -> str:
        """Refuses at once what the fetch would refuse later: the fetch's own rules
        (``fetching.check_url_address``), so the person who typed the address learns why now,
        rather than finding a failed source afterwards. The fetch checks again (DNS changes)."""
        url = self.cleaned_data["url"]
        try:
            fetching.check_url_address(
                url,
                allowed_hosts=settings.URL_FETCH_ALLOWED_HOSTS,
                allowed_networks=settings.URL_FETCH_ALLOWED_NETWORKS,
                timeout=URL_CHECK_DNS_TIMEOUT,
            )
        except fetching.AddressRefused as exc:
            raise forms.ValidationError(self._refusal(exc)) from None
        except fetching.FetchError as exc:
            raise forms.ValidationError(str(exc)) from None
        return url

    def _refusal(self, exc: fetching.AddressRefused) -> str:
        # An address typed as is needs no "127.0.0.1 points to 127.0.0.1". Which internal
        # address a name resolves to is for staff only: for anyone else the form would be a
        # probe of the internal DNS, answering at once and storing (auditing) nothing.
        staff = self.user is not None and self.user.is_staff
        literal = exc.host.strip("[]") == str(exc.address)
        if literal:
            where = f"{exc.host} is"
        elif staff:
            where = f"{exc.host} points to {exc.address},"
        else:
            where = f"{exc.host} points to"
        if exc.always:
            return (
                f"{where} a link-local or reserved address (where cloud servers keep their "
                "credentials), so it is never fetched."
            )
        said = (
            f"{where} an internal address, so it is not fetched unless the "
            "URL_FETCH_ALLOWED_HOSTS setting allows it."
        )
        if staff:
            return (
                f"{said} To allow it, add {exc.host} to URL_FETCH_ALLOWED_HOSTS (comma-separated; "
                "a leading dot allows a whole domain, like .corp.example) in the environment of "
                "the web and worker processes, then restart them."
            )
        return f"{said} Ask an administrator to allow {exc.host} if it should be fetched."


class SitemapUrlForm(SourceUrlForm):
    """A sitemap.xml, or a site's root (read as its /sitemap.xml), checked by the same address
    rules as a web page, so a refused address is said at once."""

    url = forms.URLField(
        label="Sitemap or site address",
        max_length=2000,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        error_messages={
            "invalid": "Enter a full web address, like https://intranet.example.com/sitemap.xml."
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

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        has_groups = Group.objects.exists()
        if not has_groups:
            # Nobody could read a collection limited to groups that do not exist (the command
            # line's default is the same).
            self.fields["visibility"].initial = Collection.Visibility.EVERYONE
        self.fields["read_groups"].help_text = self._groups_help(user, has_groups)

    @staticmethod
    def _groups_help(user, has_groups: bool) -> str:
        """Where groups come from, since the form cannot make one: SSO sign-ins bring them, or
        someone allowed to add groups makes them in the admin (linked for them)."""
        said = (
            "Used with “Only the chosen groups”. "
            if has_groups
            else "There are no groups yet, so only “Everyone signed in” can read it. "
        )
        origin = (
            "Groups come from single sign-on (the identity provider's group claim or SAML "
            "groups attribute, at each person's sign-in) or are made in the admin"
        )
        if user is not None and user.has_perm("auth.add_group"):
            return format_html(
                '{}{}: <a href="{}">manage groups</a>.',
                said,
                origin,
                reverse("admin:auth_group_changelist"),
            )
        return format_html("{}{} by an administrator.", said, origin)

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
