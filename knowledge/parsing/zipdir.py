"""A zip's directory read by hand, so a hostile archive is refused before a zip library opens it.

zipfile builds a ``ZipInfo`` for every central-directory record as it opens an archive, however
many the end record declares: a 50 MB upload of a million tiny records costs seconds of CPU and
hundreds of MB before anything could count them. Here the end-of-central-directory record (and
the zip64 one when present) is read first, its entry count and directory size are checked, and
only then are the records walked, at most ``max_zip_entries`` of them, summing the declared
uncompressed sizes. Pure bytes-in code: no zipfile, no Django.

The end record is located exactly as zipfile locates it (the last 22 bytes when there is no
comment, else the last signature in the final 64 KiB), so this check and the library that opens
the archive afterwards always read the same directory; everything zipfile would tolerate but a
real Word document never contains (trailing bytes, data before the archive, a directory that
does not end at the end record, counts that disagree) is refused as damaged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .base import ParseError, ParseLimits

EOCD = struct.Struct("<4s4H2LH")  # signature, disks, entries (disk, total), size, offset, comment
EOCD_SIGNATURE = b"PK\x05\x06"
LOCATOR = struct.Struct("<4sLQL")  # signature, disk of the zip64 record, its offset, disks
LOCATOR_SIGNATURE = b"PK\x06\x07"
EOCD64 = struct.Struct("<4sQ2H2L4Q")  # ..., entries (disk, total), directory size and offset
EOCD64_SIGNATURE = b"PK\x06\x06"
CENTRAL = struct.Struct("<4s6H3L5H2L")  # one central-directory record, before its name
CENTRAL_SIGNATURE = b"PK\x01\x02"
MAX_COMMENT = 0xFFFF
ZIP64_EXTRA = 0x0001
U32_MAX = 0xFFFFFFFF


class ZipDamaged(ParseError):
    """The bytes are not a well-formed zip (or one no office suite writes)."""


class ZipRefused(ParseError):
    """A well-formed zip that declares more than the limits allow."""


@dataclass(frozen=True)
class ZipDirectory:
    entries: int
    directory_bytes: int
    uncompressed_bytes: int


def read_directory(data: bytes, limits: ParseLimits, label: str = "archive") -> ZipDirectory:
    """Check a zip's declared entry count, directory size and uncompressed total.

    Costs at most one pass over ``max_zip_entries`` records whatever the archive declares.
    Raises ``ZipRefused`` (over a limit) or ``ZipDamaged`` (malformed), both ``ParseError``.
    """
    eocd_at = _find_end_record(data)
    _sig, disk, cd_disk, _, entries, size, offset, comment = EOCD.unpack_from(data, eocd_at)
    if eocd_at + EOCD.size + comment != len(data):
        raise ZipDamaged(f"The {label}'s end record does not match its length.")
    end = eocd_at
    if eocd_at >= LOCATOR.size and data.startswith(LOCATOR_SIGNATURE, eocd_at - LOCATOR.size):
        end, entries, size, offset = _zip64_record(data, eocd_at - LOCATOR.size, label)
    elif disk or cd_disk:
        raise ZipDamaged(f"The {label} spans several disks.")
    if size > end or offset != end - size:
        raise ZipDamaged(f"The {label}'s directory is not where its end record says.")
    if entries > limits.max_zip_entries or size > limits.max_zip_directory_bytes:
        raise ZipRefused(_too_many(label))
    walked, total = _walk(data, end - size, end, limits, label)
    if walked != entries:
        raise ZipDamaged(f"The {label}'s directory holds {walked} entries, not {entries}.")
    return ZipDirectory(entries=entries, directory_bytes=size, uncompressed_bytes=total)


def _find_end_record(data: bytes) -> int:
    # zipfile's own search order (see the module docstring): never a different record.
    if len(data) < EOCD.size:
        raise ZipDamaged("The file is too short to be a zip archive.")
    last = len(data) - EOCD.size
    if data.startswith(EOCD_SIGNATURE, last) and data.endswith(b"\x00\x00"):
        return last
    window = max(len(data) - MAX_COMMENT - EOCD.size, 0)
    found = data.rfind(EOCD_SIGNATURE, window)
    if found < 0 or found > last:
        raise ZipDamaged("No zip end record was found.")
    return found


def _zip64_record(data: bytes, locator_at: int, label: str) -> tuple[int, int, int, int]:
    _sig, disk, record_at, disks = LOCATOR.unpack_from(data, locator_at)
    if disk or disks > 1:
        raise ZipDamaged(f"The {label} spans several disks.")
    # zipfile (3.11) assumes the zip64 record sits right before the locator; newer versions
    # follow the locator's offset. Both must name the same bytes.
    if record_at != locator_at - EOCD64.size or record_at < 0:
        raise ZipDamaged(f"The {label}'s zip64 end record is not where its locator says.")
    sig, _, _, _, rec_disk, cd_disk, _, entries, size, offset = EOCD64.unpack_from(data, record_at)
    if sig != EOCD64_SIGNATURE:
        raise ZipDamaged(f"The {label}'s zip64 end record is missing.")
    if rec_disk or cd_disk:
        raise ZipDamaged(f"The {label} spans several disks.")
    return record_at, entries, size, offset


def _walk(data: bytes, start: int, end: int, limits: ParseLimits, label: str) -> tuple[int, int]:
    """Count the records between ``start`` and ``end`` and sum their uncompressed sizes."""
    count, total, at = 0, 0, start
    while at < end:
        count += 1
        if count > limits.max_zip_entries:
            raise ZipRefused(_too_many(label))
        if at + CENTRAL.size > end:
            raise ZipDamaged(f"The {label}'s directory is cut short.")
        fields = CENTRAL.unpack_from(data, at)
        if fields[0] != CENTRAL_SIGNATURE:
            raise ZipDamaged(f"The {label}'s directory is damaged.")
        compressed, uncompressed, name_len, extra_len, comment_len = fields[8:13]
        extra_at = at + CENTRAL.size + name_len
        following = extra_at + extra_len + comment_len
        if following > end:
            raise ZipDamaged(f"The {label}'s directory is cut short.")
        if uncompressed == U32_MAX:
            uncompressed = _zip64_size(data[extra_at : extra_at + extra_len], label)
        total += uncompressed
        if total > limits.max_uncompressed_bytes:
            raise ZipRefused(too_big_message(label, limits.max_uncompressed_bytes))
        at = following
    return count, total


def _zip64_size(extra: bytes, label: str) -> int:
    # The zip64 extra field lists the 64-bit values in a fixed order; the uncompressed size,
    # when it overflowed, is always the first.
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, at)
        if kind == ZIP64_EXTRA and length >= 8 and at + 4 + length <= len(extra):
            return struct.unpack_from("<Q", extra, at + 4)[0]
        at += 4 + length
    raise ZipDamaged(f"The {label}'s directory gives no size for a large entry.")


def _too_many(label: str) -> str:
    return f"This {label} contains too many parts to be read safely."


def too_big_message(label: str, limit: int) -> str:
    return (
        f"This {label} expands to more than {limit // 2**20} MB when unpacked, more "
        "than this system accepts (it may be a zip bomb)."
    )
