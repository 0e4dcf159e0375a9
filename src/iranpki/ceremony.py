"""Key ceremonies driven by one reviewed YAML file (`iranpki ceremony run CEREMONY.yaml`).

A ceremony is what the people in the room agreed to do, written down before they meet: the mode
(``root``, ``intermediate`` with one CA certificate per level, ``key``, ``cross-certificate``,
``crl`` for an offline root's ARL), the token, key type and label, the subject and profile, the
output folder, and who is present (the ceremony's officer, the witnesses, the key custodians).

Before the token signs anything, the same certificate or CRL is made with throwaway software
keys of the same kind into a copy of the store, and linted with pkilint and the national
validators: an error stops the ceremony before the token signs. After signing, the real one is
linted again and its signature verified against its issuer. The ceremony writes a transcript
(every step with its time, the SHA-256 of every input and output, who was present), signs it
with the officer's key (a detached CMS that `openssl cms -verify` checks), and records the
transcript's hash in the audit log. Outputs are written into a new folder: nothing is
overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import IranPkiError
from .store import AuditEvent

__all__ = ["Ceremony", "CeremonyError", "load_ceremony", "run"]

MODES = ("root", "intermediate", "key", "cross-certificate", "crl")


class CeremonyError(IranPkiError):
    """A ceremony file that cannot be run, or a step that stopped the ceremony."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyPlan(_Strict):
    label: str
    algorithm: str = Field(description="rsa2048, rsa3072, rsa4096, p256, p384, p521")
    token: str | None = Field(default=None, description="the PKCS#11 token; none: an encrypted software key")
    backup: bool = Field(default=False, description="made so that it can be backed up M of N (docs/key-backup.md)")


class Officer(_Strict):
    name: str
    key: str = Field(description="the officer's signing key (PKCS#11 URI or key file)")
    certificate: str = Field(description="the officer's certificate (PEM), which the transcript's signature names")


class CaPlan(_Strict):
    name: str
    subject: str
    key: KeyPlan
    level: int | None = None
    purpose: str | None = None
    profile: str | None = None
    validity_days: int | None = None
    crl_shards: int = 1


class CrossPlan(_Strict):
    certificate: str = Field(description="the other CA's certificate (PEM or DER) to certify")
    level: int


class Ceremony(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    title: str
    mode: Literal["root", "intermediate", "key", "cross-certificate", "crl"]
    officer: Officer
    witnesses: list[str] = Field(min_length=2, description="at least two, by name")
    custodians: list[str] = Field(default_factory=list)
    outputs: str = Field(description="a folder that does not exist yet")
    key: KeyPlan | None = None  # mode key
    root: CaPlan | None = None  # mode root
    parent: str | None = None  # modes intermediate, cross-certificate: the issuing CA
    levels: list[CaPlan] = Field(default_factory=list)  # mode intermediate
    cross: CrossPlan | None = None  # mode cross-certificate
    crl_of: str | None = None  # mode crl: the CA whose (A)RL is signed

    @model_validator(mode="after")
    def _per_mode(self) -> Ceremony:
        need = {"key": ("key",), "root": ("root",), "intermediate": ("parent", "levels"),
                "cross-certificate": ("parent", "cross"), "crl": ("crl_of",)}[self.mode]
        missing = [n for n in need if not getattr(self, n)]
        if missing:
            raise ValueError(f"a {self.mode} ceremony names {', '.join(missing)}")
        if self.mode == "intermediate" and any(p.level is None for p in self.levels):
            raise ValueError("each level of an intermediate ceremony names its level (1 to 4)")
        return self


def load_ceremony(text: bytes, where: str = "the ceremony file") -> Ceremony:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CeremonyError(f"{where} is not YAML: {exc}") from None
    try:
        return Ceremony.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(p) for p in first["loc"]) or "the file"
        raise CeremonyError(f"{where}: {at}: {first['msg']} ({len(exc.errors())} problem(s) in all)") from None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Transcript:
    def __init__(self, ceremony: Ceremony, source: bytes, clock: Callable[[], datetime]):
        self.clock = clock
        self.doc: dict[str, Any] = {
            "type": "iranpki-ceremony-transcript", "version": 1, "id": ceremony.id, "title": ceremony.title,
            "mode": ceremony.mode, "ceremony_file_sha256": _sha(source),
            "present": {"officer": ceremony.officer.name, "witnesses": ceremony.witnesses,
                        "custodians": ceremony.custodians},
            "started_at": clock().isoformat(), "steps": []}

    def step(self, what: str, *, inputs: dict[str, bytes] | None = None, outputs: dict[str, bytes] | None = None,
             **detail: Any) -> None:
        self.doc["steps"].append({"n": len(self.doc["steps"]) + 1, "at": self.clock().isoformat(), "step": what,
                                  "inputs": {k: _sha(v) for k, v in (inputs or {}).items()},
                                  "outputs": {k: _sha(v) for k, v in (outputs or {}).items()}, **detail})


