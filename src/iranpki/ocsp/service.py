"""The OCSP service: answers requests from the pre-produced responses in the store or signs
them for the request, and, in the refresher, keeps the pre-produced responses signed (RFC 9919 4;
CA/Browser Forum BR 4.9.10)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from ..clock import Clock, SystemClock
from ..errors import OcspError, StoreError
from ..keys.base import Signer
from ..policy import CertificatePolicy, load_policy
from ..store.base import CaRecord, CertificateRecord, OcspResponseRecord, Store
from .codec import (
    PREPRODUCED_HASHES,
    CertId,
    MalformedRequestError,
    OcspRequest,
    ResponseStatus,
    _fast_cert_id,
    _gentime,
    error_response,
    parse_request,
    single_response,
)
from .responder import (
    IssueResponder,
    Responder,
    ResponderError,
    ensure_responder_certificate,
    find_responder_certificate,
)

__all__ = ["CLOCK_META", "SIGNING_MODES", "UNKNOWN_SIGNATURES_PER_SECOND", "OcspService", "Reply", "assemble_service",
           "store_clock"]

log = logging.getLogger("iranpki.ocsp")

# ---- the service ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Reply:
    """A DER OCSPResponse and what HTTP needs to say about it."""

    body: bytes
    #: POSIX times of thisUpdate and nextUpdate (None for an unsigned error response).
    this_update: float | None = None
    next_update: float | None = None
    #: Pre-produced: the same for every client until nextUpdate, so HTTP caches may keep it
    #: (RFC 9919 6). Responses signed for one request are not.
    cacheable: bool = False
    #: Signed live for a request without a nonce (its pre-produced response missing or older
    #: than the status): not for HTTP caches, but the worker may answer the same request with it
    #: for a moment, so repeated requests for one certificate cost one signature, not one each.
    reusable: bool = False


_MALFORMED = Reply(error_response(ResponseStatus.malformedRequest))
_INTERNAL = Reply(error_response(ResponseStatus.internalError))
_UNAUTHORIZED = Reply(error_response(ResponseStatus.unauthorized))
_TRY_LATER = Reply(error_response(ResponseStatus.tryLater))
#: Live signatures per second (per process) for serial numbers the CA never issued.
UNKNOWN_SIGNATURES_PER_SECOND = 50.0


class _Budget:
    """A token bucket: ``rate`` takes per second, at most ``rate`` (one second's worth) at once."""

    def __init__(self, rate: float, now: Callable[[], float]):
        self.rate = rate
        self._now = now
        self._tokens = rate
        self._at = now()

    def take(self) -> bool:
        t = self._now()
        self._tokens = min(self.rate, self._tokens + (t - self._at) * self.rate)
        self._at = t
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
SIGNING_MODES = ("pre-produced", "on-demand")


class OcspService:
    """Answers OCSP requests for the CAs of ``responders`` from ``store``, and (in the refresher)
    keeps the pre-produced responses signed.

    ``signing`` is ``pre-produced`` (plain single-certificate requests are answered from the
    store's pre-produced responses; nonces and several certificates are signed for the request
    when the CP allows it) or ``on-demand`` (every response is signed for its request).
    ``issue_responder`` issues a delegated responder certificate (:data:`IssueResponder`); it is
    needed only to renew those.

    Serial numbers the CA never issued cannot be answered ahead, so each costs a live signature:
    at most ``unknown_per_second`` signatures per process answer a request that names one (one
    per signature, however many CertIDs the request holds); past that a flood of made-up serials
    gets the unsigned tryLater (RFC 6960 4.2.1), and the CA's own certificates are still answered
    from the pre-produced responses.

    **On a copy of the store** (a PostgreSQL standby), ``source_as_of()`` says up to when the copy
    is known to hold every change: the time of the primary's last clock beat (``service.clock``,
    which the refresher on the primary writes every two seconds) that the copy has replayed;
    everything the primary committed before it is in the copy. An answer signed from the copy
    says so (thisUpdate is that time, RFC 6960 4.2.2.1: when the status was known to be correct).
    When the copy is older than ``max_source_lag`` (the CP's ``max_source_lag_seconds``: the
    primary stopped, or replication broke), the responder answers only what never changes back,
    a revocation; everything else gets tryLater, never a "good" it cannot vouch for. A store that
    cannot be read (the standby stopped) gets tryLater too, never an internal error.

    A pre-produced response is served only while it reflects the certificate's current status:
    the store gives the certificate's status sequence with the response, and one signed before
    the last change (the refresher fell behind, or keeps failing) is never served; the answer is
    signed for the request from the store's status instead, and counted in ``stale_answered``.
    """

    def __init__(self, store: Store, responders: Iterable[Responder], *, signing: str = "pre-produced",
                 policy: CertificatePolicy | None = None, clock: Clock | None = None,
                 issue_responder: IssueResponder | None = None,
                 unknown_per_second: float = UNKNOWN_SIGNATURES_PER_SECOND,
                 source_as_of: Callable[[], float | None] | None = None, max_source_lag: float | None = None):
        if signing not in SIGNING_MODES:
            raise OcspError(f"signing mode {signing!r} is not offered; must be one of {', '.join(SIGNING_MODES)}")
        self.store = store
        self.signing = signing
        self.policy = policy or load_policy()
        self.clock = clock or SystemClock()
        self._issue_responder = issue_responder
        self._rules = self.policy.status.ocsp
        self.responders: dict[str, Responder] = {}
        self._index: dict[tuple[str, bytes, bytes], Responder] = {}
        self._unknown = _Budget(unknown_per_second, time.monotonic)
        #: Requests whose pre-produced response was older than the certificate's status (answered live).
        self.stale_answered = 0
        self._stale_logged = 0.0
        self._source_as_of = source_as_of
        self.max_source_lag = max_source_lag if max_source_lag is not None else self._rules.max_source_lag_seconds
        if self.max_source_lag > self._rules.max_source_lag_seconds:
            raise OcspError(f"a source lag of {self.max_source_lag:g} s is more than the CP allows "
                            f"({self._rules.max_source_lag_seconds} s, status.ocsp.max_source_lag_seconds)")
        self._as_of: tuple[float, float | None] = (-1e9, None)
        #: The last beat value seen and when (monotonic) it was first seen.
        self._beat_seen: tuple[float | None, float] = (None, time.monotonic())
        self._store_failed_logged = 0.0
        for r in responders:
            self._install(r)
        if not self.responders:
            raise OcspError("an OCSP responder needs at least one CA to answer for; name one (--ca NAME)")

    def _install(self, r: Responder) -> None:
        self.responders[r.ca.name] = r
        # Keyed by hash, issuerNameHash and issuerKeyHash: one dict lookup finds the CA of a CertID.
        for h, (name_hash, key_hash) in r.hashes.items():
            self._index[(h, name_hash, key_hash)] = r

    def close(self) -> None:
        """Close the signers (not the store, which belongs to the caller)."""
        for r in self.responders.values():
            r.signer.close()

    # -- answering -----------------------------------------------------------------------------

    def respond(self, data: bytes) -> Reply:
        """The answer to the DER OCSPRequest ``data``. Never raises: a request that cannot be read
        is answered malformedRequest, a failure of ours internalError."""
        try:
            fast = _fast_cert_id(data)
            if fast is not None:
                return self._one(fast, None)
            request = parse_request(data)
            if len(request.cert_ids) == 1:
                return self._one(request.cert_ids[0], request.nonce)
            return self._several(request)
        except MalformedRequestError:
            return _MALFORMED
        except (StoreError, sqlite3.OperationalError) as exc:
            # The store (a standby, a database server) cannot be read now: try later, not an error of ours.
            if time.monotonic() - self._store_failed_logged > 10:
                self._store_failed_logged = time.monotonic()
                log.warning("the store cannot be read (%s); answering tryLater until it can", exc)
            return _TRY_LATER
        except Exception:  # noqa: BLE001 - a client gets internalError, never a dropped connection
            log.exception("answering an OCSP request failed")
            return _INTERNAL

    @property
    def on_copy(self) -> bool:
        """Whether this service answers from a copy of the store (a standby)."""
        return self._source_as_of is not None

    def source_age(self) -> tuple[float | None, bool]:
        """(the time the store's copy is known current as of, None for the store itself; whether
        it is too old to vouch for anything but a revocation). Read at most every 0.2 s.

        The beat is the primary's clock, compared with this machine's: both must keep time (NTP).
        A beat from the future (more than :data:`CLOCK_TOLERANCE` ahead) is not trusted, and a
        beat that has not moved for ``max_source_lag`` by this machine's monotonic clock is too
        old whatever it says, so a primary whose clock runs fast cannot stretch the lag."""
        if self._source_as_of is None:
            return None, False
        checked, value = self._as_of
        mono = time.monotonic()
        if mono - checked > 0.2:
            value = self._source_as_of()
            self._as_of = (mono, value)
            if value != self._beat_seen[0]:
                self._beat_seen = (value, mono)
        if value is None:
            return None, True  # no beat of the primary's clock ever reached the copy
        now = self.clock.now().timestamp()
        stale = (now - value > self.max_source_lag or value - now > CLOCK_TOLERANCE
                 or mono - self._beat_seen[1] > self.max_source_lag)
        return min(value, now), stale

    def _one(self, cid: CertId, nonce: bytes | None) -> Reply:
        r = self._index.get((cid.hash, cid.name_hash, cid.key_hash))  # type: ignore[arg-type]
        if r is None:
            return _UNAUTHORIZED
        if nonce is not None and not self._rules.sign_on_demand:
            nonce = None  # the lightweight profile: answer without the nonce rather than refuse
        as_of, stale = self.source_age()
        if stale:
            status = self.store.certificate_status(r.ca.name, cid.serial)
            if not _final(status):
                return _TRY_LATER
            # A revocation is still true now, however old the copy: signed as of now.
            return self._live(r, [cid], nonce, statuses=[status])
        if nonce is None and self.signing == "pre-produced" and cid.hash in PREPRODUCED_HASHES:
            cached = self._cached(r, cid)
            if cached is not None:
                return cached
        status = self.store.certificate_status(r.ca.name, cid.serial)
        if status is None and not self._unknown.take():
            return _TRY_LATER
        reply = self._live(r, [cid], nonce, statuses=[status], known_at=as_of)
        if nonce is None:
            reply = replace(reply, reusable=True)
        return reply

    def _cached(self, r: Responder, cid: CertId) -> Reply | None:
        rec = self.store.get_ocsp_response(r.ca.name, cid.serial, cid.hash)  # type: ignore[arg-type]
        if rec is None:
            return None  # a certificate the refresher has not reached yet: signed for the request
        next_update = rec.next_update.timestamp()
        if rec.current_status_seq is not None and rec.current_status_seq > rec.status_seq:
            # Signed before the certificate's last status change: the refresher has not re-signed
            # it. Serving it could say "good" for a revoked certificate; sign from the store instead.
            self.stale_answered += 1
            if time.monotonic() - self._stale_logged > 60:
                self._stale_logged = time.monotonic()
                # On a copy of the store a change arrives before its re-signed response: no alarm.
                (log.info if self._source_as_of is not None else log.error)("CA %s: the pre-produced response of certificate %x predates its status change; "
                          "answering from the store. Is the refresher running? (%d such answers so far)",
                          r.ca.name, cid.serial, self.stale_answered)
            return None
        # Expired (the refresher is behind) or signed by another identity (a responder with another
        # key shares the store): sign for the request rather than serve it.
        if next_update <= self.clock.now().timestamp() or not r.signed_it(rec.response):
            return None
        return Reply(rec.response, rec.this_update.timestamp(), next_update, True)

    def _several(self, request: OcspRequest) -> Reply:
        known = [(cid, self._index.get((cid.hash, cid.name_hash, cid.key_hash))) for cid in request.cert_ids]  # type: ignore[arg-type]
        r = next((resp for _, resp in known if resp is not None), None)
        if r is None:
            return _UNAUTHORIZED
        if not self._rules.sign_on_demand and self.signing == "pre-produced":
            # The CP forbids signing for a request: the most complete answer that needs no new
            # signature is the first certificate's pre-produced response (the lightweight profile).
            return self._one(next(cid for cid, resp in known if resp is r), None)
        as_of, stale = self.source_age()  # first: the statuses read after it are at least as new
        # One signature covers one responder: a CertID of another issuer is "unknown" (RFC 6960 2.2).
        statuses = [self.store.certificate_status(r.ca.name, cid.serial) if resp is r else None
                    for cid, resp in known]
        # A signature that answers any serial the CA never issued takes from the same budget as a
        # single one: one token per signature, so two CertIDs in a request are no way around it.
        if stale and not all(_final(s) for s in statuses):
            return _TRY_LATER
        if any(s is None for s in statuses) and not self._unknown.take():
            return _TRY_LATER
        return self._live(r, [cid for cid, _ in known], request.nonce, statuses=statuses,
                          known_at=None if stale else as_of)

    def _live(self, r: Responder, cert_ids: list[CertId], nonce: bytes | None, *, statuses: list,
              known_at: float | None = None) -> Reply:
        """Sign one response for ``cert_ids`` with ``statuses`` (read by the caller, who decided
        whether the signature may be spent); ``known_at``: when the statuses were known correct
        (a copy of the store's time), else now."""
        now = self.clock.now().replace(microsecond=0)
        if known_at is not None:
            now = min(now, datetime.fromtimestamp(int(known_at), timezone.utc))
        next_update = min(now + timedelta(hours=self.policy.ocsp_validity_hours(r.ca.level)), r.not_after)
        this_b, next_b = _gentime(now), _gentime(next_update)
        singles = [single_response(cid.der, status, this_b, next_b) for cid, status in zip(cert_ids, statuses)]
        body = r.sign(singles, now, nonce)
        return Reply(body, now.timestamp(), next_update.timestamp(), False)

    # -- pre-producing (the refresher) ---------------------------------------------------------

    def _produce(self, r: Responder, hash_name: str, serials: Iterable[int]) -> int:
        now = self.clock.now().replace(microsecond=0)
        next_update = min(now + timedelta(hours=self.policy.ocsp_validity_hours(r.ca.level)), r.not_after)
        this_b, next_b = _gentime(now), _gentime(next_update)
        records = []
        for serial in serials:
            status = self.store.certificate_status(r.ca.name, serial)
            if status is None:
                continue
            body = r.sign([single_response(r.cert_id(hash_name, serial), status, this_b, next_b)], now)
            records.append(OcspResponseRecord(r.ca.name, serial, hash_name, body, now, next_update, status[3]))
        if records:
            self.store.put_ocsp_responses(records)
        return len(records)

    def prepare(self, *, everything: bool = False, between: Callable[[], bool] | None = None,
                progress: Callable[[int], None] | None = None) -> int:
        """Sign the pre-produced responses that are due: missing, older than a status change, or
        within ``refresh_before_hours`` of their nextUpdate (``everything``: all of them). Returns
        how many were signed.

        ``between`` is called after each batch of 500; the refresher re-signs status changes
        there, so a revocation never waits behind a long pass (a million certificates are two
        million signatures), and stops the pass when it returns False. ``progress(signed)`` is
        called after each batch too."""
        signed = 0
        start = self.clock.now().replace(microsecond=0)
        for r in self.responders.values():
            validity = self.policy.ocsp_validity_hours(r.ca.level)
            hours = validity if everything else self._rules.refresh_before_hours
            # A response made now lasts at least until ``due``, so each pass ends; a responder whose
            # certificate ends sooner makes shorter responses, refreshed as they run out.
            due = min(start + timedelta(hours=hours), r.not_after - timedelta(seconds=1))
            if r.not_after < start + timedelta(hours=validity):
                log.warning("the certificate that signs for CA %s expires on %s, before the responses' nextUpdate; "
                            "they are cut short. Renew it", r.ca.name, r.not_after.isoformat())
            for hash_name in PREPRODUCED_HASHES:
                after = None
                while serials := self.store.ocsp_due(r.ca.name, hash_name, due, limit=500, after=after):
                    signed += self._produce(r, hash_name, serials)
                    after = serials[-1]  # one linear walk over the CA, not a rescan per batch
                    if progress is not None:
                        progress(signed)
                    if between is not None and not between():
                        return signed
        return signed

    def foreign_responses(self) -> bool:
        """Whether the store holds pre-produced responses signed by another identity (a change of
        responder key or mode since they were signed). Looks at a few per CA."""
        for r in self.responders.values():
            for hash_name in PREPRODUCED_HASHES:
                for serial in self.store.ocsp_due(r.ca.name, hash_name, datetime.max.replace(tzinfo=timezone.utc), 4):
                    rec = self.store.get_ocsp_response(r.ca.name, serial, hash_name)
                    if rec is not None and not r.signed_it(rec.response):
                        return True
        return False

    def resign_changed(self, since_seq: int) -> int:
        """Re-sign the responses of every certificate whose status changed after ``since_seq``;
        return the last sequence seen (pass it to the next call)."""
        while changes := self.store.status_changes(since_seq):
            mine: dict[str, list[int]] = {}
            for _, ca, serial in changes:
                if ca in self.responders:
                    mine.setdefault(ca, []).append(serial)
            for ca, serials in mine.items():
                for hash_name in PREPRODUCED_HASHES:
                    self._produce(self.responders[ca], hash_name, serials)
                log.info("re-signed the responses of %d certificate(s) of CA %s after a status change", len(serials), ca)
            since_seq = changes[-1][0]
        return since_seq

    def refresh_responders(self, *, renew: bool) -> None:
        """Pick up the newest delegated responder certificates from the store; with ``renew``,
        issue new ones where they are missing or due (this needs the CA key)."""
        now = self.clock.now()
        for name, r in list(self.responders.items()):
            if not r.delegated:
                continue
            if renew:
                if self._issue_responder is None:
                    raise ResponderError(f"the responder certificate of CA {name!r} is due for renewal, and this "
                                         "responder cannot open the CA; start it with access to the CA key")
                record: CertificateRecord | None = ensure_responder_certificate(
                    self.store, r.ca, r.signer, self._issue_responder, policy=self.policy, clock=self.clock)
            else:
                record = find_responder_certificate(self.store, name, r.public_key, now)
            if record is None:
                log.error("CA %s has no valid OCSP responder certificate for key %s (revoked or expired); the "
                          "refresher issues a new one", name, r.signer.reference)
            elif record.serial != r.certificate.serial:  # type: ignore[union-attr]
                self._install(Responder(r.ca, r.signer, record, include_ca_certificate=r.include_ca_certificate))
                log.info("CA %s now answers with responder certificate %x", name, record.serial)


def assemble_service(store: Store, cas: Iterable[CaRecord], *, ca_signer: Callable[[CaRecord], Signer],
                     responder: Signer | None = None, issue_responder: IssueResponder | None = None,
                     signing: str = "pre-produced", include_ca_certificate: bool = False,
                     clock: Clock | None = None, source_as_of: Callable[[], float | None] | None = None,
                     max_source_lag: float | None = None) -> OcspService:
    """The OCSP service for ``cas``, by the responder policy of RFC 6960 4.2.2.2:

    - without ``responder``, each CA answers for itself, signing with its own key
      (``ca_signer(record)``);
    - with ``responder`` (a delegated responder's key), each CA's answers are signed by it under
      an ocsp-signer certificate from that CA. With ``issue_responder`` (the CA side can issue),
      a missing or ageing certificate is issued now and renewed later by the service; without
      it, a CA with no current certificate for the key is an error that says how to get one.
    """
    clock = clock or SystemClock()
    responders = []
    for record in cas:
        if responder is None:
            responders.append(Responder(record, ca_signer(record), include_ca_certificate=include_ca_certificate))
            continue
        if issue_responder is not None:
            cert = ensure_responder_certificate(store, record, responder, issue_responder, clock=clock)
        else:
            found = find_responder_certificate(store, record.name, responder.public_key, clock.now())
            if found is None:
                raise ResponderError(
                    f"CA {record.name!r} has no valid OCSP responder certificate for {responder.reference}; "
                    "start the responder with access to the CA key, which issues one")
            cert = found
        responders.append(Responder(record, responder, cert, include_ca_certificate=include_ca_certificate))
    return OcspService(store, responders, signing=signing, clock=clock, issue_responder=issue_responder,
                       source_as_of=source_as_of, max_source_lag=max_source_lag)


def _final(status) -> bool:  # noqa: ANN001 - certificate_status's tuple, or None
    """Whether a status never changes back: revoked for any reason but certificateHold (6)."""
    return status is not None and status[0] is not None and status[2] != 6


#: The store's clock: the time the primary last wrote it (the OCSP refresher does, every beat).
CLOCK_META = "service.clock"
#: How far ahead of this machine's clock a beat may be before it is not trusted (seconds).
CLOCK_TOLERANCE = 5.0


def store_clock(store: Store) -> float | None:
    """The primary's last clock beat as a copy of the store holds it (:data:`CLOCK_META`), or None."""
    text = store.get_meta(CLOCK_META)
    return float(text) if text else None
