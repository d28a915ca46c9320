"""HTTPS without a proxy: ``LIVESHELF_TLS_CERT`` and ``LIVESHELF_TLS_KEY``.

Browsers give a page the camera (``getUserMedia``) only in a secure context: HTTPS, or
``localhost``. A host going live from another machine needs HTTPS, either from a
reverse proxy in front (``deploy/nginx.conf``) or from liveshelf itself with these
two settings: PEM files of the certificate chain (leaf first) and its private key.
Both are read once at start-up; a missing, unreadable or mismatched pair stops the
start with one line naming the file. TLS 1.2 and 1.3 only, Python's default ciphers
(``ssl.create_default_context``), HTTP/1.1 (WebSocket upgrades need it).

To pick up a renewed certificate, restart the process (with ``--workers N``, a
rolling ``SIGTERM`` per worker drains its viewers first: ``live.workers``).
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsError(Exception):
    """The certificate or key cannot be used; the message names the file."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context serving ``cert`` with ``key`` (module docstring)."""
    for what, path in (("LIVESHELF_TLS_CERT", cert), ("LIVESHELF_TLS_KEY", key)):
        if not path.is_file():
            raise TlsError(f"{what}: no such file {str(path)!r}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except PermissionError as exc:
        raise TlsError(f"cannot read {exc.filename!r}: permission denied") from exc
    except ssl.SSLError as exc:
        raise TlsError(
            f"LIVESHELF_TLS_CERT {str(cert)!r} and LIVESHELF_TLS_KEY {str(key)!r} are not "
            f"a PEM certificate and its private key ({exc.reason or exc})"
        ) from exc
    return context
