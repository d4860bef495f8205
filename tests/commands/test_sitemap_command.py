"""`manage.py sitemap URL --collection NAME` against a real site on 127.0.0.1."""

import pytest
from django.core.management import CommandError, call_command

from knowledge.models import Sitemap, Source
from tests.support.local_site import serve_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(settings):
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost"]
    with serve_site() as site:
        yield site


def test_the_command_adds_the_listed_pages_and_says_what_it_refused(site, admin, capsys):
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
    with pytest.raises(SystemExit) as exit_:
        call_command("sitemap", site.url("/sitemap.xml"), "--collection", "Intranet")
    assert exit_.value.code == 1
    assert "The server answered 404" in capsys.readouterr().err


def test_a_nonsense_address_is_refused_clearly(admin):
    with pytest.raises(CommandError, match="Only http:// and https://"):
        call_command("sitemap", "ftp://example.com/sitemap.xml", "--collection", "Intranet")
