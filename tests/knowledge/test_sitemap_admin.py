"""Sitemaps in the Django admin: added through the same service (its first reading queued), a
refused address a form error."""

import pytest
from django.contrib.auth.models import Group

from knowledge.models import Sitemap
from tests.support.events import queued_tasks
from tests.support.knowledge import make_collection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def editor(make_user):
    editors = Group.objects.create(name="editors")
    user = make_user(email="editor@example.com", is_staff=False)
    user.groups.add(editors)
    user.wiki = make_collection("Wiki", everyone=True, managers=[editors])
    return user


def test_a_root_added_in_the_admin_becomes_its_sitemap_and_is_read(client, make_user, editor):
    root = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(root)

    with queued_tasks() as queued:
        response = client.post(
            "/admin/knowledge/sitemap/add/",
            {"collection": editor.wiki.pk, "url": "https://intranet.example/"},
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    sitemap = Sitemap.objects.get()
    assert sitemap.url == "https://intranet.example/sitemap.xml" and sitemap.owner == root
    assert [task.args for task in queued.named("knowledge.refresh_sitemap")] == [(sitemap.pk,)]
    listing = client.get("/admin/knowledge/sitemap/").content.decode()
    assert "https://intranet.example/sitemap.xml" in listing


def test_an_address_that_cannot_be_fetched_is_a_form_error_not_a_sitemap(client, make_user, editor):
    client.force_login(make_user(email="root@example.com", is_staff=True, is_superuser=True))

    response = client.post(
        "/admin/knowledge/sitemap/add/",
        {"collection": editor.wiki.pk, "url": "https://user:secret@intranet.example/"},
    )

    assert response.status_code == 200
    assert "containing a user name or password are not accepted" in response.content.decode()
    assert not Sitemap.objects.exists()


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.7/sitemap.xml", "http://127.0.0.1:5432/", "http://169.254.169.254/latest/"],
)
def test_a_private_address_is_refused_by_the_admin_as_by_the_knowledge_page(
    client, make_user, editor, url
):
    client.force_login(make_user(email="root@example.com", is_staff=True, is_superuser=True))

    response = client.post(
        "/admin/knowledge/sitemap/add/", {"collection": editor.wiki.pk, "url": url}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "internal address" in page or "link-local or reserved" in page
    assert not Sitemap.objects.exists()
