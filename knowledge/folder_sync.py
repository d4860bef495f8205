"""Mirrors a folder (a mounted shared drive) into a collection: ``manage.py sync``'s workflow.

Walking the folder is plain Python (``scan_folder``, ``file_digest``); every write goes through
the same services as the browser's uploads and deletions (``services.source_create_from_folder``,
``services.source_delete``; ``services.source_rename_in_folder`` for a file that moved), so the
limits, the duplicate rule, the indexing task and the audit trail are the ones people already
know. Every file is hashed before anything is written, so renames are known before removals.

The rules, in order of the walk:
- hidden files and folders (``.git``, ``.DS_Store``) and Office's lock files (``~$report.docx``)
  are skipped; so are files of a type no parser reads, empty files, and anything that is not a
  regular file (a pipe, a socket);
- a symbolic link is followed only to a file inside the folder; one that leads outside is
  refused (reported as skipped, never opened); links to folders are not followed (no loops);
- a file is read only through a handle that proves it is still a regular file inside the
  folder (``open_in_folder``): one swapped, or with a folder on its way swapped, for a link
  after the scan fails unread, so a shared drive cannot publish ``/etc/passwd`` or a ``.env``
  by winning a race;
- a folder that cannot be listed (no permission, an I/O error) fails, and every source from
  inside it is kept as it was and reported as failed: a file the sync cannot see is not a file
  that was deleted. A top folder that cannot be listed stops the sync;
- a file over the upload limit fails without being opened; every other file is hashed in
  blocks (never read whole into memory until it is known to be within the limit);
- a file whose hash is its source's ``content_hash`` is unchanged and costs nothing; a new or
  changed file is stored and indexed; a source whose file is gone is deleted;
- a new file holding the bytes of a file that is gone is that file renamed or moved: its
  source takes the new path and keeps its passages (and the citations pointing at them);
  nothing is embedded again.

A source is the folder's when ``Source.folder_path`` is set, and only a source the sync itself
created gets it; sources added in the browser are never changed or removed by a sync. A file
whose path is already the name of a browser upload is skipped, with that reason, until one of
them is renamed. One folder per collection: two folders synced into one collection would
remove each other's files.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import connection

from knowledge import parsing, services
from knowledge.models import BUSY_STATUSES, Collection, Source
from knowledge.selectors import sources_from_folder

LOCK_NAMESPACE = 7317  # advisory-lock namespace for "a folder is being synced into collection N"
BLOCK_BYTES = 1 << 20  # hashing reads this much at a time


class Outcome(enum.StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    RENAMED = "renamed"
    SKIPPED = "skipped"
    FAILED = "failed"


# What a dry run says instead of the past tense.
WOULD = {
    Outcome.ADDED: "would add",
    Outcome.CHANGED: "would update",
    Outcome.REMOVED: "would remove",
    Outcome.RENAMED: "would rename",
}


class SyncRefused(Exception):
    """The sync cannot run at all (the message says why); no file was touched."""


class FileRefused(OSError):
    """A file the scan accepted is no longer a regular file inside the folder: never read."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


LEADS_OUTSIDE = "now leads outside the folder (refused, never read)"
FileId = tuple[int, int]  # (st_dev, st_ino): which file a handle reads


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the folder, with "/"
    outcome: Outcome
    reason: str = ""
    source_id: int | None = None


@dataclass(frozen=True)
class FolderFile:
    path: str
    absolute: Path
    size: int


@dataclass(frozen=True)
class HashedFile:
    file: FolderFile
    digest: str
    identity: FileId  # the file that was hashed; the one read later must be the same


@dataclass
class Scan:
    real_root: Path
    files: list[FolderFile] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)  # skipped or failed while walking
    present: set[str] = field(default_factory=set)  # every file the folder holds, by path
    unlisted: dict[str, str] = field(default_factory=dict)  # folder ("." the top) -> why not


