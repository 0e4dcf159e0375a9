"""Certificate revocation lists: RFC 5280 section 5, encoded as a stream.

Implemented here:

- 5.1 CertificateList / TBSCertList, version 2, with thisUpdate and nextUpdate from the national
  CP (``root.crl_next_update_hours``, each level's ``status.crl_next_update_hours`` and
  ``status.crl.delta_next_update_hours`` in ``policies/national-cp.yaml``);
- 5.1.2.6 revokedCertificates, absent when empty, in serial order, with the entry extensions of
  5.3.1 reasonCode (left out for ``unspecified``, as 5.3.1 advises) and 5.3.2 invalidityDate;
- 5.2.1 authorityKeyIdentifier, 5.2.3 cRLNumber (one increasing sequence per CA, shared by
  complete and delta CRLs and by every shard, as 5.2.4 requires of deltas), 5.2.4
  deltaCRLIndicator (critical), 5.2.5 issuingDistributionPoint (critical, on every CRL of a
  partitioned CA, naming the shard's URL so that shards cannot be swapped), 5.2.6 freshestCRL
  (on complete CRLs of a CA that publishes delta CRLs).

Why the revoked list is encoded here and not by ``cryptography`` or ``asn1crypto``: at national
scale (a million entries) the first is quadratic and the second takes minutes (docs/architecture.md). The
entries come from the store as plain tuples in one snapshot and are written straight into one
buffer, with room left in front of it for the headers, whose lengths are known only at the end;
nothing holds a Python object per entry. The tests read every CRL back with ``cryptography``,
``openssl crl`` and pkilint.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from . import der
from .clock import Clock, SystemClock
from .der import generalized_time
from .errors import CrlError
from .keys.base import SignatureScheme, Signer
from .names import inside
from .policy import CertificatePolicy, load_policy
from .store.base import AuditEvent, CaRecord, CrlRecord, Store
from .x509parts import crl_url, encode_extension

__all__ = ["CrlError", "GeneratedCrl", "encode_revoked", "generalized_time", "generate_crl", "generate_crls", "publish", "repository_path"]

_REASON_OID = der.oid("2.5.29.21")
_INVALIDITY_OID = der.oid("2.5.29.24")
#: crlEntryExtensions holding only a reasonCode, one per code (5.3.1); none for unspecified (0).
_REASON_EXT = {code: der.sequence(_REASON_OID, der.octet_string(der.tlv(0x0A, bytes((code,)))))
               for code in (1, 2, 3, 4, 5, 6, 8, 9, 10)}
_REASON_EXT[0] = b""
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class GeneratedCrl:
    record: CrlRecord

    @property
    def der(self) -> bytes:
        return Path(self.record.path).read_bytes()


#: ISO text to DER time digits in one C call: "-", ":" and "T" dropped, "+" (of "+00:00") made
#: "Z", so ``YYYY-MM-DDTHH:MM:SS+00:00`` becomes ``YYYYMMDDHHMMSSZ0000``.


def _time(text: str) -> bytes:
    """ISO text (``YYYY-MM-DDTHH:MM:SS...``, UTC) to a DER Time (UTCTime to 2049, then Generalized)."""
    digits = text.encode("ascii").translate(*der.ISO_DIGITS)
    if b"1950" <= digits < b"2050":
        return b"\x17\x0d" + digits[2:14] + b"Z"
    return b"\x18\x0f" + digits[:14] + b"Z"


def _entry_extensions(reason: int | None, invalidity: str | None) -> bytes:
    """The crlEntryExtensions of one entry (empty when it has none)."""
    exts = _REASON_EXT[reason or 0]
    if invalidity is not None:
        value = generalized_time(invalidity)
        exts += b"\x30" + bytes((len(value) + 7,)) + _INVALIDITY_OID + b"\x04" + bytes((len(value),)) + value
    return b"\x30" + der.length(len(exts)) + exts if exts else b""


#: The common entry (a serial of 1 to 20 octets without a leading zero, a whole-second UTCTime,
#: no invalidityDate) is written from these: its SEQUENCE and INTEGER headers by
#: ``serial length << 4 | reason``, and the extensions after the time by reason.
_COMMON_EXTS = {code: _entry_extensions(code, None) for code in (None, *_REASON_EXT)}
_COMMON_HEADS: dict[int, bytes] = {
    size << 4 | code: bytes((0x30, 2 + size + 15 + len(exts), 0x02, size))
    for size in range(1, 21) for code, exts in _COMMON_EXTS.items() if code is not None}


def encode_revoked(rows: Iterable[tuple[str, str, int | None, str | None]], out: bytearray) -> int:
    """Append the DER of each revokedCertificates entry to ``out``; return how many.

    ``rows`` are the store's ``(serial_hex, revoked_at, reason, invalidity_date)`` tuples.
    A million entries pass through here per national CRL, so the common entry takes a few C
    calls and table look-ups; any other goes the general way, to the same DER.
    """
    n = 0
    fromhex = bytes.fromhex
    iso = der.ISO_DIGITS[0]
    heads, tails = _COMMON_HEADS, _COMMON_EXTS
    for serial_hex, revoked_at, reason, invalidity in rows:
        n += 1
        raw = fromhex(serial_hex).lstrip(b"\x00")
        digits = revoked_at.encode("ascii").translate(iso, b"-:T")  # YYYYMMDDHHMMSSZ0000
        tail = tails.get(reason) if invalidity is None else None
        if (tail is not None and (head := heads.get(len(raw) << 4 | (reason or 0))) is not None
                and raw[0] < 0x80 and digits[14] == 0x5A and b"1950" <= digits < b"2050"):
            out += head
            out += raw
            out += b"\x17\x0d"
            out += digits[2:15]
            out += tail
            continue
        raw = raw or b"\x00"
        if raw[0] & 0x80:  # a positive INTEGER whose top bit is set takes a leading zero (X.690 8.3.2)
            raw = b"\x00" + raw
        body = b"\x02" + bytes((len(raw),)) + raw + _time(revoked_at) + _entry_extensions(reason, invalidity)
        out += b"\x30" + der.length(len(body)) + body
    return n


def _ca_key_id(record: CaRecord) -> bytes:
    cert = x509.load_der_x509_certificate(record.certificate)
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest  # type: ignore[arg-type]


def _dp(url: str) -> x509.DistributionPoint:
    return x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)


def repository_path(record: CaRecord, url: str) -> str:
    """Where the file that ``url`` names lies inside the repository folder (its path below the
    CA's repository URL), checked to stay inside it."""
    base = urlsplit(record.repository_url.rstrip("/") + "/").path
    path = urlsplit(url).path
    rel = path[len(base):] if path.startswith(base) else path.lstrip("/")
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise CrlError(f"the URL {url!r} names no file inside the repository {record.repository_url!r}")
    return "/".join(parts)


def generate_crl(store: Store, ca: CaRecord, signer: Signer, out_dir: str | os.PathLike[str], *,
                 delta: bool = False, shard: int | None = None, clock: Clock | None = None,
                 policy: CertificatePolicy | None = None, scheme: SignatureScheme | None = None,
                 actor: str = "iranpki", progress: Callable[[int], None] | None = None) -> GeneratedCrl:
    """Generate, sign, write and record one CRL of ``ca`` (a complete one, or a delta CRL).

    The CRL is written to ``out_dir/<ca>-<number>[-delta].crl`` (atomically) and recorded in the
    store's CRL register; :func:`publish` lays the newest ones out as the URLs say.
    ``progress(entries)`` is called every 10,000 revoked entries encoded (and once at the end).
    """
    # The CA's name names the file: one that would lead outside the folder (a record edited by
    # hand) is refused before a CRL number is taken, so the numbers stay without gaps.
    inside(out_dir, f"{ca.name}-0.crl")
    clock = clock or SystemClock()
    policy = policy or load_policy()
    scheme = scheme or SignatureScheme.parse(ca.signature)
    if ca.crl_shards > 1:
        if shard is None:
            raise CrlError(f"CA {ca.name!r} partitions its CRL into {ca.crl_shards} shards; name one "
                           f"(0 to {ca.crl_shards - 1}) or generate them all (generate_crls)")
        if not 0 <= shard < ca.crl_shards:
            raise CrlError(f"shard {shard} does not exist; CA {ca.name!r} has shards 0 to {ca.crl_shards - 1}")
    elif shard not in (None, 0):
        raise CrlError(f"CA {ca.name!r} does not partition its CRL; leave out the shard (got {shard})")
    else:
        shard = None
    pub = signer.public_key.public_bytes(*_SPKI)
    theirs = x509.load_der_x509_certificate(ca.certificate).public_key().public_bytes(*_SPKI)
    if pub != theirs:
        raise CrlError(f"the key {signer.reference} is not the key of CA {ca.name!r}; give the CA's own key")

    base: CrlRecord | None = None
    if delta:
        base = store.latest_crl(ca.name, "full", shard)
        if base is None:
            where = f" shard {shard}" if shard is not None else ""
            raise CrlError(f"CA {ca.name!r}{where} has no complete CRL yet, and a delta CRL needs one as its base; "
                           "generate a complete CRL first (iranpki crl generate without --delta)")
    # A complete CRL lasts as long as the CP allows for its CA: the root's, or the CA's level's.
    hours = policy.status.crl.delta_next_update_hours if delta else policy.crl_next_update_hours(ca.kind, ca.level)
    advertise_delta = not delta and store.latest_crl(ca.name, "delta", shard) is not None

    alg = scheme.algorithm_identifier(signer.key_spec)
    issuer = x509.load_der_x509_certificate(ca.certificate).subject.public_bytes()
    key_id = _ca_key_id(ca)

    with store.revoked_snapshot(ca.name, shard, base.status_seq if base else None, crl_number=True) as snap:
        number = snap.crl_number
        assert number is not None
        now = clock.now().replace(microsecond=0)
        next_update = now + timedelta(hours=hours)
        head = der.integer(1) + alg + issuer + der.time(now) + der.time(next_update)
        # Room in front of the entries for the headers: the TBSCertList and revokedCertificates
        # SEQUENCE headers take at most 6 octets each for any CRL under 4 GiB.
        gap = len(head) + 12
        buf = bytearray(gap)
        count = encode_revoked(_counted(snap.rows, progress) if progress else snap.rows, buf)
        if progress is not None:
            progress(count)
        status_seq = snap.status_seq

    entries_len = len(buf) - gap
    revoked_header = (b"\x30" + der.length(entries_len)) if count else b""
    exts = [encode_extension(ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, x509.AuthorityKeyIdentifier(key_id, None, None)),
            encode_extension(ExtensionOID.CRL_NUMBER, False, x509.CRLNumber(number))]
    if delta:
        assert base is not None
        exts.append(encode_extension(ExtensionOID.DELTA_CRL_INDICATOR, True, x509.DeltaCRLIndicator(base.number)))
    if shard is not None:
        exts.append(encode_extension(ExtensionOID.ISSUING_DISTRIBUTION_POINT, True, x509.IssuingDistributionPoint(
            full_name=[x509.UniformResourceIdentifier(crl_url(ca, shard))], relative_name=None,
            only_contains_user_certs=False, only_contains_ca_certs=False, only_some_reasons=None,
            indirect_crl=False, only_contains_attribute_certs=False)))
    if advertise_delta:
        exts.append(encode_extension(ExtensionOID.FRESHEST_CRL, False, x509.FreshestCRL([_dp(crl_url(ca, shard, delta=True))])))
    buf += der.context(0, der.sequence(*exts))
    inner = head + revoked_header
    tbs_len = len(inner) + entries_len + (len(buf) - gap - entries_len)
    tbs_header = b"\x30" + der.length(tbs_len)
    start = gap - len(inner) - len(tbs_header)
    buf[start:gap] = tbs_header + inner
    tbs = memoryview(buf)[start:]

    signature = signer.sign_checked(tbs, scheme)  # type: ignore[arg-type]
    tail = alg + der.bit_string(signature)
    outer_header = b"\x30" + der.length(len(tbs) + len(tail))

    kind = "delta" if delta else "full"
    name = f"{ca.name}{'' if shard is None else f'-{shard}'}-{number}{'-delta' if delta else ''}.crl"
    path = inside(out_dir, name)
    digest = _write_atomic(path, (outer_header, tbs, tail))
    record = CrlRecord(ca=ca.name, number=number, kind=kind, shard=shard,
                       base_number=base.number if base else None, this_update=now, next_update=next_update,
                       status_seq=status_seq, entries=count, sha256=digest, path=str(path))
    # For the directory (LDAP), when the store publishes: the CRL itself, in its outbox.
    published = bytes(outer_header) + bytes(tbs) + bytes(tail) if store.publishing() else None
    store.add_crl(record, AuditEvent("crl.issued", f"{ca.name}#{number}", actor, {
        "kind": kind, "shard": shard, "base": record.base_number, "entries": count,
        "this_update": now.isoformat(), "next_update": next_update.isoformat(), "sha256": digest}), der=published)
    return GeneratedCrl(record)


def _counted(rows: Iterable[tuple], progress: Callable[[int], None], every: int = 10_000) -> Iterator[tuple]:
    for i, row in enumerate(rows, 1):
        if i % every == 0:
            progress(i)
        yield row


def generate_crls(store: Store, ca: CaRecord, signer: Signer, out_dir: str | os.PathLike[str], *,
                  delta: bool = False, shard: int | None = None, **kw: object) -> list[GeneratedCrl]:
    """The CRL of every shard of ``ca`` (or of the one named), complete or delta."""
    shards: list[int | None] = [None] if ca.crl_shards == 1 else (
        [shard] if shard is not None else list(range(ca.crl_shards)))
    return [generate_crl(store, ca, signer, out_dir, delta=delta, shard=s, **kw) for s in shards]  # type: ignore[arg-type]


def complete_crl_due(store: Store, ca: CaRecord, now: datetime) -> str | None:
    """Why ``ca``'s complete CRLs are due now, or None when they are not.

    Due when a shard has no complete CRL yet, when a certificate of the CA changed status
    (revoked, put on hold, released) after the newest complete CRL of any shard, or when that CRL
    is past half its validity. Run ``crl generate --due`` from cron more often than the CP's
    ``crl_publish_within_hours`` (hourly, say): then every revocation is on a complete CRL within
    that time, and a relying party that reads no delta CRLs (GnuTLS certtool, many applications)
    sees it as soon as it fetches the CRL again.
    """
    shards: list[int | None] = [None] if ca.crl_shards == 1 else list(range(ca.crl_shards))
    newest = [store.latest_crl(ca.name, "full", s) for s in shards]
    missing = [s for s, r in zip(shards, newest) if r is None]
    if missing:
        return "it has no complete CRL yet" if shards == [None] else \
            f"shard(s) {', '.join(str(s) for s in missing)} have no complete CRL yet"
    records = [r for r in newest if r is not None]
    since = min(r.status_seq for r in records)
    while True:  # the store's status changes after the oldest of them, a page at a time
        page = store.status_changes(since, limit=1000)
        mine = next((c for c in page if c[1] == ca.name), None)
        if mine is not None:
            return f"certificate {mine[2]:x} changed status after its newest complete CRL"
        if len(page) < 1000:
            break
        since = page[-1][0]
    for r in records:
        half = r.this_update + (r.next_update - r.this_update) / 2
        if now >= half:
            return f"complete CRL {r.number} is past half its validity (nextUpdate {r.next_update.isoformat()})"
    return None


def _write_atomic(path: Path, parts: Iterable[bytes | memoryview]) -> str:
    """Write ``parts`` to ``path`` so that a reader sees the old file or the whole new one, never
    a part: a temporary file in the same folder, flushed to disk, then renamed over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
                h.update(part)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)  # the rename itself survives a power cut
    finally:
        os.close(dfd)
    return h.hexdigest()


def publish(store: Store, repository: str | os.PathLike[str], cas: list[str] | None = None,
            now: datetime | None = None) -> list[tuple[str, str]]:
    """Lay out the CA certificates and the newest CRLs in ``repository`` as their URLs say.

    Each file is replaced atomically (see :func:`_write_atomic`). Returns ``(path, what)`` pairs.
    """
    root = Path(repository)
    done: list[tuple[str, str]] = []
    records = [store.get_ca(n) for n in cas] if cas else store.list_cas()
    for ca in records:
        cert_url = f"{ca.repository_url.rstrip('/')}/certs/{quote(ca.name, safe='')}.crt"
        rel = repository_path(ca, cert_url)
        _write_atomic(inside(root, rel), [ca.certificate])
        done.append((rel, f"CA certificate of {ca.name}"))
        shards: list[int | None] = [None] if ca.crl_shards == 1 else list(range(ca.crl_shards))
        for shard in shards:
            for kind in ("full", "delta"):
                crl = store.latest_crl(ca.name, kind, shard)
                if crl is None:
                    continue
                try:
                    data = Path(crl.path).read_bytes()
                except OSError as exc:
                    raise CrlError(f"CRL {crl.number} of {ca.name!r} was recorded at {crl.path}, which cannot be "
                                   f"read ({exc.strerror}); generate a new one (iranpki crl generate)") from None
                if hashlib.sha256(data).hexdigest() != crl.sha256:
                    raise CrlError(f"the file {crl.path} is not CRL {crl.number} of {ca.name!r} as recorded "
                                   "(its SHA-256 differs); generate a new one rather than publish it")
                rel = repository_path(ca, crl_url(ca, shard, delta=kind == "delta"))
                _write_atomic(inside(root, rel), [data])
                done.append((rel, f"{'delta ' if kind == 'delta' else ''}CRL {crl.number} of {ca.name}"
                                  + (f" shard {shard}" if shard is not None else "")))
    return done
