"""The vendored rrweb bundles match MANIFEST.json, which scripts/update-rrweb writes."""

import hashlib
import json
import re
from pathlib import Path

import pytest

VENDOR = Path(__file__).resolve().parent.parent / "cobrowse" / "static" / "vendor" / "rrweb"
NOT_LISTED = {"MANIFEST.json", "LICENSE"}
EXACT_VERSION = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?")


def manifest() -> dict:
    return json.loads((VENDOR / "MANIFEST.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(manifest()["files"]))
def test_each_listed_file_exists_with_its_recorded_sha256_and_size(name):
    entry = manifest()["files"][name]
    data = (VENDOR / name).read_bytes()
    assert len(data) == entry["bytes"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_every_file_in_the_vendor_directory_is_listed_in_the_manifest():
    present = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()}
    assert present - NOT_LISTED == set(manifest()["files"])


def test_licence_is_the_mit_permission_notice():
    text = (VENDOR / "LICENSE").read_text(encoding="utf-8")
    assert manifest()["licence"] == "MIT"
    assert "MIT License" in text
    assert "Permission is hereby granted, free of charge" in text
    assert "this permission notice shall be included" in text


def test_manifest_pins_one_exact_version_for_every_file():
    pinned = manifest()
    version = pinned["version"]
    assert EXACT_VERSION.fullmatch(version), version
    assert pinned["source"]
    for spec, source in pinned["source"].items():
        assert spec.endswith(f"@{version}"), spec
        assert source["integrity"].startswith("sha512-")
    for name, entry in pinned["files"].items():
        assert entry["package"] in pinned["source"], name
