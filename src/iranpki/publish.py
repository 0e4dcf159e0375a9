"""Publishing to an LDAP directory, through the store's outbox.

While publishing is on (``iranpki ldap enable``), what the CA side records is put in the store's
publication outbox in the same transaction (:class:`iranpki.store.Outbox`): a CA certificate, a
CRL, an offline root's ARL, a delta CRL, and a subscriber's certificate when the subscriber agreed
(``IssueRequest.publish``). Signing and issuance never wait for the directory. The publisher
(:class:`LdapPublisher`, ``iranpki ldap publish [--watch]``) takes the outbox in order: a
directory that is down leaves the items where they are (their attempts and the error counted),
and the next run carries on from the first one not published. Publishing is idempotent: an entry
that exists is kept, an attribute is replaced (a CA certificate, a CRL) or a value added (a
subscriber's certificate), so running twice changes nothing.

Where things go, under the directory's base DN (which must exist):

- a CA: at its certificate's subject DN (RFC 4514, most specific first) under the base; missing
  parents are made (``c`` country, ``o`` organization, ``ou`` organizationalUnit, ``l`` and ``st``
  locality, ``dc`` dcObject), the CA's entry an organizationalRole with the pkiCA and deltaCRL
  classes (RFC 4523): ``cACertificate;binary``, ``certificateRevocationList;binary`` (its complete
  CRL), ``authorityRevocationList;binary`` (a root's ARL), ``deltaRevocationList;binary``;
- a CA whose CRL is partitioned: each shard's CRLs in an entry of its own, ``cn=crl-N`` below the
  CA's (one attribute holds one CRL);
- a subscriber's certificate: ``cn=SERIAL`` (hex) below its CA's entry, an organizationalRole with
  the pkiUser class, ``userCertificate;binary``, and the subject in ``description``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from .errors import ConfigError, IranPkiError
from .store import OutboxItem, Store

__all__ = ["PASSWORD_ENV", "LdapPublisher", "PublishError", "PublishRun", "ca_dn"]

PASSWORD_ENV = "IRANPKI_LDAP_PASSWORD"

#: The structural class of an entry by its naming attribute.
_CLASSES = {
    NameOID.COUNTRY_NAME: ("c", ["country"]),
    NameOID.ORGANIZATION_NAME: ("o", ["organization"]),
    NameOID.ORGANIZATIONAL_UNIT_NAME: ("ou", ["organizationalUnit"]),
    NameOID.LOCALITY_NAME: ("l", ["locality"]),
    NameOID.STATE_OR_PROVINCE_NAME: ("st", ["locality"]),
    NameOID.DOMAIN_COMPONENT: ("dc", ["dcObject", "organization"]),
    NameOID.COMMON_NAME: ("cn", ["organizationalRole"]),
}
_ATTRIBUTE = {"ca": "cACertificate;binary", "crl": "certificateRevocationList;binary",
              "arl": "authorityRevocationList;binary", "delta": "deltaRevocationList;binary"}


class PublishError(IranPkiError):
    """The directory refused or could not be reached; the outbox keeps the item."""


@dataclass
class PublishRun:
    published: int = 0
    pending: int = 0
    error: str | None = None


def _escape(value: str) -> str:
    from ldap3.utils.dn import escape_rdn

    return escape_rdn(value)


def ca_dn(certificate: bytes, base_dn: str) -> list[tuple[str, str, list[str]]]:
    """The entries from the base down to a CA's: (DN, its naming attribute, its classes), the
    CA's last. A subject attribute no directory class names here is refused, named."""
    subject = x509.load_der_x509_certificate(certificate).subject
    out = []
    dn = base_dn
    for rdn in subject.rdns:  # most general first
        attrs = list(rdn)
        if len(attrs) != 1 or attrs[0].oid not in _CLASSES:
            raise PublishError(f"the CA's subject has {attrs[0].oid._name if attrs else 'an empty'} in its name, which "
                               f"has no directory entry class here; supported: c, o, ou, l, st, dc, cn")
        name, classes = _CLASSES[attrs[0].oid]
        dn = f"{name}={_escape(str(attrs[0].value))},{dn}"
        out.append((dn, name, list(classes)))
    return out