@dataclass
class Report:
    entries: list[Entry] = field(default_factory=list)
    dry_run: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for entry in self.entries if entry.outcome == outcome)

    def of(self, outcome: Outcome) -> list[Entry]:
        return [entry for entry in self.entries if entry.outcome == outcome]

    @property
    def failed(self) -> bool:
        return any(entry.outcome == Outcome.FAILED for entry in self.entries)


Progress = Callable[[int, int, Entry], None]  # (done, total, the entry just decided)


# --- the folder (no database) ---------------------------------------------------------------


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("~$")


def scan_folder(root: Path, *, max_bytes: int) -> Scan:
    """Every file under ``root`` that a sync would read, and what it skips or refuses.

    ``root`` must be a directory (the caller checks). Sorted by path, so runs are repeatable.
    """
    real_root = root.resolve()
    scan = Scan(real_root=real_root)

    def unlisted(error: OSError) -> None:
        # os.walk leaves out a folder it cannot list; its files must not look deleted.
        folder = _relative(Path(error.filename), root) if error.filename else "."
        scan.unlisted[folder] = _why(error)
        scan.entries.append(
            Entry(folder, Outcome.FAILED, f"folder could not be listed ({_why(error)})")
        )

    for directory, dirnames, filenames in os.walk(root, onerror=unlisted, followlinks=False):
        here = Path(directory)
        kept = []
        for name in sorted(dirnames):
            relative = _relative(here / name, root)
            if is_hidden(name):
                scan.entries.append(Entry(relative, Outcome.SKIPPED, "hidden folder"))
            elif os.path.islink(here / name):  # False when it cannot be looked at: walk says why
                reason = (
                    "a link to a folder (links to folders are not followed)"
                    if _inside(here / name, real_root)
                    else "a link that leads outside the folder (refused)"
                )
                scan.entries.append(Entry(relative, Outcome.SKIPPED, reason))
            else:
                kept.append(name)
        dirnames[:] = kept  # os.walk descends only into these
        for name in sorted(filenames):
            _scan_file(scan, here / name, _relative(here / name, root), real_root, max_bytes)
    scan.files.sort(key=lambda file: file.path)
    scan.entries.sort(key=lambda entry: entry.path)
    return scan


def _scan_file(scan: Scan, path: Path, relative: str, real_root: Path, max_bytes: int) -> None:
    name = path.name
    if is_hidden(name):
        scan.entries.append(Entry(relative, Outcome.SKIPPED, "hidden file"))
        return
    if os.path.islink(path) and not _inside(path, real_root):
        # Never opened: a link on a shared drive must not publish a file from elsewhere.
        scan.entries.append(
            Entry(relative, Outcome.SKIPPED, "a link that leads outside the folder (refused)")
        )
        return
    extension = Path(name).suffix.lower()
    if extension not in parsing.SUPPORTED_EXTENSIONS:
        reason = f"not a supported type ({extension})" if extension else "no file extension"
        scan.entries.append(Entry(relative, Outcome.SKIPPED, reason))
        return
    try:
        info = path.stat()  # follows an inside link to its file
    except OSError as exc:
        scan.present.add(relative)  # the name is still there: its source stays
        scan.entries.append(Entry(relative, Outcome.FAILED, f"could not be read ({_why(exc)})"))
        return
    if not stat.S_ISREG(info.st_mode):
        scan.entries.append(Entry(relative, Outcome.SKIPPED, "not a regular file"))
        return
    scan.present.add(relative)
    if info.st_size > max_bytes:
        scan.entries.append(
            Entry(
                relative,
                Outcome.FAILED,
                f"{info.st_size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB",
            )
        )
    elif info.st_size == 0:
        scan.entries.append(Entry(relative, Outcome.SKIPPED, "empty"))
    else:
        scan.files.append(FolderFile(relative, path, info.st_size))


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _inside(path: Path, real_root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(real_root)
    except (OSError, RuntimeError):  # a link loop
        return False


def _why(exc: OSError) -> str:
    return (exc.strerror or exc.__class__.__name__).lower()


def _unreadable(exc: OSError) -> str:
    return exc.reason if isinstance(exc, FileRefused) else f"could not be read ({_why(exc)})"


@contextmanager
def open_in_folder(path: Path, real_root: Path) -> Iterator[tuple[BinaryIO, FileId]]:
    """``path`` opened once for reading, with the identity of the file behind the handle.

    The scan's checks were made by path and a path can change before it is opened: the file,
    or a folder on the way to it, swapped for a link to ``/etc``. So the handle is checked, not
    the path: opened without following a final link (a link the scan accepted is resolved to
    its target inside the folder first), never blocking on a pipe, and refused (``FileRefused``)
    unless it is a regular file that the kernel says lies under ``real_root``.
    """
    target = path
    if os.path.islink(path):
        target = _resolved(path)
        if target is None or not target.is_relative_to(real_root):
            raise FileRefused(LEADS_OUTSIDE)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the file became a link after it was looked at
            raise FileRefused(LEADS_OUTSIDE) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("is no longer a regular file (never read)")
        _check_inside(fd, real_root)
        yield handle, (info.st_dev, info.st_ino)


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop
        return None


def _check_inside(fd: int, real_root: Path) -> None:
    # The kernel's name for the open file, so a folder on its way that was swapped for a link
    # shows where the file really is. Not os.path.realpath: it would walk the name again,
    # through whatever link was swapped in since.
    try:
        where = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        where = _path_of_fd_without_proc(fd)
    if where is None:  # refuse rather than read blind
        raise FileRefused("cannot be proved to lie inside the folder here (no /proc/self/fd)")
    if not Path(where).is_relative_to(real_root):
        raise FileRefused(LEADS_OUTSIDE)


def _path_of_fd_without_proc(fd: int) -> str | None:
    import fcntl

    if not hasattr(fcntl, "F_GETPATH"):  # macOS has it; Linux has /proc
        return None
    raw = fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024))
    return os.fsdecode(raw.split(b"\0", 1)[0])


