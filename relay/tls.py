"""Serving HTTPS directly, with certificates re-read when their files change.

cert-manager and certbot rotate certificate files in place; a server context re-loaded
with ``load_cert_chain`` hands the new certificate to every handshake after that, without
dropping connections or restarting.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import structlog

log = structlog.get_logger("relay.tls")


class ReloadingContext:
    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._stamp = self._files_stamp()
        self.context.load_cert_chain(cert_file, key_file)

    def _files_stamp(self) -> tuple[float, int, float, int]:
        cert, key = self.cert_file.stat(), self.key_file.stat()
        return (cert.st_mtime, cert.st_size, key.st_mtime, key.st_size)

    def reload_if_changed(self) -> bool:
        """Load the files again when they changed; a broken pair keeps the current one."""
        try:
            stamp = self._files_stamp()
            if stamp == self._stamp:
                return False
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            # Mid-rotation (key written, certificate not yet): try again next round.
            log.warning("tls_reload_failed", error=str(exc))
            return False
        self._stamp = stamp
        log.info("tls_certificate_reloaded", cert_file=str(self.cert_file))
        return True

    async def watch(self, interval: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()
