"""The tus protocol's names in one place: version, media type, methods per URL, and the request
and response headers a browser must be allowed to send and read (CORS)."""

from __future__ import annotations

TUS_VERSION = "1.0.0"  # Tus-Version: every version this server speaks, in preference order
TUS_RESUMABLE = "1.0.0"  # the version of every response (and the one requests must name)
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

# The method table: which methods each kind of URL answers. `Allow` and 405 derive from it.
COLLECTION_METHODS = ("OPTIONS", "POST")
UPLOAD_METHODS = ("OPTIONS", "HEAD", "PATCH", "DELETE", "GET")
ALL_METHODS = ("OPTIONS", "POST", "HEAD", "PATCH", "DELETE", "GET")

REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "Upload-Length",
    "Upload-Offset",
    "Tus-Resumable",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Upload-Checksum",
    "X-HTTP-Method-Override",
    "X-Requested-With",
)
RESPONSE_HEADERS = (
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Tus-Version",
    "Tus-Resumable",
    "Tus-Max-Size",
    "Tus-Extension",
    "Tus-Checksum-Algorithm",
)
# Status codes outside http.HTTPStatus: the checksum extension's 460.
REASONS = {460: "Checksum Mismatch"}
