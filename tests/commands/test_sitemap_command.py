"""`manage.py sitemap URL --collection NAME` against a real site on 127.0.0.1."""

import pytest
from django.core.management import CommandError, call_command

from knowledge.models import Collection, Sitemap, Source
from knowledge.selectors import collections_readable_by
from tests.support.knowledge import make_collection
from tests.support.local_site import serve_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(settings):
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost"]
    with serve_site() as site:
        yield site


def test_the_command_adds_the_listed_pages_and_says_what_it_refused(site, admin, capsys):
    make_collection("Intranet")
    site.put(
        "/sitemap.xml",
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{site.url('/a.html')}</loc></url>"
        "<url><loc>http://10.0.0.7/secret</loc></url></urlset>",
        content_type="application/xml",
    )

    call_command("sitemap", site.url("/"), "--collection", "Intranet")

    out = capsys.readouterr().out
    # The other host's entry is refused, not listed.
    assert "pages listed 1, added 1 to Intranet (queued for indexing), refused 1" in out
    assert "refused http://10.0.0.7/secret: It is on another site" in out
    assert list(Source.objects.values_list("url", flat=True)) == [site.url("/a.html")]
    assert Sitemap.objects.get().url == site.url("/sitemap.xml")


def test_an_unreadable_sitemap_exits_non_zero_with_the_reason(site, admin, capsys):
    make_collection("Intranet")
    with pytest.raises(SystemExit) as exit_:
        call_command("sitemap", site.url("/sitemap.xml"), "--collection", "Intranet")
    assert exit_.value.code == 1
    assert "The server answered 404" in capsys.readouterr().err


def test_a_sitemap_address_that_serves_a_web_page_says_a_sitemap_was_expected(site, admin, capsys):
    make_collection("Intranet")
    site.put("/sitemap.xml", "<html><body>Welcome</body></html>")  # text/html

    with pytest.raises(SystemExit) as exit_:
        call_command("sitemap", site.url("/sitemap.xml"), "--collection", "Intranet")

    said = capsys.readouterr().err
    assert exit_.value.code == 1
    assert "returned text/html; expected application/xml or text/xml" in said
    assert "Word documents" not in said


def test_a_nonsense_address_is_refused_clearly(admin):
    with pytest.raises(CommandError, match="Only http:// and https://"):
        call_command(
            "sitemap", "ftp://example.com/sitemap.xml", "--collection", "Intranet", "--create"
        )
    assert not Collection.objects.exists()


@pytest.mark.parametrize("email", ["nobody@example.com", "reader@example.com", "gone@example.com"])
def test_an_unknown_inactive_or_non_managing_user_adds_nothing(site, admin, make_user, email):
    make_user(email="reader@example.com")
    make_user(email="gone@example.com", is_active=False, is_staff=True)
    make_collection("Intranet")
    site.put("/sitemap.xml", "<urlset/>", content_type="application/xml")

    with pytest.raises(CommandError):
        call_command("sitemap", site.url("/"), "--collection", "Intranet", "--user", email)

    assert not Sitemap.objects.exists() and site.requests_for("/sitemap.xml") == []


def test_a_mistyped_collection_is_refused_not_created(site, admin):
    make_collection("Intranet")
    site.put("/sitemap.xml", "<urlset/>", content_type="application/xml")

    with pytest.raises(CommandError, match="No collection is named 'Intranat'.*--create"):
        call_command("sitemap", site.url("/"), "--collection", "Intranat")

    assert list(Collection.objects.values_list("name", flat=True)) == ["Intranet"]
    assert not Sitemap.objects.exists() and site.requests_for("/sitemap.xml") == []


def test_create_makes_a_collection_only_staff_and_chosen_groups_read(
    site, admin, make_user, capsys
):
    site.put(
        "/sitemap.xml",
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{site.url('/a.html')}</loc></url></urlset>",
        content_type="application/xml",
    )

    call_command("sitemap", site.url("/"), "--collection", "Intranet", "--create")

    created = Collection.objects.get(name="Intranet")
    assert created.visibility == Collection.Visibility.GROUPS
    assert not created.read_groups.exists()
    assert created not in collections_readable_by(make_user(email="staffer@example.com"))
    assert "Created the collection 'Intranet'." in capsys.readouterr().out
    assert Sitemap.objects.get().collection == created