def _write_new(folder: Path, name: str, data: bytes) -> None:
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _findings(found: list) -> list[dict[str, str]]:  # noqa: ANN001 - LintFinding
    return [{"code": f.code, "severity": f.severity, "message": f.message} for f in found]


def _stop_on(findings: list[dict[str, str]], what: str) -> None:
    bad = [f for f in findings if f["severity"] in ("FATAL", "ERROR")]
    if bad:
        raise CeremonyError(f"the throwaway {what} has lint errors, so the token signs nothing: "
                            + "; ".join(f"{f['code']} {f['message']}".strip() for f in bad))


def _throwaway(spec, on_token: bool = True) -> object:  # noqa: ANN001 - a KeySpec; returns a SoftwareSigner
    """A key of ``spec`` in memory, for a rehearsal. It stands for the token's key, so it is
    named as a token's (the levels that want a token key check that); it signs only certificates
    that are linted and thrown away."""
    from .keys.software import SoftwareSigner, _new_private_key

    return SoftwareSigner(_new_private_key(spec), "pkcs11:token=rehearsal;object=throwaway" if on_token else "memory:")


def _stand_in(store, record, spec):  # noqa: ANN001, ANN202 - a CertificateAuthority
    """A throwaway root with the issuing CA's name, profile and kind of key, in the store's copy:
    what the rehearsal signs with (the real key stays on its token, unused)."""
    from cryptography import x509

    from . import ca as ca_mod
    from .profiles import subject_text

    cert = x509.load_der_x509_certificate(record.certificate)
    subject = ca_mod.parse_subject(",".join(reversed(subject_text(cert.subject).split(","))))
    return ca_mod.create_root(store, _throwaway(spec), f"{record.name}-stand-in", subject,
                              repository_url=record.repository_url, ocsp_url=record.ocsp_url)


