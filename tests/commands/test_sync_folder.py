"""manage.py sync PATH --collection NAME: a folder mirrored into a collection, in this process
(call_command, a temporary folder, Celery eager so indexing runs at each commit)."""

from __future__ import annotations

import io
import os
import threading

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from accounts.models import AuditEvent
from knowledge import folder_sync, services
from knowledge.models import Chunk, Collection, Source
from tests.support.knowledge import index_text, make_collection

pytestmark = pytest.mark.django_db(transaction=True)

DRIVE = "Drive"


@pytest.fixture(autouse=True)
def eager(eager_tasks):
    """Indexing runs in this process when each file's transaction commits, as a worker would."""


@pytest.fixture
def drive(admin):
    return make_collection(DRIVE, everyone=True)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    return root


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class OnLine(io.StringIO):
    """Stdout that runs ``action`` once, the moment the command prints a line holding
    ``marker``: a fixed point between two steps of a run, to change the world there."""

    def __init__(self, marker: str, action):
        super().__init__()
        self.marker, self.action = marker, action

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.action is not None and self.marker in text:
            action, self.action = self.action, None
            action()
        return written


def sync(folder, *extra, collection=DRIVE, actor="admin@example.com", stdout=None):
    """Runs the command as an operator would; (exit status, stdout, stderr)."""
    out, err = stdout or io.StringIO(), io.StringIO()
    args = [str(folder), "--collection", collection, "--as", actor, *extra]
    try:
        call_command("sync", *args, stdout=out, stderr=err)
        status = 0
    except SystemExit as exc:
        status = exc.code
    except CommandError as exc:
        status = exc.returncode
        err.write(str(exc))
    return status, out.getvalue(), err.getvalue()


def write(folder, path: str, text: str):
    target = folder / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


def folder_sources(collection) -> dict[str, Source]:
    return {s.folder_path: s for s in Source.objects.filter(collection=collection)}


def chunk_ids(source) -> list[int]:
    return list(Chunk.objects.filter(source=source).order_by("pk").values_list("pk", flat=True))


# --- added, unchanged, changed, removed ---------------------------------------------------


def test_it_adds_new_files_with_their_relative_paths_and_indexes_them(folder, drive):
    write(folder, "travel.md", "# Travel\n\nBook flights through the travel desk.")
    write(folder, "hr/readme.md", "# HR\n\nThe HR team answers leave questions.")
    write(folder, "it/readme.md", "# IT\n\nThe IT team answers laptop questions.")
    status, out, err = sync(folder)
    assert status == 0, out + err
    assert "3 added, 0 changed, 0 unchanged, 0 removed, 0 renamed, 0 skipped, 0 failed" in out
    sources = folder_sources(drive)
    # Two readme.md in two sub-folders stay two sources, named by their path.
    assert sorted(sources) == ["hr/readme.md", "it/readme.md", "travel.md"]
    assert all(s.status == Source.Status.READY and s.chunk_count for s in sources.values())
    assert sources["hr/readme.md"].name == "hr/readme.md"
    assert sources["hr/readme.md"].owner.email == "admin@example.com"


def test_a_second_run_skips_unchanged_files_without_embedding_again(folder, drive):
    write(folder, "travel.md", "# Travel\n\nBook flights through the travel desk.")
    assert sync(folder)[0] == 0
    source = Source.objects.get(collection=drive)
    before = (chunk_ids(source), source.indexed_at)
    status, out, _ = sync(folder)
    assert status == 0
    assert "0 added, 0 changed, 1 unchanged, 0 removed" in out
    source.refresh_from_db()
    assert (chunk_ids(source), source.indexed_at) == before


def test_a_changed_file_is_indexed_again(folder, drive):
    path = write(folder, "travel.md", "# Travel\n\nBook flights through the travel desk.")
    sync(folder)
    path.write_text("# Travel\n\nBook trains, not flights, for trips under four hours.")
    status, out, _ = sync(folder)
    assert status == 0
    assert "0 added, 1 changed, 0 unchanged" in out
    texts = " ".join(Chunk.objects.filter(collection=drive).values_list("text", flat=True))
    assert "trains" in texts and "travel desk" not in texts