def file_digest(path: Path, real_root: Path) -> tuple[str, FileId]:
    """The sha256 of a file inside the folder, read in blocks (the same digest the upload
    stores), and the identity of the file that was hashed."""
    digest = hashlib.sha256()
    with open_in_folder(path, real_root) as (handle, identity):
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest(), identity


def read_within(path: Path, real_root: Path, identity: FileId, max_bytes: int) -> bytes:
    """The bytes of the file that was hashed as ``identity``, refusing one that grew past the
    limit since it was scanned or was replaced since it was hashed."""
    with open_in_folder(path, real_root) as (handle, now):
        if now != identity:
            raise FileRefused(
                "was replaced while being synced (never read); the next sync reads it"
            )
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise services.KnowledgeError(f"larger than the limit of {max_bytes / 2**20:.0f} MB")
    return data


# --- the collection -------------------------------------------------------------------------


@contextmanager
def collection_lock(collection_id: int) -> Iterator[None]:
    """Holds the session's advisory lock for syncing into ``collection_id``, or raises
    ``SyncRefused`` at once when another sync holds it: two syncs must not add the same file."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, collection_id])
        if not cursor.fetchone()[0]:
            raise SyncRefused(
                "Another sync into this collection is running; this one stopped without "
                "changing anything. Try again when it is done."
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, collection_id])


def sync_folder(
    *,
    root: Path,
    collection: Collection,
    user,
    dry_run: bool = False,
    allow_empty: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Brings ``collection``'s folder sources in line with the files under ``root``.

    The caller holds ``collection_lock`` (not needed for a dry run, which writes nothing).
    Raises ``SyncRefused`` when the folder cannot be listed, or is empty but sources came from
    it: an unmounted drive looks like an empty folder, and mirroring it would remove everything.
    """
    scan = scan_folder(root, max_bytes=settings.KNOWLEDGE_MAX_UPLOAD_BYTES)
    if "." in scan.unlisted:
        raise SyncRefused(
            f"The folder {root} could not be listed ({scan.unlisted['.']}); nothing was changed."
        )
    known = sources_from_folder(collection=collection)
    unseen = _in_unlisted_folders(known, scan.unlisted)
    present = scan.present | {entry.path for entry in unseen}
    gone = sorted(set(known) - present)
    if known and not present and not allow_empty:
        raise SyncRefused(
            f"The folder {root} holds no files, but {len(known)} sources of {collection.name} "
            "came from it. Is the drive mounted? Nothing was removed; pass --allow-empty to "
            "remove them."
        )
    report = Report(dry_run=dry_run)
    hashed, unreadable = _hash_files(scan.files, scan.real_root)
    renames = _renames(hashed, known, gone)
    removals = [path for path in gone if path not in renames.values()]
    total = len(scan.entries) + len(unseen) + len(unreadable) + len(hashed) + len(removals)
    step = _counter(report, total, progress)
    for entry in [*scan.entries, *unseen, *unreadable]:
        if entry.outcome == Outcome.FAILED and entry.path in known:
            entry = Entry(entry.path, entry.outcome, entry.reason, known[entry.path].pk)
        step(entry)
    # Removals first: a deleted file's bytes must leave before another name brings them back.
    for path in removals:
        step(_remove(known[path], user, dry_run))
    for item in hashed:
        path = item.file.path
        if path in renames:
            step(_rename(known[renames[path]], path, user, dry_run))
        else:
            step(_sync_file(item, scan.real_root, known.get(path), collection, user, dry_run))
    return report


