#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (seeds/<target>/): valid
values of every kind the store reads, and watch lines of every event type,
so that the fuzzers start past the framing. Run from tests/fuzz."""
import json, os, struct, subprocess, zlib

def varint(n):
    # bincode 2's standard config: u8 below 251, else a tag and LE bytes.
    if n < 251: return bytes([n])
    if n < 1 << 16: return b"\xfb" + struct.pack("<H", n)
    if n < 1 << 32: return b"\xfc" + struct.pack("<I", n)
    return b"\xfd" + struct.pack("<Q", n)

def string(s):
    b = s.encode()
    return varint(len(b)) + b

def seal(body):
    return body + struct.pack("<I", zlib.crc32(body))

def zstd(raw):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, capture_output=True, check=True).stdout

def record(rv, uid, created, raw, codec=0, dictionary=0):
    env = bytes([1]) + varint(codec) + varint(dictionary) + string(rv) + string(uid) \
        + string(created) + varint(1764664000000) + varint(len(raw))
    return seal(struct.pack("<H", len(env)) + env + zstd(raw))

pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
    "name": "web-0", "namespace": "default", "uid": "5f0c3a2e-1", "resourceVersion": "1234",
    "creationTimestamp": "2026-12-02T08:00:00Z", "labels": {"app": "web"},
    "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
    "spec": {"containers": [{"name": "c", "image": "nginx"}]}, "status": {"phase": "Running"}}
raw_pod = json.dumps(pod, separators=(",", ":")).encode()

seeds = {
    "disk_bytes": {
        "object": record("1234", "5f0c3a2e-1", "2026-12-02T08:00:00Z", raw_pod),
        "journal_added": record("1234", "", "", b'{"kind":"Added","key":"default/web-0","patch":' + raw_pod + b"}"),
        "journal_modified": record("1240", "", "", b'{"kind":"Modified","key":"default/web-0","patch":{"status":{"phase":"Failed"},"spec":null}}'),
        "journal_deleted": record("1250", "", "", b'{"kind":"Deleted","key":"/node-1","patch":{}}'),
        "with_dictionary": record("7", "u", "", b"{}", codec=1, dictionary=3),
        "state": seal(bytes([2]) + b"\x01" + string("1250") + b"\x01" + varint(1764664000000)
                      + varint(3) + b"".join(varint(n) for n in [60, 42, 1, 42, 240, 512000, 1900000])),
        "cursor": seal(varint(42)),
        "short_names": seal(b'["po"]'),
        "index_key": b"i" + struct.pack(">H", 5) + b"label" + struct.pack(">I", 7) + b"app=web" + b"default/web-0",
        "journal_key": b"j" + struct.pack(">Q", 42),
        "dictionary_key": b"d" + struct.pack(">I", 3),
    },
    "watch_line": {
        "added": json.dumps({"type": "ADDED", "object": pod}).encode(),
        "modified": json.dumps({"type": "MODIFIED", "object": dict(pod, metadata=dict(pod["metadata"], resourceVersion="1240"))}).encode(),
        "deleted": json.dumps({"type": "DELETED", "object": {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "node-1", "resourceVersion": "99999999999999999999"}}}).encode(),
        "bookmark": b'{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"1300","annotations":{"k8s.io/initial-events-end":"true"}}}}',
        "gone": b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (1200)","reason":"Expired","code":410}}',
        "throttled": b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"TooManyRequests","details":{"retryAfterSeconds":3},"code":429}}',
    },
}
for target, files in seeds.items():
    os.makedirs(os.path.join("seeds", target), exist_ok=True)
    for name, data in files.items():
        with open(os.path.join("seeds", target, name), "wb") as f:
            f.write(data)
