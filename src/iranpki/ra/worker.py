"""The CA side of the registration authority: carries out approved requests with the CA keys.

It runs beside the CA, with the CA keys, never in a web process: it reads the approved
requests from the store, issues through :class:`iranpki.ca.CertificateAuthority` (every profile
and CP check of the CA applies) and records the result. A certificate and its request's move to
``issued`` are one transaction, so a worker that dies between them leaves neither, and a request
is never issued twice. Revocation, suspension and release go through :func:`iranpki.ca.revoke`,
so they reach the CRL and OCSP as fast as ``iranpki cert revoke`` does. A recovery opens the
archived key with the key-recovery key on the token (``recover_key``) and hands it to the engine,
which seals it to the subscriber's transport key; the key is never written unsealed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from ..ca import (
    CertificateAuthority,
    IssueRequest,
    build_request,
    parse_subject,
    revoke,
)
from ..errors import IranPkiError, RuleRefusedError
from ..store import RequestRecord
from .engine import Actor, RegistrationAuthority, archive_context

__all__ = ["Outcome", "RaWorker"]


@dataclass(frozen=True)
class Outcome:
    """What the worker did with one approved request: the serial, or the error that stopped it."""

    request: str
    serial: int | None = None
    error: IranPkiError | None = None


class RaWorker:
    """Carries out approved requests; ``open_ca(name)`` opens a CA with its key."""

    def __init__(self, ra: RegistrationAuthority, open_ca: Callable[[str], CertificateAuthority], *,
                 name: str = "ca-side", recover_key: Callable[[dict, str], bytes] | None = None):
        self.ra = ra
        self.open_ca = open_ca
        #: Opens an archive (its dict, its context) on the token: :meth:`iranpki.workspace.Workspace.recover_archived_key`.
        self.recover_key = recover_key
        self.actor = Actor("worker", name)
        self._cas: dict[str, CertificateAuthority] = {}

    def run_once(self, limit: int = 100) -> list[Outcome]:
        """Carry out up to ``limit`` approved requests, oldest first, after moving those past
        their approval's expiry to ``expired``. A request the CA refuses stays approved and its
        error is returned (and audited by the CA), the others go on."""
        self.ra.expire_due(self.actor)
        out = []
        for record in self.ra.store.list_requests(states=("approved",), limit=limit):
            try:
                out.append(Outcome(record.id, self.carry_out(record).serial))
            except RuleRefusedError as exc:
                if exc.rule in ("certificate-status", "key-recovery"):  # it never can be carried out: rejected, with why
                    self.ra.refuse(self.actor, record.id, str(exc))
                out.append(Outcome(record.id, error=exc))
            except IranPkiError as exc:
                out.append(Outcome(record.id, error=exc))
        return out

    def carry_out(self, record: RequestRecord) -> RequestRecord:
        if record.kind in ("renew", "rekey"):
            old = self.ra.store.get_certificate(record.serial or 0)
            if old.status != "valid" or old.not_after <= self.ra.clock.now():
                raise RuleRefusedError(f"certificate {old.serial:x} is {old.status if old.status != 'valid' else 'expired'}"
                                       f"; a {record.kind} is for a valid certificate", rule="certificate-status",
                                       request=record.id)
        if record.kind == "recover":
            return self._recover(record)
        if record.kind in ("issue", "rekey") and self.ra.escrowed(record.profile):
            self._check_archive(record)
        if record.kind == "renew" and self.ra.escrowed(record.profile) and self.ra.archived_key(record.serial or 0) is None:
            raise RuleRefusedError(f"request {record.id} renews a {record.profile} certificate whose key was never "
                                   "archived; the subscriber asks for a re-key (a new, archived key) instead",
                                   rule="key-recovery", request=record.id)
        if record.kind in ("issue", "renew", "rekey"):
            authority = self._ca(record.ca)
            if record.kind == "renew":  # the same key and names, a new certificate
                old = x509.load_der_x509_certificate(self.ra.store.get_certificate(record.serial or 0).certificate)
                try:
                    san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                except x509.ExtensionNotFound:
                    san = x509.SubjectAlternativeName([])
                request = IssueRequest(subject=parse_subject(record.subject), public_key=old.public_key(),
                                       dns=san.get_values_for_type(x509.DNSName),
                                       ips=[str(i) for i in san.get_values_for_type(x509.IPAddress)],
                                       emails=san.get_values_for_type(x509.RFC822Name))
            else:
                request = build_request(csr=record.csr, subject=record.subject, dns=record.names.get("dns"),
                                        ips=record.names.get("ips"), emails=record.names.get("emails"))
            # Published in the directory only if the subscriber agreed when registering.
            request = dataclasses.replace(request, publish=record.applicant.get("publish_consent") == "yes")
            issued = authority.issue(record.profile, request, actor=str(self.actor),
                                     for_request=lambda cert: self.ra.issued_update(self.actor, record, cert.serial))
            return self.ra.store.get_request(record.id) if issued else record
        serial = record.serial or 0
        current = self.ra.store.get_certificate(serial)
        reason = {"release": "removeFromCRL", "suspend": "certificateHold"}.get(record.kind, record.reason or "unspecified")
        done = (record.kind == "release" and current.status == "valid") or \
               (record.kind == "suspend" and current.status == "on hold") or \
               (record.kind == "revoke" and current.status == "revoked")
        update = self.ra.issued_update(self.actor, record, serial)  # checked (state, expiry) before anything
        if done:  # the status is already what was asked (by another way): record the request only
            return self.ra.store.update_request(update.request_id, update.version, update.changes, update.event,
                                                update.audit)
        # The status change and the request's move to issued: one transaction.
        revoke(self.ra.store, serial, reason, actor=str(self.actor), clock=self.ra.clock, ca=record.ca,
               request_update=update)
        return self.ra.store.get_request(record.id)

    def _recover(self, record: RequestRecord) -> RequestRecord:
        found = self.ra.archived_key(record.serial or 0)
        if found is None:
            raise RuleRefusedError(f"the key of certificate {record.serial:x} was not archived; nothing can be "
                                   "recovered", rule="key-recovery", request=record.id)
        if self.recover_key is None:
            raise IranPkiError("this CA side has no key-recovery key to open archives with; run it where the token "
                               "holding the key-recovery key is (iranpki ra issue in the workspace)")
        origin, archived = found
        pkcs8 = self.recover_key(archived, archive_context(origin.id))
        try:
            return self.ra.mark_recovered(self.actor, record, pkcs8)
        finally:
            del pkcs8

    def _check_archive(self, record: RequestRecord) -> None:
        """An escrowed key is issued for only once its archive is in the store, to a registered
        key-recovery key, and of the key the certificate will certify: nothing issued is unrecoverable."""
        import hashlib

        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        archived = record.proofing.get("archived_key")
        spki = x509.load_der_x509_csr(record.csr or b"").public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        known = {k.sha256 for k in self.ra.store.recovery_keys()}
        if not isinstance(archived, dict) or archived.get("public_key_sha256") != hashlib.sha256(spki).hexdigest() \
                or archived.get("recovery_key_sha256") not in known:
            raise RuleRefusedError(f"request {record.id} is for a {record.profile} certificate, whose key is archived "
                                   "before issuance, and its archive is missing, not of this key, or to a key-recovery "
                                   "key this store does not know; nothing was issued: the applicant registers again",
                                   rule="key-recovery", request=record.id)

    def _ca(self, name: str) -> CertificateAuthority:
        if name not in self._cas:
            self._cas[name] = self.open_ca(name)
        return self._cas[name]