def test_a_deleted_file_removes_its_source_and_the_audit_trail_names_the_operator(
    folder, drive, admin
):
    write(folder, "keep.md", "# Keep\n\nThis one stays.")
    gone = write(folder, "old/gone.md", "# Gone\n\nThis one is deleted from the drive.")
    sync(folder)
    removed_id = folder_sources(drive)["old/gone.md"].pk
    gone.unlink()
    status, out, _ = sync(folder)
    assert status == 0
    assert "1 unchanged, 1 removed" in out
    assert sorted(folder_sources(drive)) == ["keep.md"]
    event = AuditEvent.objects.get(action="source.deleted", target_id=str(removed_id))
    assert event.actor == admin and event.detail["name"] == "old/gone.md"


def test_sources_added_in_the_browser_are_never_removed_by_a_sync(folder, drive, admin):
    index_text(drive, "uploaded.md", "# Uploaded\n\nAdded by hand in the browser.", user=admin)
    write(folder, "synced.md", "# Synced\n\nFrom the drive.")
    status, out, _ = sync(folder)
    assert status == 0 and "0 removed" in out
    assert sorted(Source.objects.filter(collection=drive).values_list("name", flat=True)) == [
        "synced.md",
        "uploaded.md",
    ]


@pytest.mark.parametrize("same_bytes", [False, True], ids=["other-bytes", "same-bytes"])
def test_a_browser_upload_of_the_same_name_is_never_taken_over_nor_later_removed(
    folder, drive, admin, same_bytes
):
    text = "# Guide\n\nUploaded by hand in the browser."
    uploaded = index_text(drive, "guide.md", text, user=admin)
    on_drive = write(folder, "guide.md", text if same_bytes else "# Guide\n\nThe drive's copy.")
    write(folder, "other.md", "# Other\n\nKeeps the folder from looking empty.")
    status, out, _ = sync(folder)
    assert status == 0
    assert "guide.md: already names a source added by hand to Drive" in out
    before = (uploaded.content_hash, uploaded.file.name, chunk_ids(uploaded))
    uploaded.refresh_from_db()
    assert uploaded.folder_path == ""  # not the folder's: no sync may delete it
    assert (uploaded.content_hash, uploaded.file.name, chunk_ids(uploaded)) == before
    on_drive.unlink()  # the file leaves the folder: its name's browser source stays
    status, out, _ = sync(folder)
    assert status == 0 and "0 removed" in out
    assert Source.objects.filter(pk=uploaded.pk).exists()


def test_a_renamed_file_keeps_its_source_and_passages_under_its_new_path(folder, drive):
    old = write(folder, "draft.md", "# Policy\n\nExpenses are approved by your manager.")
    sync(folder)
    source = Source.objects.get(collection=drive)
    chunks = chunk_ids(source)
    (folder / "approved").mkdir()
    old.rename(folder / "approved" / "policy.md")
    status, out, _ = sync(folder, "--dry-run")
    assert "would rename approved/policy.md: from draft.md" in out
    assert list(folder_sources(drive)) == ["draft.md"]
    status, out, _ = sync(folder)
    assert status == 0
    assert "0 added, 0 changed, 0 unchanged, 0 removed, 1 renamed" in out
    assert "renamed approved/policy.md: from draft.md" in out
    source.refresh_from_db()
    assert (source.name, source.folder_path) == ("approved/policy.md", "approved/policy.md")
    assert chunk_ids(source) == chunks  # the citations pointing at them still work


def test_a_file_deleted_while_another_arrives_is_a_removal_and_an_addition(folder, drive):
    old = write(folder, "old.md", "# Old\n\nThe old policy.")
    sync(folder)
    old.unlink()
    write(folder, "new.md", "# New\n\nA different policy.")
    status, out, _ = sync(folder)
    assert status == 0
    assert "1 added, 0 changed, 0 unchanged, 1 removed, 0 renamed" in out
    assert list(folder_sources(drive)) == ["new.md"]


# --- what is skipped, refused or failed ---------------------------------------------------


def test_hidden_unsupported_and_empty_files_are_skipped_with_their_reason(folder, drive):
    write(folder, "guide.md", "# Guide\n\nThe only file worth indexing.")
    write(folder, ".git/config", "[core]\n")
    write(folder, ".DS_Store", "junk")
    write(folder, "~$guide.docx", "an Office lock file")
    (folder / "setup.exe").write_bytes(b"MZ\x00\x00")
    write(folder, "empty.md", "")
    status, out, _ = sync(folder)
    assert status == 0
    assert "1 added, 0 changed, 0 unchanged, 0 removed, 0 renamed, 5 skipped, 0 failed" in out
    assert ".git: hidden folder" in out
    assert "setup.exe: not a supported type (.exe)" in out
    assert "empty.md: empty" in out
    assert list(folder_sources(drive)) == ["guide.md"]


