"""TLS in the daemon: aiohttp is imported without a CA file, and every client of ours verifies
with the one context `runtime/tls.py` makes, from the system's trust, when TLS is first used.

Reproduced for real, in a fresh interpreter imported as `supervisor run` imports (the lean
environment): a CA made here is the system's trust (OpenSSL's SSL_CERT_FILE, with an empty
SSL_CERT_DIR so nothing else is trusted), servers answer over TLS with a certificate it signed
or with one it did not. aiohttp's own contexts then hold no CA at all, so an https probe or a
Telegram request that passes can only have used our context, and one that must fail shows
that context verifies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, json, os, ssl, sys
from supervisor.runtime import limits
with limits.lean_imports():
    import aiohttp.connector
    from supervisor.alerts.telegram import TelegramChannel
    from supervisor.probing import probes
from devtools.fakes.telegram_api import FakeBotApi
from supervisor.config import HttpProbe
from supervisor.errors import ChannelError
from supervisor.runtime import tls

certs = sys.argv[1]


def serving(name):
    made = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    made.load_cert_chain(f"{certs}/{name}.pem", f"{certs}/{name}.key")
    return made


async def probe(session, url):
    check = probes.HttpCheck(HttpProbe(type="http", url=url), session, tls=tls.client)
    result = await check.check()
    return f"{result.status.value}: {result.output}"


async def telegram(url):
    channel = TelegramChannel("123:abc", url, 5, tls=tls.client)
    try:
        return "@" + await channel.connect()
    except ChannelError as exc:
        return f"refused: {exc}"
    finally:
        await channel.close()


async def main():
    found = {
        "aiohttp's CAs": [
            aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"],
            aiohttp.connector._SSL_CONTEXT_UNVERIFIED.cert_store_stats()["x509_ca"],
        ],
        "SSL_CERT_FILE after": os.environ.get("SSL_CERT_FILE"),
        "made before TLS": len(tls._made),
    }
    session = probes.session_factory()
    async with FakeBotApi("123:abc", tls=serving("good")) as good, FakeBotApi(
        "123:abc", tls=serving("rogue")
    ) as rogue:
        # Telegram first: python-telegram-bot opens its two sessions at once.
        found["telegram, trusted"] = await telegram(good.url)
        found["telegram, untrusted"] = await telegram(rogue.url)
        found["probe, trusted"] = await probe(session, f"{good.base_url}123:abc/getMe")
        found["probe, untrusted"] = await probe(session, f"{rogue.base_url}123:abc/getMe")
    await session().close()
    found["contexts made"] = len(tls._made)
    found["our CAs"] = tls.client_context().cert_store_stats()["x509_ca"]
    print(json.dumps(found))


asyncio.run(main())
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificate(name: str, signer: str | None, cwd: Path) -> None:
    """`name`.pem/.key for 127.0.0.1: signed by `signer`'s key, or its own CA if None."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    if signer is None:
        _openssl(
            "req", "-x509", *key, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN={name} test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectAltName=IP:127.0.0.1", cwd=cwd,
        )  # fmt: skip
        return
    (cwd / f"{name}.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", "/CN=127.0.0.1", cwd=cwd)  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{signer}.pem", "-CAkey", f"{signer}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The child's findings: our CA is the system's trust; `good` signed by it, `rogue` by
    a CA nobody trusts."""
    certs = tmp_path_factory.mktemp("certs")
    _certificate("ca", None, certs)
    _certificate("good", "ca", certs)
    _certificate("other", None, certs)
    _certificate("rogue", "other", certs)
    (certs / "no-dir").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SSL_CERT_FILE": str(certs / "ca.pem"),
        "SSL_CERT_DIR": str(certs / "no-dir"),
    }
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(certs)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    found: dict[str, object] = json.loads(run.stdout)
    found["CA file"] = str(certs / "ca.pem")
    return found


def test_aiohttp_is_imported_without_the_ca_file_and_the_environment_is_put_back(
    found: dict[str, object],
) -> None:
    """Its two contexts hold no CA (the 2 MB saved); the user's SSL_CERT_FILE is back after."""
    assert found["aiohttp's CAs"] == [0, 0]
    assert found["SSL_CERT_FILE after"] == found["CA file"]


def test_the_context_is_made_only_when_tls_is_used_and_once(found: dict[str, object]) -> None:
    assert found["made before TLS"] == 0
    assert found["contexts made"] == 1  # probes and Telegram share it
    assert found["our CAs"] == 1  # the system's trust: exactly the CA file


def test_an_https_probe_verifies_with_the_systems_trust(found: dict[str, object]) -> None:
    assert str(found["probe, trusted"]).startswith("pass: "), found["probe, trusted"]
    untrusted = str(found["probe, untrusted"])
    assert untrusted.startswith("fail: http: TLS: certificate verify failed: "), untrusted


def test_telegram_verifies_with_the_systems_trust(found: dict[str, object]) -> None:
    assert found["telegram, trusted"] == "@fake_test_bot"
    untrusted = str(found["telegram, untrusted"])
    assert untrusted.startswith("refused: "), untrusted
    assert "certificate" in untrusted.lower(), untrusted


def test_where_the_system_has_no_ca_store_certifis_bundle_is_the_trust(tmp_path: Path) -> None:
    empty = tmp_path / "no-dir"
    empty.mkdir()
    probe = (
        "import certifi, ssl; from supervisor.runtime import tls;"
        "bundle = ssl.create_default_context(cafile=certifi.where()).cert_store_stats();"
        "print(tls.client_context().cert_store_stats() == bundle, bundle['x509_ca'] > 100)"
    )
    env = {**os.environ, "SSL_CERT_FILE": str(tmp_path / "none.pem"), "SSL_CERT_DIR": str(empty)}
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env,
        cwd=REPO, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "True"]