class LdapPublisher:
    """Takes the store's outbox to the directory at ``url`` (ldap:// or ldaps://), binding as
    ``bind_dn`` with ``password``."""

    def __init__(self, store: Store, url: str, base_dn: str, bind_dn: str, password: str, *, timeout: int = 10):
        if not url.startswith(("ldap://", "ldaps://")):
            raise ConfigError(f"LDAP URL {url!r} must start with ldap:// or ldaps://")
        self.store = store
        self.url = url
        self.base_dn = base_dn
        self.bind_dn = bind_dn
        self._password = password
        self.timeout = timeout

    def _connect(self):  # noqa: ANN202 - an ldap3 Connection
        import ldap3

        server = ldap3.Server(self.url, connect_timeout=self.timeout, get_info=ldap3.NONE)
        return ldap3.Connection(server, self.bind_dn, self._password, auto_bind=True, raise_exceptions=True,
                                receive_timeout=int(self.timeout), read_only=False)

    def run_once(self, limit: int = 200) -> PublishRun:
        """Publish up to ``limit`` items, in order; stop at the first the directory refuses (it
        stays first in the outbox, its error recorded)."""
        from ldap3.core.exceptions import LDAPException

        run = PublishRun()
        items = self.store.outbox_pending(limit)
        if items:
            try:
                conn = self._connect()
            except LDAPException as exc:
                run.error = f"cannot reach the directory at {self.url}: {exc}"
                self.store.outbox_failed(items[0].seq, run.error)
                items = []
            else:
                try:
                    for item in items:
                        try:
                            self._publish(conn, item)
                        except (LDAPException, PublishError) as exc:
                            run.error = f"{item.kind} of {item.ca} (outbox #{item.seq}): {exc}"
                            self.store.outbox_failed(item.seq, run.error)
                            break
                        self.store.outbox_done(item.seq)
                        run.published += 1
                finally:
                    try:
                        conn.unbind()
                    except LDAPException:
                        pass
        run.pending = self.store.outbox_counts()["pending"]
        return run

    # ---- one item --------------------------------------------------------------------------

    def _publish(self, conn, item: OutboxItem) -> None:  # noqa: ANN001
        import ldap3

        chain = ca_dn(self.store.get_ca(item.ca).certificate, self.base_dn)
        for dn, name, classes in chain[:-1]:
            self._ensure(conn, dn, classes)
        ca_entry = chain[-1][0]
        self._ensure(conn, ca_entry, ["organizationalRole", "pkiCA", "deltaCRL"])
        if item.kind == "user":
            dn = f"cn={item.serial:x},{ca_entry}"
            self._ensure(conn, dn, ["organizationalRole", "pkiUser"])
            subject = x509.load_der_x509_certificate(item.payload).subject.rfc4514_string()
            conn.modify(dn, {"userCertificate;binary": [(ldap3.MODIFY_REPLACE, [item.payload])],
                             "description": [(ldap3.MODIFY_REPLACE, [subject])]})
            return
        dn = ca_entry
        if item.shard is not None and item.kind in ("crl", "delta"):
            dn = f"cn=crl-{item.shard},{ca_entry}"
            self._ensure(conn, dn, ["organizationalRole", "pkiCA", "deltaCRL"])
        conn.modify(dn, {_ATTRIBUTE[item.kind]: [(ldap3.MODIFY_REPLACE, [item.payload])]})

    def _ensure(self, conn, dn: str, classes: list[str]) -> None:  # noqa: ANN001
        """Make the entry ``dn`` if it is missing (its naming value from its RDN)."""
        import ldap3
        from ldap3.core.exceptions import LDAPEntryAlreadyExistsResult
        from ldap3.utils.dn import parse_dn

        name, value, _ = parse_dn(dn)[0]
        attributes: dict[str, object] = {name: value}
        if "dcObject" in classes:
            attributes["o"] = value
        try:
            conn.add(dn, classes, attributes)
        except LDAPEntryAlreadyExistsResult:
            missing = classes[1:]  # the structural class is first, and fixed when the entry was made
            if missing:  # an entry made before with fewer classes: add ours (kept if there)
                try:
                    conn.modify(dn, {"objectClass": [(ldap3.MODIFY_ADD, missing)]})
                except ldap3.core.exceptions.LDAPAttributeOrValueExistsResult:
                    pass


def ldap_password(password_file: str | None) -> str:
    """The LDAP bind password: from ``password_file`` (its first line) or IRANPKI_LDAP_PASSWORD."""
    if password_file:
        try:
            with open(password_file, encoding="utf-8") as f:
                return f.readline().rstrip("\n")
        except OSError as exc:
            raise ConfigError(f"cannot read the LDAP password file {password_file}: {exc.strerror}") from None
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        raise ConfigError(f"no LDAP password: set {PASSWORD_ENV}, or ldap.password_file in iranpki.yaml")
    return password