def test_a_link_that_leads_outside_the_folder_is_refused_and_never_read(tmp_path, folder, drive):
    secret = tmp_path / "secret.md"
    secret.write_text("# Payroll\n\nThe payroll password is hunter2.")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "more.md").write_text("# More\n\nhunter2 again.")
    (folder / "innocent.md").symlink_to(secret)
    (folder / "docs").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    write(folder, "real.md", "# Real\n\nA file that belongs here.")
    status, out, _ = sync(folder)
    assert status == 0
    assert "innocent.md: a link that leads outside the folder (refused)" in out
    assert "docs: a link that leads outside the folder (refused)" in out
    assert list(folder_sources(drive)) == ["real.md"]
    assert not Chunk.objects.filter(text__contains="hunter2").exists()


@pytest.fixture
def secret(tmp_path):
    """A folder outside the shared one, holding a file a sync must never publish."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.md").write_text("# Payroll\n\nThe payroll password is hunter2.")
    return outside


def swap_for_link(path, target):
    """``path`` (a file or a folder) replaced by a link to ``target``, as an attacker on the
    shared drive would, between the sync's look at it and its read."""
    path.rename(path.with_name(path.name + ".was"))
    path.symlink_to(target, target_is_directory=target.is_dir())


def test_a_file_swapped_for_a_link_outside_after_it_was_hashed_is_never_read(folder, drive, secret):
    write(folder, "a.md", "# A\n\nAlpha.")
    b = write(folder, "b.md", "# B\n\nBeta.")
    stdout = OnLine("added a.md", lambda: swap_for_link(b, secret / "b.md"))
    status, out, err = sync(folder, stdout=stdout)
    assert status == 1, out + err
    assert "b.md: now leads outside the folder (refused, never read)" in err
    assert list(folder_sources(drive)) == ["a.md"]
    assert not Chunk.objects.filter(text__contains="hunter2").exists()


def test_a_folder_swapped_for_a_link_outside_after_it_was_hashed_is_never_read(
    folder, drive, secret
):
    write(folder, "a.md", "# A\n\nAlpha.")
    write(folder, "sub/b.md", "# B\n\nBeta.")
    stdout = OnLine("added a.md", lambda: swap_for_link(folder / "sub", secret))
    status, out, err = sync(folder, stdout=stdout)
    assert status == 1, out + err
    # Not a link itself: only the handle's real place shows where the file is.
    assert "sub/b.md: now leads outside the folder (refused, never read)" in err
    assert list(folder_sources(drive)) == ["a.md"]
    assert not Chunk.objects.filter(text__contains="hunter2").exists()


@pytest.mark.parametrize("swapped", ["b.md", "sub"])
def test_a_file_or_folder_swapped_for_a_link_outside_after_the_scan_is_never_hashed(
    folder, secret, swapped
):
    write(folder, swapped if swapped.endswith(".md") else f"{swapped}/b.md", "# B\n\nBeta.")
    scan = folder_sync.scan_folder(folder, max_bytes=2**20)
    [file] = scan.files
    swap_for_link(folder / swapped, secret / "b.md" if swapped == "b.md" else secret)
    with pytest.raises(folder_sync.FileRefused, match="now leads outside the folder"):
        folder_sync.file_digest(file.absolute, scan.real_root)


def test_a_link_to_a_file_inside_the_folder_is_read_through_its_target(folder, drive):
    write(folder, "real/policy.md", "# Policy\n\nExpenses need a receipt.")
    (folder / "shortcut.md").symlink_to(folder / "real" / "policy.md")
    scan = folder_sync.scan_folder(folder, max_bytes=2**20)
    digests = {f.path: folder_sync.file_digest(f.absolute, scan.real_root) for f in scan.files}
    assert digests["shortcut.md"] == digests["real/policy.md"]