def _in_unlisted_folders(known: dict[str, Source], unlisted: dict[str, str]) -> list[Entry]:
    """A failure for each known source whose file lies in a folder that could not be listed:
    it is kept as it was, since the sync cannot tell whether its file is still there."""
    entries = []
    for path, source in sorted(known.items()):
        folder = next((f for f in unlisted if path.startswith(f"{f}/")), None)
        if folder is not None:
            reason = f"kept as it was: its folder could not be listed ({unlisted[folder]})"
            entries.append(Entry(path, Outcome.FAILED, reason, source.pk))
    return entries


def _hash_files(files: list[FolderFile], real_root: Path) -> tuple[list[HashedFile], list[Entry]]:
    hashed, unreadable = [], []
    for file in files:
        try:
            hashed.append(HashedFile(file, *file_digest(file.absolute, real_root)))
        except OSError as exc:
            unreadable.append(Entry(file.path, Outcome.FAILED, _unreadable(exc)))
    return hashed, unreadable


def _renames(hashed: list[HashedFile], known: dict[str, Source], gone: list[str]) -> dict[str, str]:
    """New path -> old path, for each new file holding the bytes of a file that is gone: the
    same file renamed or moved within the folder (each gone source is claimed once)."""
    by_hash: dict[str, str] = {}
    for path in gone:
        if known[path].content_hash:
            by_hash.setdefault(known[path].content_hash, path)
    renames = {}
    for item in hashed:
        if item.file.path not in known and item.digest in by_hash:
            renames[item.file.path] = by_hash.pop(item.digest)
    return renames


def _counter(report: Report, total: int, progress: Progress | None) -> Callable[[Entry], None]:
    def step(entry: Entry) -> None:
        report.entries.append(entry)
        if progress is not None:
            progress(len(report.entries), total, entry)

    return step


def _remove(source: Source, user, dry_run: bool) -> Entry:
    if not dry_run:
        services.source_delete(user=user, source=source)  # audited, file removed after commit
    return Entry(source.folder_path, Outcome.REMOVED, "no longer in the folder", source.pk)


def _rename(source: Source, path: str, user, dry_run: bool) -> Entry:
    reason = f"from {source.folder_path}"
    if not dry_run:
        try:
            services.source_rename_in_folder(user=user, source=source, path=path)
        except services.KnowledgeError as exc:
            return Entry(path, Outcome.FAILED, _without_name(str(exc), path), source.pk)
    return Entry(path, Outcome.RENAMED, reason, source.pk)


