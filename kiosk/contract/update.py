"""The district's ``update`` command (station.md, Releases and updates): its arguments, as
`kiosk district update` sends them and the station checks them before anything is done.

    {"url": "http(s)://…", "sha256": "<64 lower-case hex>", "size": <bytes>,
     "version": "<release name>", "platform": "<bookworm-arm64 …>"}

The station answers at once (accepted or not); the outcome follows as an ``update`` event.
"""

from __future__ import annotations

import re
from typing import Any

ARGUMENTS = ("url", "sha256", "size", "version", "platform")
VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
MAX_URL = 2048
MAX_PLATFORM = 64


def problem(args: Any) -> str | None:
    """What is wrong with an ``update`` command's arguments, or None."""
    if not isinstance(args, dict):
        return "arguments are not an object"
    url, digest, version = args.get("url"), args.get("sha256"), args.get("version")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) \
            or len(url) > MAX_URL:
        return "url must be an http:// or https:// address"
    if not isinstance(digest, str) or not SHA256_RE.fullmatch(digest):
        return "sha256 must be 64 lower-case hex digits"
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
        return "version must be a release name (letters, digits, . + _ -)"
    size, platform = args.get("size"), args.get("platform")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        return "size must be a number of bytes above 0"
    if platform is not None and (not isinstance(platform, str) or len(platform) > MAX_PLATFORM):
        return f"platform must be a name of at most {MAX_PLATFORM} characters"
    return None
