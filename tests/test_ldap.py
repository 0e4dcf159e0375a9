"""Publishing to an LDAP directory through the store's outbox (issue 18): OpenLDAP's slapd
(Debian's) on 127.0.0.1 with a throwaway configuration; `iranpki ldap publish` puts the CA
certificates, the complete and delta CRLs, the root's ARL and the certificate of the subscriber
who agreed (and not the other's) where docs/multi-node.md says, and ldapsearch reads each back
byte for byte. The directory stops mid-way: CRLs are still signed and certificates issued, the
publisher says it is down and keeps the outbox, and once the directory is back everything
arrives, in order, the newest CRL last; a second run changes nothing."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iranpki.keys import SecretSource
from iranpki.workspace import Workspace

from .conftest import software_workspace
from .hosts import free_port

BASE = "dc=pki,dc=ir"
ADMIN = f"cn=admin,{BASE}"
PASSPHRASE = "a passphrase long enough"


class Slapd:
    def __init__(self, base: Path, password: str):
        self.base, self.password, self.port = base, password, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(["/usr/sbin/slapd", "-f", str(self.base / "slapd.conf"), "-h", f"{self.url}/",
                                      "-d", "0"], stdout=subprocess.DEVNULL, stderr=open(self.base / "log", "ab"))
        for _ in range(100):
            if subprocess.run(["ldapsearch", "-x", "-H", self.url, "-s", "base", "-b", "", "namingContexts"],
                              capture_output=True, timeout=10).returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError("slapd did not start: " + (self.base / "log").read_text(errors="replace")[-2000:])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def search(self, base: str, *attrs: str, scope: str = "base") -> dict[str, list[bytes]]:
        """The attributes of the entry ``base`` (ldapsearch's LDIF, base64 values decoded)."""
        done = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.url, "-D", ADMIN, "-y",
                               str(self.base / "admin.pw"), "-s", scope, "-b", base, "(objectClass=*)", *attrs],
                              capture_output=True, timeout=30)
        assert done.returncode in (0, 32), done.stderr.decode()
        out: dict[str, list[bytes]] = {}
        for line in done.stdout.decode("utf-8").splitlines():
            if ":: " in line:
                name, value = line.split(":: ", 1)
                out.setdefault(name, []).append(base64.b64decode(value))
            elif ": " in line:
                name, value = line.split(": ", 1)
                out.setdefault(name, []).append(value.encode("utf-8"))
        return out


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    base = Path(tempfile.mkdtemp(prefix="iranpki-slapd-"))
    password = secrets.token_hex(12)
    (base / "db").mkdir()
    (base / "admin.pw").write_text(password)
    os.chmod(base / "admin.pw", 0o600)
    (base / "slapd.conf").write_text(f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {base}/slapd.pid
database mdb
maxsize 104857600
suffix "{BASE}"
rootdn "{ADMIN}"
rootpw {password}
directory {base}/db
""")
    server = Slapd(base, password)
    server.start()
    ldif = f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: pki\no: National PKI\n"
    added = subprocess.run(["ldapadd", "-x", "-H", server.url, "-D", ADMIN, "-y", str(base / "admin.pw")],
                           input=ldif.encode(), capture_output=True, timeout=30)
    assert added.returncode == 0, added.stderr.decode()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _iranpki(home: Path, *args: str, code: int = 0) -> str:
    from iranpki_cli.main import cli

    result = CliRunner().invoke(cli, [*args, "--home", str(home)])
    if result.exit_code != code and result.exception is not None:
        import traceback

        traceback.print_exception(result.exception)
    assert result.exit_code == code, result.output
    return result.output


def test_the_outbox_reaches_the_directory_and_waits_while_it_is_down(slapd: Slapd, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", PASSPHRASE)
    home = tmp_path / "ca"
    ws = software_workspace(home, name="ldap")
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    ws.generate_crls("root", secret=secret)
    ws.close()
    (home / "ldap.pw").write_text(slapd.password + "\n")
    config = yaml.safe_load((home / "iranpki.yaml").read_text())
    config["ldap"] = {"url": slapd.url, "base_dn": BASE, "bind_dn": ADMIN, "password_file": "ldap.pw"}
    (home / "iranpki.yaml").write_text(yaml.safe_dump(config))
    enabled = json.loads(_iranpki(home, "ldap", "enable", "--json"))
    assert enabled["queued"] == 3  # two CA certificates and the root's ARL

    def pub() -> bytes:
        return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    ws = Workspace.open(home)
    agreed = ws.issue("gica1", "smime", subject="CN=ali@example.ir", emails=["ali@example.ir"], public_key=pub(),
                      secret=secret, publish=True)
    private = ws.issue("gica1", "smime", subject="CN=sara@example.ir", emails=["sara@example.ir"], public_key=pub(),
                       secret=secret)
    ws.revoke(private.record.serial, "superseded")
    ws.generate_crls("gica1", secret=secret)
    ws.generate_crls("gica1", delta=True, secret=secret)
    ws.close()
    first = json.loads(_iranpki(home, "ldap", "publish", "--json"))
    assert first == {"published": 6, "pending": 0, "error": None}, first

    ws = Workspace.open(home)
    root_cert = x509.load_der_x509_certificate(ws.store.get_ca("root").certificate)
    gica_cert = x509.load_der_x509_certificate(ws.store.get_ca("gica1").certificate)
    root_dn = f"{root_cert.subject.rfc4514_string()},{BASE}"
    gica_dn = f"{gica_cert.subject.rfc4514_string()},{BASE}"
    entry = slapd.search(gica_dn)
    assert entry["cACertificate;binary"] == [ws.store.get_ca("gica1").certificate]
    newest = {c.kind: c for c in ws.store.list_crls("gica1")}
    assert entry["certificateRevocationList;binary"] == [Path(newest["full"].path).read_bytes()]
    assert entry["deltaRevocationList;binary"] == [Path(newest["delta"].path).read_bytes()]
    crl = x509.load_der_x509_crl(entry["certificateRevocationList;binary"][0])
    assert crl.get_revoked_certificate_by_serial_number(private.record.serial) is not None
    assert slapd.search(root_dn)["authorityRevocationList;binary"] == [
        Path(ws.store.list_crls("root")[-1].path).read_bytes()]
    users = slapd.search(gica_dn, "userCertificate;binary", scope="one")
    assert users["userCertificate;binary"] == [agreed.record.certificate]  # and not the one who did not agree
    # The parents were made: the country and the organisations of both names.
    assert slapd.search(f"c=IR,{BASE}")["objectClass"] == [b"country"]
    ws.close()

    # The directory stops: CRLs are signed and a certificate issued all the same; the outbox waits.
    slapd.stop()
    ws = Workspace.open(home)
    later = ws.issue("gica1", "smime", subject="CN=reza@example.ir", emails=["reza@example.ir"], public_key=pub(),
                     secret=secret, publish=True)
    ws.revoke(agreed.record.serial, "keyCompromise")
    for _ in range(2):
        ws.generate_crls("gica1", secret=secret)  # the second supersedes the first in the outbox
    ws.close()
    down = json.loads(_iranpki(home, "ldap", "publish", "--json", code=1))
    assert down["published"] == 0 and down["pending"] == 2 and "cannot reach the directory" in down["error"], down
    status = json.loads(_iranpki(home, "ldap", "status", "--json"))
    assert status["pending"] == 2 and status["first_waiting"]["attempts"] == 1
    # Back: everything arrives, the newest CRL last; a second run changes nothing.
    slapd.start()
    assert json.loads(_iranpki(home, "ldap", "publish", "--json")) == {"published": 2, "pending": 0, "error": None}
    ws = Workspace.open(home)
    entry = slapd.search(gica_dn)
    crl = x509.load_der_x509_crl(entry["certificateRevocationList;binary"][0])
    newest_full = max((c for c in ws.store.list_crls("gica1") if c.kind == "full"), key=lambda c: c.number)
    assert entry["certificateRevocationList;binary"] == [Path(newest_full.path).read_bytes()]
    assert crl.get_revoked_certificate_by_serial_number(agreed.record.serial) is not None
    users = slapd.search(gica_dn, "userCertificate;binary", scope="one")
    assert sorted(users["userCertificate;binary"]) == sorted([agreed.record.certificate, later.record.certificate])
    ws.close()
    assert json.loads(_iranpki(home, "ldap", "publish", "--json")) == {"published": 0, "pending": 0, "error": None}