def test_a_file_swapped_for_a_pipe_after_the_scan_fails_without_hanging(folder):
    b = write(folder, "b.md", "# B\n\nBeta.")
    scan = folder_sync.scan_folder(folder, max_bytes=2**20)
    b.unlink()
    os.mkfifo(b)  # opening a pipe to read waits for a writer: a sync must not wait forever
    outcome: list[BaseException] = []

    def digest() -> None:
        try:
            folder_sync.file_digest(scan.files[0].absolute, scan.real_root)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=digest, daemon=True)
    thread.start()
    thread.join(timeout=30)
    if thread.is_alive():  # free the stuck open before failing
        os.close(os.open(b, os.O_WRONLY | os.O_NONBLOCK))
    assert not thread.is_alive()
    assert isinstance(outcome[0], folder_sync.FileRefused)
    assert "no longer a regular file" in str(outcome[0])


def test_an_oversized_file_fails_without_being_read_and_the_exit_status_is_1(folder, drive):
    write(folder, "small.md", "# Small\n\nFits easily.")
    with (folder / "huge.pdf").open("wb") as handle:
        handle.truncate(64 * 2**20)  # sparse: 64 MB on paper, nothing on disk
    with override_settings(KNOWLEDGE_MAX_UPLOAD_BYTES=2**20):
        status, out, err = sync(folder)
    assert status == 1
    assert "1 added, 0 changed, 0 unchanged, 0 removed, 0 renamed, 0 skipped, 1 failed" in out
    assert "huge.pdf: 64.0 MB; the limit is 1 MB" in err
    assert list(folder_sources(drive)) == ["small.md"]


def test_a_file_that_cannot_be_read_fails_and_keeps_the_source_it_had(folder, drive):
    target = write(folder, "notes.md", "# Notes\n\nMeeting notes.")
    sync(folder)
    target.unlink()
    # A shortcut whose file is gone: the name is still in the folder, its bytes are not.
    (folder / "notes.md").symlink_to(folder / "moved-away.md")
    status, _, err = sync(folder)
    assert status == 1
    assert "notes.md: could not be read (no such file or directory)" in err
    assert list(folder_sources(drive)) == ["notes.md"]  # not removed: the drive still names it


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_a_file_without_read_permission_fails(folder, drive):
    locked = write(folder, "locked.md", "# Locked\n\nNot for the sync's account.")
    locked.chmod(0)
    status, _, err = sync(folder)
    assert status == 1 and "locked.md: could not be read (permission denied)" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists a folder whatever its permissions")
def test_a_subfolder_without_permission_keeps_its_sources_and_fails(folder, drive):
    write(folder, "a.md", "# A\n\nAlpha.")
    write(folder, "hr/leave.md", "# Leave\n\nTwenty-five days a year.")
    sync(folder)
    (folder / "hr").chmod(0)
    try:
        status, _, err = sync(folder)
    finally:
        (folder / "hr").chmod(0o755)
    assert status == 1
    assert "hr: folder could not be listed (permission denied)" in err
    assert "hr/leave.md: kept as it was: its folder could not be listed" in err
    assert sorted(folder_sources(drive)) == ["a.md", "hr/leave.md"]


def test_a_subfolder_that_cannot_be_listed_keeps_its_sources_and_fails(folder, drive):
    """Root lists any folder, but nobody lists a path longer than the system allows
    (PATH_MAX): the same drive reached through a longer path, as when it is mounted deeper."""
    deep = "d" * 200
    write(folder, "a.md", "# A\n\nAlpha.")
    write(folder, f"{deep}/leave.md", "# Leave\n\nTwenty-five days a year.")
    (folder / "p").mkdir()
    assert sync(folder)[0] == 0
    longer = folder
    while len(str(longer)) < 3950:  # the top still lists; the deep folder's path is too long
        longer = longer / "p" / ".."
    status, out, err = sync(longer, "--allow-empty")
    assert status == 1, out + err
    assert f"{deep}: folder could not be listed (file name too long)" in err
    assert f"{deep}/leave.md: kept as it was: its folder could not be listed" in err
    assert "0 removed" in out
    assert sorted(folder_sources(drive)) == ["a.md", f"{deep}/leave.md"]


