#!/usr/bin/env python3
"""Which B-tree each frame of a SQLite WAL file writes (bench/embedded.sh WAL_FRAMES=1).

    bench/wal-frames.py <folder>

<folder> holds copies of <name>.db-wal taken right after the mix and of <name>.db taken
after the server stopped. For each file: the frames since the WAL last started again
(its salt), the commits among them, and the share of frames by table or index, found with
SQLite's dbstat on the database file. A frame of a page beyond the file (appended since
the last checkpoint) is "(new page)".
"""
import collections
import pathlib
import sqlite3
import struct
import sys

WAL_HEADER_BYTES = 32
FRAME_HEADER_BYTES = 24
SHOWN_PER_FILE = 8


def frames(wal):
    page_size = struct.unpack(">I", wal[8:12])[0]
    salt = wal[16:24]
    at, pages, commits = WAL_HEADER_BYTES, [], 0
    while at + FRAME_HEADER_BYTES + page_size <= len(wal):
        page, size_after_commit = struct.unpack(">II", wal[at:at + 8])
        if wal[at + 8:at + 16] != salt:
            break
        pages.append(page)
        commits += size_after_commit != 0
        at += FRAME_HEADER_BYTES + page_size
    return pages, commits


def owners(database):
    connection = sqlite3.connect(f"file:{database}?immutable=1", uri=True)
    try:
        return dict((page, name) for name, page in connection.execute("SELECT name, pageno FROM dbstat"))
    finally:
        connection.close()


def main(folder):
    for wal_path in sorted(pathlib.Path(folder).glob("*.db-wal")):
        pages, commits = frames(wal_path.read_bytes())
        if not pages:
            continue
        owner = owners(wal_path.with_name(wal_path.name.removesuffix("-wal")))
        shares = collections.Counter(owner.get(page, "(new page)") for page in pages)
        print(f"{wal_path.name.removesuffix('-wal')}: {len(pages)} frames, {commits} commits, "
              f"{len(pages) / max(commits, 1):.1f} frames a commit")
        for name, count in shares.most_common(SHOWN_PER_FILE):
            print(f"  {count / len(pages) * 100:5.1f} %  {name}")


if __name__ == "__main__":
    main(sys.argv[1])
