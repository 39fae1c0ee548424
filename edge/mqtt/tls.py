"""The TLS context for the broker connection: TLS 1.2+, the server always verified."""

from __future__ import annotations

import ssl
from pathlib import Path

from edge.config import Tls


def build_tls_context(tls: Tls | None, key_path: Path | None) -> ssl.SSLContext | None:
    """None without a ``tls`` section; else a verifying context, with the client certificate when configured."""
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = tls.verify_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if tls.cert_file is not None and key_path is not None:
        context.load_cert_chain(tls.cert_file, str(key_path))
    return context
