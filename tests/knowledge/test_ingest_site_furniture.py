"""`manage.py ingest --inline` of a folder of one site's pages: no worker to run the pages that
later pages put back in line, so the command runs them itself before it reports."""

import pytest
from django.core.management import call_command

from knowledge.models import Chunk, Source
from knowledge.parsing import furniture

pytestmark = pytest.mark.django_db

FOOTER = "© 2026 ACME Corp. All rights reserved. Questions go to intranet@acme.example"


def test_ingest_inline_of_a_site_folder_ends_ready_and_without_the_shared_footer(tmp_path, admin):
    for n in range(furniture.MIN_PAGES):
        (tmp_path / f"page{n}.html").write_text(
            f"<html><title>Page {n}</title><body><h1>Page {n}</h1>"
            f"<p>Policy number {n} is explained on this page.</p><p>{FOOTER}</p></body></html>"
        )

    call_command("ingest", str(tmp_path), "--collection", "Site", "--inline", "--timeout", "20")

    sources = Source.objects.filter(collection__name="Site")
    assert sorted(sources.values_list("status", flat=True)) == ["ready"] * furniture.MIN_PAGES
    texts = list(Chunk.objects.filter(source__in=sources).values_list("text", flat=True))
    assert texts and not any(FOOTER in text for text in texts)