def test_a_top_folder_that_cannot_be_listed_stops_the_sync_even_with_allow_empty(
    tmp_path, folder, drive, admin
):
    write(folder, "a.md", "# A\n\nAlpha.")
    sync(folder)
    folder.rename(tmp_path / "unmounted")  # gone between the command's check and the walk
    with pytest.raises(folder_sync.SyncRefused, match="could not be listed"):
        folder_sync.sync_folder(root=folder, collection=drive, user=admin, allow_empty=True)
    assert list(folder_sources(drive)) == ["a.md"]


def test_a_file_that_is_not_what_its_extension_says_fails_with_the_parsers_reason(folder, drive):
    write(folder, "good.md", "# Good\n\nFine text.")
    (folder / "bad.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\n%%EOF")
    status, out, err = sync(folder)
    assert status == 1
    assert "1 added, 0 changed, 0 unchanged, 0 removed, 0 renamed, 0 skipped, 1 failed" in out
    assert "bad.pdf: " in err
    # The failed file is not tried again while it is unchanged, and still reported.
    status, out, err = sync(folder)
    assert status == 1 and "1 unchanged" in out and "bad.pdf: " in err


def test_a_copy_of_another_file_is_skipped_as_a_duplicate(folder, drive):
    write(folder, "a/policy.md", "# Policy\n\nSame words.")
    write(folder, "b/policy-copy.md", "# Policy\n\nSame words.")
    status, out, _ = sync(folder)
    assert status == 0
    assert "1 added" in out and "1 skipped" in out
    assert "b/policy-copy.md: has the same contents as a/policy.md" in out


def test_it_refuses_a_path_that_climbs_out_of_the_folder(drive, admin):
    for path in ("../etc/passwd.md", "/etc/passwd.md", "a/../../b.md", "a\x00b.md", ""):
        with pytest.raises(services.KnowledgeError, match="not a file path inside the folder"):
            services.source_create_from_folder(
                user=admin, collection=drive, path=path, data=b"# Hi\n\ntext"
            )
    assert not Source.objects.exists()


# --- dry run, refusals, exit statuses -----------------------------------------------------


def test_a_dry_run_says_what_it_would_do_and_changes_nothing(folder, drive):
    write(folder, "stays.md", "# Stays\n\nUnchanged.")
    gone = write(folder, "gone.md", "# Gone\n\nWill be deleted.")
    sync(folder)
    gone.unlink()
    write(folder, "new.md", "# New\n\nJust arrived.")
    before = sorted(Source.objects.values_list("pk", "content_hash", "indexed_at"))
    audit_before = AuditEvent.objects.count()
    status, out, _ = sync(folder, "--dry-run")
    assert status == 0
    assert "would add new.md" in out and "would remove gone.md" in out
    assert "1 added, 0 changed, 1 unchanged, 1 removed" in out
    assert "Nothing was changed." in out
    assert sorted(Source.objects.values_list("pk", "content_hash", "indexed_at")) == before
    assert AuditEvent.objects.count() == audit_before


def test_an_unknown_collection_is_a_clear_error_unless_create_is_passed(folder, admin):
    write(folder, "a.md", "# A\n\ntext")
    status, _, err = sync(folder, collection="Nope")
    assert status == 2 and "No collection is named 'Nope'" in err and "--create" in err
    assert not Collection.objects.exists()
    status, out, _ = sync(folder, "--create", collection="Nope")
    assert status == 0 and "Created the collection 'Nope'" in out
    assert Collection.objects.get(name="Nope").visibility == Collection.Visibility.GROUPS


def test_it_refuses_an_operator_who_may_not_change_the_collection(folder, drive, make_user):
    make_user(email="reader@example.com")
    write(folder, "a.md", "# A\n\ntext")
    status, _, err = sync(folder, actor="reader@example.com")
    assert status == 2 and "reader@example.com may not change the collection 'Drive'" in err
    status, _, err = sync(folder, actor="ghost@example.com")
    assert status == 2 and "No active account has the email ghost@example.com" in err
    assert not Source.objects.exists()


def test_a_missing_folder_is_a_clear_error(tmp_path, drive):
    status, _, err = sync(tmp_path / "not-mounted")
    assert status == 2 and "is not a folder" in err


