"""HTTPS served by the relay itself, certificates re-read when their files change."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme

from relay.receiver.app import RelayServer
from relay.tls import ReloadingContext
from tests.conftest import StartRelay
from tests.support.signing import event_body, sign


def issue(ca: trustme.CA, directory: Path) -> tuple[Path, Path, bytes]:
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = directory / "tls.crt", directory / "tls.key"
    leaf.private_key_pem.write_to_path(str(key))
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    return cert, key, leaf.cert_chain_pems[0].bytes()


async def served_certificate(port: int, ca: trustme.CA) -> bytes:
    """The certificate a new TLS connection sees, after a delivery over HTTPS succeeds."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    body = event_body()
    connector = aiohttp.TCPConnector(ssl=context, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        url = f"https://127.0.0.1:{port}/webhooks/anyformat"
        async with http.post(url, data=body, headers=sign(body)) as response:
            assert response.status == 200
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return ssl.DER_cert_to_PEM_cert(der).encode()


def same(pem_a: bytes, pem_b: bytes) -> bool:
    return ssl.PEM_cert_to_DER_cert(pem_a.decode()) == ssl.PEM_cert_to_DER_cert(pem_b.decode())


@dataclass
class TlsRelay:
    server: RelayServer
    tls: ReloadingContext
    ca: trustme.CA
    cert: Path
    first: bytes


@pytest.fixture
async def tls_relay(start_relay: StartRelay, redis_url: str, tmp_path: Path) -> TlsRelay:
    ca = trustme.CA()
    cert, key, first = issue(ca, tmp_path)
    server = await start_relay(
        redis_url, RELAY_TLS_CERT_FILE=str(cert), RELAY_TLS_KEY_FILE=str(key)
    )
    assert server.tls is not None
    return TlsRelay(server, server.tls, ca, cert, first)


async def test_https_with_certificates_rotated_in_place(
    tls_relay: TlsRelay, tmp_path: Path
) -> None:
    port, ca = tls_relay.server.public_port, tls_relay.ca
    assert same(await served_certificate(port, ca), tls_relay.first)
    _, _, second = issue(ca, tmp_path)  # cert-manager writes the new pair in place
    assert tls_relay.tls.reload_if_changed()
    assert same(await served_certificate(port, ca), second)
    assert not tls_relay.tls.reload_if_changed()  # nothing changed since


async def test_a_half_written_pair_keeps_the_current_certificate(tls_relay: TlsRelay) -> None:
    tls_relay.cert.write_text("-----BEGIN CERTIFICATE-----\ntruncated\n")
    assert not tls_relay.tls.reload_if_changed()
    served = await served_certificate(tls_relay.server.public_port, tls_relay.ca)
    assert same(served, tls_relay.first)