def _sync_file(
    item: HashedFile, real_root: Path, source: Source | None, collection, user, dry_run
) -> Entry:
    file = item.file
    if source is not None and source.content_hash == item.digest:
        if source.status == Source.Status.FAILED:
            # Unchanged since it failed: trying again would fail again. Re-index it from the
            # knowledge page once the cause (an embedding service, say) is fixed.
            return Entry(file.path, Outcome.FAILED, source.error or "indexing failed", source.pk)
        return Entry(file.path, Outcome.UNCHANGED, source_id=source.pk)
    outcome = Outcome.CHANGED if source is not None else Outcome.ADDED
    if dry_run:
        return Entry(file.path, outcome, source_id=source.pk if source else None)
    try:
        data = read_within(
            file.absolute, real_root, item.identity, settings.KNOWLEDGE_MAX_UPLOAD_BYTES
        )
        result = services.source_create_from_folder(
            user=user, collection=collection, path=file.path, data=data
        )
    except OSError as exc:
        return Entry(file.path, Outcome.FAILED, _unreadable(exc), source.pk if source else None)
    except services.KnowledgeError as exc:
        return Entry(file.path, Outcome.FAILED, _without_name(str(exc), file.path))
    if result.source.folder_path != file.path:  # the same bytes are already another source
        reason = _without_name(result.message, file.path)
        return Entry(file.path, Outcome.SKIPPED, reason, result.source.pk)
    return Entry(file.path, outcome, source_id=result.source.pk)


def _without_name(message: str, path: str) -> str:
    # The services name the file first ("a.pdf: ..."); the summary already does.
    for prefix in (f"{path}: ", f"{path} "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


# --- after the sync: indexing ---------------------------------------------------------------


def sources_to_wait_for(report: Report) -> list[int]:
    return [
        entry.source_id
        for entry in report.entries
        if entry.outcome in (Outcome.ADDED, Outcome.CHANGED) and entry.source_id is not None
    ]


def busy_sources(source_ids: list[int]) -> list[int]:
    return list(
        Source.objects.filter(pk__in=source_ids, status__in=BUSY_STATUSES).values_list(
            "pk", flat=True
        )
    )


def wait_for_indexing(
    source_ids: list[int],
    *,
    timeout: float,
    progress: Callable[[int, int], None] | None = None,
    poll: float = 0.5,
) -> list[int]:
    """Waits until the sources are indexed or failed, or ``timeout`` passed; the ids still busy."""
    deadline = time.monotonic() + timeout
    while True:
        busy = busy_sources(source_ids)
        if progress is not None:
            progress(len(source_ids) - len(busy), len(source_ids))
        if not busy or time.monotonic() >= deadline:
            return busy
        time.sleep(poll)


def with_indexing_results(report: Report, still_busy: list[int]) -> Report:
    """The report with each added or changed file that failed to index counted as failed
    (with the reason indexing gave), and those still indexing said so."""
    ids = sources_to_wait_for(report)
    errors = dict(
        Source.objects.filter(pk__in=ids, status=Source.Status.FAILED).values_list("pk", "error")
    )
    entries = []
    for entry in report.entries:
        if entry.source_id in errors and entry.outcome in (Outcome.ADDED, Outcome.CHANGED):
            entry = Entry(entry.path, Outcome.FAILED, errors[entry.source_id] or "indexing failed")
        elif entry.source_id in still_busy and entry.outcome in (Outcome.ADDED, Outcome.CHANGED):
            entry = Entry(entry.path, entry.outcome, "still being indexed", entry.source_id)
        entries.append(entry)
    return Report(entries=entries, dry_run=report.dry_run)


# --- repeating ------------------------------------------------------------------------------


def repeat(
    run: Callable[[], int],
    *,
    interval: float,
    max_runs: int | None = None,
    wait: Callable[[float], object] = time.sleep,
) -> int:
    """Calls ``run`` (which returns an exit status), then waits ``interval`` seconds, until
    ``max_runs`` runs are done (``None``: until interrupted); the last run's status."""
    runs = 0
    while True:
        status = run()
        runs += 1
        if max_runs is not None and runs >= max_runs:
            return status
        wait(interval)