def test_an_empty_folder_does_not_remove_everything_it_once_held(folder, drive):
    only = write(folder, "a.md", "# A\n\nThe one file.")
    sync(folder)
    only.unlink()  # or the drive is not mounted: the mount point looks empty
    status, _, err = sync(folder)
    assert status == 2 and "Is the drive mounted? Nothing was removed" in err
    assert list(folder_sources(drive)) == ["a.md"]
    status, out, _ = sync(folder, "--allow-empty")
    assert status == 0 and "1 removed" in out and not folder_sources(drive)


def test_a_second_sync_of_the_same_collection_is_refused_while_one_runs(folder, drive):
    write(folder, "a.md", "# A\n\ntext")
    held, release = threading.Event(), threading.Event()

    def other_sync() -> None:  # holds the lock on its own database connection
        try:
            with folder_sync.collection_lock(drive.pk):
                held.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    thread = threading.Thread(target=other_sync)
    thread.start()
    try:
        assert held.wait(timeout=30)
        status, _, err = sync(folder)
    finally:
        release.set()
        thread.join(timeout=30)
    assert status == 2 and "Another sync into this collection is running" in err
    assert not Source.objects.exists()
    assert sync(folder)[0] == 0  # free again once the other one ended


# --- output and repetition ----------------------------------------------------------------


def test_without_a_terminal_it_prints_one_plain_line_per_change(folder, drive):
    write(folder, "a.md", "# A\n\nAlpha.")
    write(folder, "b.md", "# B\n\nBeta.")
    _, out, _ = sync(folder)
    assert "[1/2] added a.md" in out and "[2/2] added b.md" in out
    assert "\r" not in out


def test_on_a_terminal_it_draws_a_progress_bar(folder, drive):
    write(folder, "a.md", "# A\n\nAlpha.")
    _, out, _ = sync(folder, stdout=Terminal())
    assert "\r checking [##############################] 1/1" in out
    assert "added a.md" not in out


def test_watch_runs_again_after_the_interval_until_its_last_run(folder, drive):
    write(folder, "a.md", "# A\n\nAlpha.")
    status, out, _ = sync(folder, "--watch", "--interval", "0.01", "--max-runs", "2")
    assert status == 0
    assert "Watching" in out
    assert out.count("Synced") == 2
    assert "1 added, 0 changed, 0 unchanged" in out and "0 added, 0 changed, 1 unchanged" in out


@pytest.mark.parametrize("revoke", ["deactivated", "removed-from-managers"])
def test_a_watch_stops_with_status_2_when_its_actor_loses_the_right_between_runs(
    folder, drive, make_user, revoke
):
    managers = Group.objects.create(name="Drive managers")
    drive.manage_groups.add(managers)
    keeper = make_user(email="keeper@example.com")
    keeper.groups.add(managers)
    write(folder, "a.md", "# A\n\nAlpha.")

    def between_runs() -> None:
        if revoke == "deactivated":
            type(keeper).objects.filter(pk=keeper.pk).update(is_active=False)
        else:
            keeper.groups.remove(managers)
        (folder / "a.md").unlink()  # what a later run would have mirrored
        write(folder, "b.md", "# B\n\nBeta.")

    status, out, err = sync(
        folder,
        *("--watch", "--interval", "0.01", "--max-runs", "3"),
        actor="keeper@example.com",
        stdout=OnLine("Synced", between_runs),
    )
    assert status == 2, out + err
    assert "keeper@example.com may no longer change the collection 'Drive'" in err
    assert out.count("Synced") == 1
    assert list(folder_sources(drive)) == ["a.md"]


def test_repeat_stops_when_interrupted_and_returns_the_last_status():
    runs: list[int] = []

    def run() -> int:
        runs.append(1)
        return len(runs) - 1  # 0, then 1

    def interrupt_on_third_wait(seconds: float) -> None:
        if len(runs) == 3:
            raise KeyboardInterrupt

    assert folder_sync.repeat(run, interval=5, max_runs=2, wait=lambda s: None) == 1
    runs.clear()
    with pytest.raises(KeyboardInterrupt):
        folder_sync.repeat(run, interval=5, wait=interrupt_on_third_wait)
    assert len(runs) == 3


def test_a_dry_run_with_create_does_not_create_the_collection(folder, admin):
    write(folder, "a.md", "# A\n\ntext")
    status, out, _ = sync(folder, "--create", "--dry-run", collection="New")
    assert status == 0
    assert "Would create the collection 'New'" in out and "would add a.md" in out
    assert not Collection.objects.exists() and not Source.objects.exists()