def _pem(der: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def run(ws, ceremony: Ceremony, source: bytes, *, base: Path, secret=None, officer_secret=None,  # noqa: ANN001, C901
        actor: str | None = None) -> Path:
    """Carry out ``ceremony`` on the workspace ``ws`` (paths in it relative to ``base``, the
    ceremony file's folder); the output folder, which holds the transcript and its signature."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from . import ca as ca_mod
    from .compliance.lint import lint_certificate, lint_crl
    from .inputs import one_certificate
    from .keys import KeySpec
    from .policy import load_policy

    def for_key(reference: str | None):  # noqa: ANN202 - the secret of a software key; a token's PIN its own way
        return None if reference is None or str(reference).startswith("pkcs11:") else secret

    out = (base / ceremony.outputs).resolve()
    if out.exists():
        raise CeremonyError(f"the output folder {out} exists; a ceremony never writes over evidence: name a new one")
    officer_cert = one_certificate((base / ceremony.officer.certificate).read_bytes(), ceremony.officer.certificate)
    officer_key = ws.open_key(str(base / ceremony.officer.key) if (base / ceremony.officer.key).exists()
                              else ceremony.officer.key, officer_secret)
    policy = load_policy()
    now = lambda: datetime.now(timezone.utc)  # noqa: E731
    transcript = _Transcript(ceremony, source, now)
    transcript.step("opened", inputs={"ceremony file": source,
                                      "officer certificate": officer_cert.public_bytes(Encoding.DER)})
    out.mkdir(parents=True)
    actor = actor or f"ceremony:{ceremony.id}"

    def rehearse(make: Callable[[Any], bytes], what: str, lint: Callable[[bytes], list]) -> None:
        """Make ``what`` with throwaway keys into a copy of the store and lint it."""
        from .store import open_store

        with tempfile.TemporaryDirectory() as tmp:
            # SQLite's own backup: a consistent copy even while the store's log (WAL) holds pages.
            import sqlite3

            source_db, copy_db = sqlite3.connect(ws.store_path), sqlite3.connect(Path(tmp) / "store.sqlite3")
            try:
                source_db.backup(copy_db)
            finally:
                source_db.close()
                copy_db.close()
            copy = open_store(str(Path(tmp) / "store.sqlite3"))
            try:
                der = make(copy)
            finally:
                copy.close()
        findings = _findings(lint(der))
        transcript.step(f"linted before signing: {what}", outputs={"throwaway": der}, findings=findings)
        _stop_on(findings, what)

    def new_key(plan: KeyPlan) -> str:
        signer = ws.generate_key(KeySpec.parse(plan.algorithm), label=plan.label, token=plan.token,
                                 secret=None if plan.token else secret, actor=actor, backup=plan.backup)
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        spki = signer.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        _write_new(out, f"{plan.label}.pub.pem", spki)
        transcript.step("key generated", outputs={f"{plan.label}.pub.pem": spki}, key=str(signer.reference),
                        algorithm=plan.algorithm, token=plan.token,
                        extractable=("wrapped only, under a trusted key" if plan.backup else False) if plan.token
                        else None)
        reference = str(signer.reference)
        signer.close()
        return reference

    def after(der: bytes, name: str, kind: str, level: int | None, issuer_der: bytes | None) -> None:
        cert = x509.load_der_x509_certificate(der)
        issuer = x509.load_der_x509_certificate(issuer_der) if issuer_der else cert
        cert.verify_directly_issued_by(issuer)  # raises if the token's signature does not verify
        findings = _findings(lint_certificate(der, kind, policy=policy, level=level))
        _write_new(out, f"{name}.pem", _pem(der))
        transcript.step(f"signed and checked: {name}", outputs={f"{name}.pem": der}, findings=findings,
                        serial=f"{cert.serial_number:x}", subject=cert.subject.rfc4514_string(),
                        signature_verified_by=issuer.subject.rfc4514_string())
        _stop_on(findings, f"{name} as signed")

    try:
        if ceremony.mode == "key":
            assert ceremony.key is not None
            new_key(ceremony.key)
        elif ceremony.mode == "root":
            plan = ceremony.root
            assert plan is not None
            spec = KeySpec.parse(plan.key.algorithm)
            rehearse(lambda store: ca_mod.create_root(
                store, _throwaway(spec, plan.key.token is not None), plan.name + "-throwaway", ca_mod.parse_subject(plan.subject),
                repository_url=ws.config.repository_url, ocsp_url=ws.config.ocsp_url, profile=plan.profile or "root",
                validity_days=plan.validity_days).record.certificate, plan.name,
                lambda der: lint_certificate(der, plan.profile or "root", policy=policy))
            key = new_key(plan.key)
            made = ws.create_root(plan.name, key, plan.subject, validity_days=plan.validity_days,
                                  profile=plan.profile or "root", secret=for_key(key), actor=actor,
                                  crl_shards=plan.crl_shards)
            after(made.record.certificate, plan.name, plan.profile or "root", None, None)
        elif ceremony.mode == "intermediate":
            parent = ws.store.get_ca(ceremony.parent or "")
            for plan in ceremony.levels:
                spec = KeySpec.parse(plan.key.algorithm)
                parent_spec = ws.open_recorded_key(parent.key_reference, for_key(parent.key_reference))
                parent_key_spec = parent_spec.key_spec
                parent_spec.close()

                def make(store, plan=plan, spec=spec, parent_key_spec=parent_key_spec) -> bytes:  # noqa: ANN001
                    stand_in = _stand_in(store, parent, parent_key_spec)
                    return ca_mod.create_intermediate(
                        stand_in, _throwaway(spec, plan.key.token is not None), plan.name + "-throwaway", plan.level or 0,
                        ca_mod.parse_subject(plan.subject), validity_days=plan.validity_days, purpose=plan.purpose,
                        profile=plan.profile).record.certificate

                rehearse(make, plan.name, lambda der, plan=plan: lint_certificate(
                    der, plan.profile or f"intermediate-level{plan.level}", policy=policy, level=plan.level))
                key = new_key(plan.key)
                made = ws.create_intermediate(plan.name, parent.name, plan.level or 0, key, plan.subject,
                                              validity_days=plan.validity_days,
                                              parent_secret=for_key(parent.key_reference), secret=for_key(key),
                                              actor=actor, crl_shards=plan.crl_shards, purpose=plan.purpose)
                after(made.record.certificate, plan.name, plan.profile or f"intermediate-level{plan.level}", plan.level,
                      parent.certificate)
        elif ceremony.mode == "cross-certificate":
            assert ceremony.cross is not None
            cross = ceremony.cross
            other = (base / cross.certificate).read_bytes()
            other_der = one_certificate(other, cross.certificate).public_bytes(Encoding.DER)
            parent = ws.store.get_ca(ceremony.parent or "")
            transcript.step("certificate to certify read", inputs={"other CA certificate": other_der})
            parent_signer = ws.open_recorded_key(parent.key_reference, for_key(parent.key_reference))
            parent_key_spec = parent_signer.key_spec

            def make_cross(store) -> bytes:  # noqa: ANN001
                stand_in = _stand_in(store, parent, parent_key_spec)
                return ca_mod.cross_certify(stand_in, other_der, cross.level, actor=actor).record.certificate

            rehearse(make_cross, "cross-certificate", lambda der: lint_certificate(
                der, f"intermediate-level{cross.level}", policy=policy, level=cross.level))
            issuing = ca_mod.CertificateAuthority(parent, parent_signer, ws.store, clock=ws.clock)
            try:
                made = ca_mod.cross_certify(issuing, other_der, cross.level, actor=actor)
            finally:
                parent_signer.close()
            after(made.record.certificate, f"cross-{made.record.serial:x}", f"intermediate-level{cross.level}",
                  cross.level, parent.certificate)
        else:  # crl: an offline CA (the root) signs its (A)RL
            from cryptography.x509 import load_der_x509_crl

            from . import crl as crl_mod

            record = ws.store.get_ca(ceremony.crl_of or "")
            kind = "ARL" if record.kind == "root" else "CRL"
            real_signer = ws.open_recorded_key(record.key_reference, for_key(record.key_reference))
            spec = real_signer.key_spec

            def make_crl(store) -> bytes:  # noqa: ANN001
                # In the store's copy the CA's certificate is swapped for a stand-in's, so that the
                # throwaway key signs the same entries, numbers and extensions the token will.
                import sqlite3

                from .store import open_store

                stand_in = _stand_in(store, record, spec)
                db = sqlite3.connect(store.path)
                db.execute("UPDATE cas SET certificate=? WHERE name=?", (stand_in.record.certificate, record.name))
                db.commit()
                db.close()
                again = open_store(str(store.path))
                try:
                    with tempfile.TemporaryDirectory() as tmp:
                        return crl_mod.generate_crl(again, again.get_ca(record.name), stand_in.signer, tmp, actor=actor).der
                finally:
                    again.close()

            try:
                rehearse(make_crl, f"{kind} of {record.name}", lambda der: lint_crl(der, kind))
                made = crl_mod.generate_crl(ws.store, record, real_signer, ws.crl_dir, clock=ws.clock, actor=actor)
            finally:
                real_signer.close()
            der = made.der
            if not load_der_x509_crl(der).is_signature_valid(x509.load_der_x509_certificate(record.certificate).public_key()):
                raise CeremonyError(f"the {kind} the token signed does not verify under {record.name}'s certificate")
            findings = _findings(lint_crl(der, kind))
            name = f"{record.name}-{made.record.number}.crl"
            _write_new(out, name, der)
            transcript.step(f"signed and checked: {kind} {made.record.number} of {record.name}", outputs={name: der},
                            findings=findings)
            _stop_on(findings, f"{kind} as signed")
    except Exception as exc:
        # What was done stays recorded: the transcript says where and why it stopped, signed, and
        # the audit log has it; then the error goes to the operator.
        transcript.doc["aborted"] = f"{type(exc).__name__}: {exc}"
        _close(transcript, ceremony, source, out, officer_key, officer_cert, ws, "ceremony.aborted")
        raise
    _close(transcript, ceremony, source, out, officer_key, officer_cert, ws, "ceremony.completed")
    return out


def _close(transcript: _Transcript, ceremony: Ceremony, source: bytes, out: Path, officer_key, officer_cert, ws,  # noqa: ANN001
           event: str) -> None:
    """Write the transcript, have the officer sign it, record its hash in the audit log."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from .signing import sign_cms

    transcript.doc["finished_at"] = transcript.clock().isoformat()
    body = json.dumps(transcript.doc, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
    try:
        _write_new(out, "transcript.json", body)
        _write_new(out, "transcript.json.p7s", sign_cms(body, officer_key, officer_cert.public_bytes(Encoding.DER)))
    finally:
        officer_key.close()
    ws.store.add_audit_event(AuditEvent(event, ceremony.id, f"officer:{ceremony.officer.name}", {
        "mode": ceremony.mode, "transcript_sha256": _sha(body), "ceremony_file_sha256": _sha(source),
        "witnesses": ceremony.witnesses, "custodians": ceremony.custodians, "outputs": str(out),
        **({"aborted": transcript.doc["aborted"]} if "aborted" in transcript.doc else {})}))
