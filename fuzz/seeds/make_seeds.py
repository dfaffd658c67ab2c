#!/usr/bin/env python3
"""Writes the fuzz seed corpora under fuzz/seeds/<target>/ from real captured data.

usage: python3 fuzz/seeds/make_seeds.py [FIXTURES]

FIXTURES is the automerge-repo fixture folder (default: ../shared/fixtures/automerge-repo
beside the repository). The seeds are checked in; run this again only to refresh them.

- frame_decode: one real WebSocket frame for each (type, direction, server) in frames.jsonl.
- sync_session: the Automerge sync bytes of a few real `sync` and `request` frames, and saved
  documents. The target reads its input as structured events (`arbitrary`), so these are only
  starting bytes for the mutator.
- stored_records: each stored record as the server writes it (MessagePack, positional), and
  saved documents and change logs in the target's split form (see server/src/storage/fuzzing.rs).
"""

import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = (sys.argv[1] if len(sys.argv) > 1
            else os.path.join(os.path.dirname(ROOT), "shared", "fixtures", "automerge-repo"))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def write(target, name, data):
    os.makedirs(os.path.join(SEEDS, target), exist_ok=True)
    with open(os.path.join(SEEDS, target, name), "wb") as f:
        f.write(data)


def document(name):
    with open(os.path.join(FIXTURES, "documents", name), "rb") as f:
        return f.read()


# A minimal MessagePack writer, enough for the records (rmp_serde writes structs as arrays).
def mp(value):
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        if value < 128:
            return bytes([value])
        if value < 1 << 32:
            return b"\xce" + struct.pack(">I", value)
        return b"\xcf" + struct.pack(">Q", value)
    if isinstance(value, bytes):
        if len(value) < 256:
            return b"\xc4" + bytes([len(value)]) + value
        return b"\xc5" + struct.pack(">H", len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) < 32:
            return bytes([0xA0 | len(raw)]) + raw
        return b"\xd9" + bytes([len(raw)]) + raw
    if isinstance(value, list):
        assert len(value) < 16
        return bytes([0x90 | len(value)]) + b"".join(mp(v) for v in value)
    raise TypeError(value)


def split_form(snapshot, changes):
    """The stored_records target's split form: flags byte, then u16-LE-length-prefixed parts."""
    parts = ([snapshot] if snapshot is not None else []) + changes
    out = bytes([1 if snapshot is not None else 0])
    for part in parts:
        out += struct.pack("<H", len(part)) + part
    return out


def frames():
    seen = set()
    with open(os.path.join(FIXTURES, "frames.jsonl")) as f:
        for line in f:
            frame = json.loads(line)
            raw = bytes.fromhex(frame["hex"])
            key = (frame["type"], frame["direction"], frame["server"])
            if key not in seen:
                seen.add(key)
                name = "{}-{}-{}-{}.cbor".format(
                    frame["type"], frame["server"],
                    "up" if frame["direction"] == "client->server" else "down", frame["seq"])
                write("frame_decode", name, raw)


def main():
    frames()
    # Sync bytes of real frames, read from the CBOR with a tiny reader of the one field needed:
    # the `data` key and its byte-string header.
    with open(os.path.join(FIXTURES, "frames.jsonl")) as f:
        picked = 0
        for line in f:
            frame = json.loads(line)
            if frame["type"] not in ("sync", "request") or picked >= 4:
                continue
            raw = bytes.fromhex(frame["hex"])
            at = raw.find(b"ddata")
            if at < 0:
                continue
            head = raw[at + 5]
            if head >> 5 != 2:
                continue
            small = head & 0x1F
            start = at + 6
            if small < 24:
                length = small
            elif small == 24:
                length, start = raw[start], start + 1
            elif small == 25:
                length, start = struct.unpack(">H", raw[start:start + 2])[0], start + 2
            else:
                continue
            if length < 40:
                continue
            write("sync_session", "{}-{}-{}.sync".format(
                frame["type"], frame["server"], frame["seq"]), raw[start:start + length])
            picked += 1
    for name in ("todo.automerge", "text-edits.automerge"):
        write("sync_session", name, document(name))

    hash_a = bytes(range(32))
    hash_b = bytes(range(32, 64))
    author = bytes.fromhex("9b3b480876e222fab2b286b9a8bf2f6f")
    write("stored_records", "documents.mp", mp([1733280000000, 12, 4096, None]))
    write("stored_records", "documents-created-by.mp", mp([1733280000000, 3, 512, "alice"]))
    write("stored_records", "change-meta.mp", mp([hash_a, 1733280000123, author]))
    write("stored_records", "snapshot.mp",
          mp([[hash_a, hash_b], 7, document("concurrent-merge.automerge")]))
    write("stored_records", "outbox-state.mp", mp(
        ["d7f2c7c4-2f6e-4b1c-9a57-3c1f6a3b2e10", 1733280000000, 9, [], 2, 1733280060000,
         b'{"document":"x"}', 9, False, "HTTP 503", None]))
    write("stored_records", "outbox-booking.mp", mp(
        ["0f6c1a6e-8a7e-4a63-9a3d-2b7b9e2c4d11", 1733280000000, 4, [hash_a], 0, 0, b"", 0,
         True, "", ["booking-1", "confirmed"]]))
    write("stored_records", "imports.mp", mp(
        [[["https://example.invalid/cal.ics", "airbnb"]]]))
    write("stored_records", "schema-version.bin", struct.pack("<I", 1))
    write("stored_records", "stored-snapshot.split", split_form(document("todo.automerge"), []))
    write("stored_records", "stored-changes.split", split_form(None, [document("todo.changes")]))
    write("stored_records", "stored-both.split",
          split_form(document("repo-create-empty.automerge"), [document("todo.changes")]))


if __name__ == "__main__":
    main()
