"""The RA's JSON API driven by random actors in random order (issue 15): officers authenticated
by their ra-officer certificates (as the HTTPS server hands them over), officers whose
certificate is forged or whose office is suspended, applicants with the right or a wrong
tracking code, the CA side issuing what was approved, the operator suspending offices, time
passing. Whatever they do, every answer is JSON (a refusal names its code, never a 500), and the
audit log shows every registration rule kept: nothing issued without the proofing and approvals
its level needs, no officer of a suspended office acting, nothing issued twice.

The API runs in this process through Django's test client (the same Django and django-ninja
stack `iranpki ra serve` serves over HTTPS; tests/test_ra_api.py drives that server)."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from iranpki.ca import CertificateAuthority, IssueRequest, parse_subject
from iranpki.clock import FixedClock
from iranpki.ra import RaWorker, RegistrationAuthority
from iranpki.store import open_store

from .test_ra import (
    ALI,
    ALI_SUBJECT,
    DEVICE,
    OFFICERS,
    OPERATOR,
    PDF,
    PNG,
    T0,
    assert_the_audit_log_shows_every_rule_kept,
    cas,  # noqa: F401 - the fixture
    csr_for,
    simulated_registry,
)

OFFICER_SUBJECT = ("C=IR,O=دفتر پیشخوان,OU={office},title=Registration Officer,SN=احمدی,GN=رضا,"
                   "serialNumber=0012345679,CN=Officer {name}")
#: Every status the API answers with; anything else (a 500) fails the test.
ANSWERS = {200, 201, 400, 401, 403, 404, 409, 413, 429}


class Api:
    """The API in this process, over ``engine``; officers present their certificate (PEM)."""

    def __init__(self, engine: RegistrationAuthority):
        from iranpki_portals.serve import application

        application()  # Django set up as the server sets it up, before the API is imported
        from django.test import Client

        from iranpki_portals import ra_api

        ra_api.use_engine(lambda: engine)
        self.client = Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="192.0.2.10")

    def call(self, method: str, path: str, body: object = None, *, officer: bytes | None = None,
             code: tuple[str, str] | None = None, files: dict | None = None) -> tuple[int, dict]:
        meta: dict[str, str] = {}
        if officer is not None:
            meta.update(SSL_CLIENT_CERT=officer.decode("ascii"), SSL_CLIENT_VERIFY="SUCCESS")
        if code is not None:
            meta.update(HTTP_X_TRACKING_CODE=code[0], HTTP_X_SECOND_FACTOR=code[1])
        if files is not None:
            response = self.client.post(f"/api/ra{path}", files, **meta)
        elif method == "GET":
            response = self.client.get(f"/api/ra{path}", **meta)
        else:
            response = self.client.post(f"/api/ra{path}", json.dumps(body or {}, ensure_ascii=False),
                                        content_type="application/json", **meta)
        assert response.status_code in ANSWERS, (path, response.status_code, response.content[:500])
        payload = json.loads(response.content) if response["Content-Type"].startswith("application/json") else {}
        if response.status_code >= 400:
            assert payload["error"]["code"] and payload["error"]["message"], payload
        return response.status_code, payload


@pytest.fixture(scope="module")
def officers(cas: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: F811
    """A store with the fixture's CAs, the offices, and an ra-officer certificate for each officer
    (issued by gica1); and a forged one: the same subject, issued by a root nobody trusts."""
    base = tmp_path_factory.mktemp("ra-api-rules")
    shutil.copy(cas["base"] / "store.sqlite3", base / "store.sqlite3")
    clock = FixedClock(T0)
    store = open_store(base / "store.sqlite3", clock=clock)
    engine = RegistrationAuthority(store, clock=clock)
    gica1 = CertificateAuthority(store.get_ca("gica1"), cas["gica1"].signer, store, clock=clock)
    engine.create_office("THR-01", "Tehran 1", "Tehran", ["gica1", "gica3"], OPERATOR)
    engine.create_office("ISF-02", "Isfahan 2", "Isfahan", ["gica1", "gica3"], OPERATOR)
    certificates, keys = {}, {}
    for name, (office, roles) in OFFICERS.items():
        key = ec.generate_private_key(ec.SECP256R1())
        issued = gica1.issue("ra-officer", IssueRequest(parse_subject(OFFICER_SUBJECT.format(office=office, name=name)),
                                                         key.public_key()))
        engine.enrol_officer(name, office, name, sorted(roles), OPERATOR, certificate=issued.record.certificate)
        certificates[name] = x509.load_der_x509_certificate(issued.record.certificate).public_bytes(Encoding.PEM)
        keys[name] = key
    # The forged one: a copy of a1's certificate (subject, serial, extensions) signed by a key of nobody's.
    genuine = x509.load_pem_x509_certificate(certificates["a1"])
    builder = x509.CertificateBuilder(genuine.subject, genuine.issuer, ec.generate_private_key(ec.SECP256R1()).public_key(),
                                      genuine.serial_number, genuine.not_valid_before_utc, genuine.not_valid_after_utc,
                                      list(genuine.extensions))
    forged = builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(Encoding.PEM)
    certificates["forged"] = forged
    store.close()
    keys["forged"] = ec.generate_private_key(ec.SECP256R1())
    return {"base": base, "certificates": certificates, "keys": keys}


def test_no_sequence_of_api_calls_reaches_issuance_without_what_its_level_needs(
        cas: dict, officers: dict, tmp_path: Path) -> None:  # noqa: F811
    import itertools

    from hypothesis import HealthCheck, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

    runs = itertools.count()
    reached: dict[str, int] = {}
    answered: dict[int, int] = {}
    issued: dict[bool, int] = {}
    actors = [*sorted(OFFICERS), "forged"]

    class Counter(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            folder = tmp_path / f"run{next(runs)}"
            folder.mkdir()
            shutil.copy(officers["base"] / "store.sqlite3", folder / "store.sqlite3")
            self.clock = FixedClock(T0)
            self.store = open_store(folder / "store.sqlite3", clock=self.clock)
            self.ra = RegistrationAuthority(self.store, clock=self.clock, registry=simulated_registry())
            self.api = Api(self.ra)
            self.worker = RaWorker(self.ra, lambda name: CertificateAuthority(
                self.store.get_ca(name), cas[name].signer, self.store, clock=self.clock))
            self.requests: list[tuple[str, str]] = []

        def teardown(self) -> None:
            if hasattr(self, "store"):
                self.store.close()

        def _call(self, *args, **kw) -> tuple[int, dict]:  # noqa: ANN002, ANN003
            status, payload = self.api.call(*args, **kw)
            answered[status] = answered.get(status, 0) + 1
            return status, payload

        def _cert(self, officer: str) -> bytes:
            return officers["certificates"][officer]

        def _request(self, i: int) -> tuple[str, str] | None:
            return self.requests[-1 - i % min(3, len(self.requests))] if self.requests else None

        def _code(self, r: tuple[str, str], right: bool) -> tuple[str, str]:
            return (r[1], "0499370899") if right else (r[1], "0012345678")

        @rule(level=st.sampled_from([1, 3]), location=st.sampled_from(["desk-token", "phone", "software-pkcs12"]))
        def register(self, level: int, location: str) -> None:
            if len(self.requests) >= 6:
                return
            status, made = self._call("POST", "/requests", {
                "profile": "personal-signature", "level": level, "ca": f"gica{level}", "applicant": ALI,
                "subject": ALI_SUBJECT, "key_location": location})
            if status == 201:
                self.requests.append((made["request"]["id"], made["tracking_code"]))

        @rule(officer=st.sampled_from(actors), i=st.integers(0, 2))
        def receive(self, officer: str, i: int) -> None:
            if (r := self._request(i)) is not None:
                self._call("POST", "/office/receive", {"tracking_code": r[1], "second_factor": "0499370899"},
                           officer=self._cert(officer))

        @rule(officer=st.sampled_from(actors), i=st.integers(0, 2),
              method=st.sampled_from(["in-person", "in-person-two-documents", "in-person-two-documents-biometric"]),
              two=st.booleans())
        def proof(self, officer: str, i: int, method: str, two: bool) -> None:
            if (r := self._request(i)) is not None:
                self._call("POST", f"/office/requests/{r[0]}/proof", officer=self._cert(officer),
                           files=proof_form(method, two, signed_by=(officers["keys"][officer], self._cert(officer))))

        @rule(i=st.integers(0, 2), right=st.booleans())
        def inquire(self, i: int, right: bool) -> None:
            if (r := self._request(i)) is not None:
                self._call("POST", f"/requests/{r[0]}/inquiry", {"mobile": "09120000000"}, code=self._code(r, right))

        @rule(who=st.sampled_from([*actors, "applicant", "stranger"]), i=st.integers(0, 2))
        def bind(self, who: str, i: int) -> None:
            if (r := self._request(i)) is None:
                return
            record = self.store.get_request(r[0])
            csr = csr_for()[1]
            body = {"passphrase": "a passphrase of the applicant's"} if record.key_location == "software-pkcs12" \
                else {"csr": _b64(csr)}
            if who in ("applicant", "stranger"):
                self._call("POST", f"/requests/{r[0]}/key", body, code=self._code(r, who == "applicant"))
            else:
                self._call("POST", f"/office/requests/{r[0]}/key", {"csr": _b64(csr), "device": DEVICE},
                           officer=self._cert(who))

        @rule(officer=st.sampled_from(actors), i=st.integers(0, 2))
        def approve(self, officer: str, i: int) -> None:
            if (r := self._request(i)) is not None:
                self._call("POST", f"/office/requests/{r[0]}/approve", officer=self._cert(officer))

        @rule(officer=st.sampled_from(actors), i=st.integers(0, 2), really=st.integers(0, 4))
        def reject(self, officer: str, i: int, really: int) -> None:
            if really == 0 and (r := self._request(i)) is not None:
                self._call("POST", f"/office/requests/{r[0]}/reject", {"reason": "documents do not match"},
                           officer=self._cert(officer))

        @rule(i=st.integers(0, 2), right=st.booleans(), really=st.integers(0, 2))
        def applicant_cancels(self, i: int, right: bool, really: int) -> None:
            if really == 0 and (r := self._request(i)) is not None:
                self._call("POST", f"/requests/{r[0]}/cancel", code=self._code(r, right))

        @rule()
        def the_ca_side_issues(self) -> None:
            for outcome in self.worker.run_once():
                issued[outcome.error is None] = issued.get(outcome.error is None, 0) + 1

        @rule(i=st.integers(0, 2), pick=st.integers(0, 5))
        def next_step(self, i: int, pick: int) -> None:
            """The step a well-behaved desk would take next (so that walks reach issuance), by an
            officer who may or may not be allowed to take it."""
            if (r := self._request(i)) is None:
                return
            record = self.store.get_request(r[0])
            office = record.office or ("THR-01", "ISF-02")[pick % 2]
            staff = [o for o, (where, _) in OFFICERS.items() if where == office]
            proofer = [o for o in staff if "proofing" in OFFICERS[o][1]][pick % 2 - 1]
            if record.state == "submitted" and record.key_location == "phone" and pick % 3 == 0:
                self.inquire(i, True)
            elif record.state == "submitted":
                self.receive(proofer, i)
            elif record.state == "awaiting-proofing":
                self.proof(proofer, i, "in-person" if record.level == 1 else "in-person-two-documents", True)
            elif record.state == "proofed":
                who = "applicant" if record.key_location != "desk-token" else record.proofing.get("officer") or proofer
                self.bind(who, i)
            elif record.state == "awaiting-approval" and pick == 5:
                self.reject([o for o in staff if "approving" in OFFICERS[o][1]][0], i, 0)
            elif record.state == "awaiting-approval":
                self.approve([o for o in staff if "approving" in OFFICERS[o][1]][pick % 2 - 1], i)
            elif record.state == "approved":
                self.the_ca_side_issues()

        @rule(i=st.integers(0, 2), pick=st.integers(0, 5))
        def next_step_again(self, i: int, pick: int) -> None:
            self.next_step(i, pick)

        @rule(i=st.integers(0, 2), pick=st.integers(0, 5))
        def and_again(self, i: int, pick: int) -> None:
            self.next_step(i, pick)

        @rule(office=st.sampled_from(["THR-01", "ISF-02"]), status=st.sampled_from(["active", "active", "suspended"]))
        def office_status(self, office: str, status: str) -> None:
            try:
                self.ra.set_office_status(office, status, OPERATOR)
            except Exception:  # noqa: BLE001 - already in that status
                pass

        @rule(days=st.integers(0, 5))
        def time_passes(self, days: int) -> None:
            self.clock.moment = self.clock.moment + timedelta(days=days)

        @invariant()
        def the_audit_log_shows_every_rule_kept(self) -> None:
            if hasattr(self, "store"):
                assert_the_audit_log_shows_every_rule_kept(self.store, reached)
                forged = [e for _, _, e in self.store.audit_log() if e.actor == "officer:forged"]
                assert not forged

    Counter.TestCase.settings = settings(max_examples=100, stateful_step_count=60, deadline=None, derandomize=True,
                                         database=None, suppress_health_check=list(HealthCheck))
    try:
        run_state_machine_as_test(Counter, settings=Counter.TestCase.settings)
    finally:
        from iranpki_portals import ra_api

        ra_api.use_engine(None)
    # The walks reached issuance and the refusals, and the API said no in each way it can.
    assert all(reached.get(state, 0) > 0 for state in ("issued", "rejected", "awaiting-approval", "cancelled")), str(reached)
    assert {200, 201, 403, 404, 409} <= set(answered), answered
    assert issued.get(True, 0) > 0, issued


STATEMENT = "national ID card checked against the applicant's face; the number matches the registration"


def proof_form(method: str, two: bool, *, signed_by: tuple | None = None) -> dict:
    """The proofing form a desk sends; the statement signed (detached CMS) with ``signed_by``'s
    key and certificate."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from iranpki import signing
    from iranpki.keys import SoftwareSigner

    kinds = ["national-id-card", "birth-certificate"] if two else ["national-id-card"]
    scans = [SimpleUploadedFile(f"{k}.png", PNG + k.encode(), content_type="image/png") if i == 0 else
             SimpleUploadedFile(f"{k}.pdf", PDF + k.encode(), content_type="application/pdf")
             for i, k in enumerate(kinds)]
    form = {"method": method, "document_kind": kinds, "document_number": [f"{k}-0042" for k in kinds], "scan": scans,
            "statement": STATEMENT}
    if signed_by is not None and signed_by[0].public_key() == x509.load_pem_x509_certificate(signed_by[1]).public_key():
        signature = signing.sign_cms(STATEMENT.encode("utf-8"), SoftwareSigner(signed_by[0]), signed_by[1])
        form["statement_signature"] = SimpleUploadedFile("statement.p7s", signature, content_type="application/pkcs7-signature")
    return form


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def test_forged_and_foreign_officers_get_clear_refusals(officers: dict, cas: dict, tmp_path: Path) -> None:  # noqa: F811
    """A certificate nobody enrolled, an officer of another office, an officer without the
    role, and a client with no certificate: each refused with the rule named, nothing changed."""
    shutil.copy(officers["base"] / "store.sqlite3", tmp_path / "store.sqlite3")
    clock = FixedClock(T0)
    store = open_store(tmp_path / "store.sqlite3", clock=clock)
    ra = RegistrationAuthority(store, clock=clock)
    api = Api(ra)
    try:
        certs = officers["certificates"]
        status, made = api.call("POST", "/requests", {"profile": "personal-signature", "level": 1, "ca": "gica1",
                                                      "applicant": ALI, "subject": ALI_SUBJECT,
                                                      "key_location": "desk-token"})
        assert status == 201
        rid, code = made["request"]["id"], made["tracking_code"]
        status, refused = api.call("POST", "/office/receive", {"tracking_code": code, "second_factor": "0499370899"},
                                   officer=certs["forged"])
        assert (status, refused["error"]["rule"]) == (403, "officer")
        status, received = api.call("POST", "/office/receive", {"tracking_code": code, "second_factor": "0499370899"},
                                    officer=certs["p1"])
        assert status == 200 and received["office"] == "THR-01" and received["applicant"]["national_code"] == "0499370899"
        status, refused = api.call("GET", f"/office/requests/{rid}", officer=certs["x1"])  # Isfahan's officer
        assert (status, refused["error"]["rule"]) == (403, "office")
        status, refused = api.call("POST", f"/office/requests/{rid}/proof", officer=certs["a1"],  # approving only
                                   files=proof_form("in-person", False, signed_by=(officers["keys"]["a1"], certs["a1"])))
        assert (status, refused["error"]["rule"]) == (403, "roles")
        status, refused = api.call("GET", "/office/queue")
        assert (status, refused["error"]["rule"]) == (403, "officer")
        status, refused = api.call("GET", f"/requests/{rid}/certificate", code=(code, "0012345678"))
        assert status == 404
        assert store.get_request(rid).state == "awaiting-proofing"  # nothing above changed it
        # A scan that is not what it says, and one too large: refused by name, nothing recorded.
        form = proof_form("in-person", False, signed_by=(officers["keys"]["p1"], certs["p1"]))
        from django.core.files.uploadedfile import SimpleUploadedFile

        form["scan"] = [SimpleUploadedFile("id.png", b"MZ\x90\x00 not an image", content_type="image/png")]
        status, refused = api.call("POST", f"/office/requests/{rid}/proof", officer=certs["p1"], files=form)
        assert status == 400 and "image/png" in refused["error"]["message"]
        form["scan"] = [SimpleUploadedFile("id.png", PNG + b"\x00" * (5 * 1024 * 1024), content_type="image/png")]
        status, refused = api.call("POST", f"/office/requests/{rid}/proof", officer=certs["p1"], files=form)
        assert status == 400 and "5 MB" in refused["error"]["message"]
        form["document_number"] = []
        status, refused = api.call("POST", f"/office/requests/{rid}/proof", officer=certs["p1"],
                                   files=proof_form("in-person", False, signed_by=(officers["keys"]["p1"], certs["p1"]))
                                   | {"document_number": []})
        assert status == 400 and "document_number" in refused["error"]["message"]
        assert store.get_request(rid).state == "awaiting-proofing" and not store.list_evidence(rid)
    finally:
        from iranpki_portals import ra_api

        ra_api.use_engine(None)
        store.close()



@pytest.fixture
def counter(officers: dict, cas: dict, tmp_path: Path):  # noqa: ANN201, F811
    """The API over a copy of the officers' store, with the simulated registry and the CA side."""
    shutil.copy(officers["base"] / "store.sqlite3", tmp_path / "store.sqlite3")
    clock = FixedClock(T0)
    store = open_store(tmp_path / "store.sqlite3", clock=clock)
    ra = RegistrationAuthority(store, clock=clock, registry=simulated_registry())
    worker = RaWorker(ra, lambda name: CertificateAuthority(store.get_ca(name), cas[name].signer, store, clock=clock))
    try:
        yield store, worker, Api(ra)
    finally:
        from iranpki_portals import ra_api

        ra_api.use_engine(None)
        store.close()


def test_the_applicants_journeys_over_the_api(counter: tuple, officers: dict, cas: dict, tmp_path: Path) -> None:  # noqa: F811
    """Mobile signature at level 1 with no visit (the simulated registry's inquiry, the phone's
    CSR, the certificate fetched, accepted with the phone's key); a software key downloaded once
    as a PKCS#12 that openssl opens; a revocation asked for by serial and national code, carried
    out by the CA side; a wrong serial counted as a failed lookup, and registrations limited per
    client address."""
    import subprocess

    from cryptography.hazmat.primitives.asymmetric import ec as _ec

    store, worker, api = counter
    register = {"profile": "personal-signature", "level": 1, "ca": "gica1", "applicant": ALI, "subject": ALI_SUBJECT}
    status, made = api.call("POST", "/requests", {**register, "key_location": "phone"})
    rid, code = made["request"]["id"], (made["tracking_code"], "0499370899")
    assert api.call("POST", f"/requests/{rid}/inquiry", {"mobile": "09120000000"}, code=code)[1]["state"] == "proofed"
    phone_key, csr = csr_for()
    assert api.call("POST", f"/requests/{rid}/key", {"csr": _b64(csr)}, code=code)[1]["state"] == "approved"
    [outcome] = worker.run_once()
    status, issued = api.call("GET", f"/requests/{rid}/certificate", code=code)
    assert status == 200 and issued["serial"] == f"{outcome.serial:x}"
    assert x509.load_pem_x509_certificate(issued["pem"].encode()).public_key() == phone_key.public_key()
    text = api.call("GET", f"/requests/{rid}/acceptance", code=code)[1]["text"]
    signature = phone_key.sign(text.encode(), _ec.ECDSA(hashes.SHA256()))
    status, accepted = api.call("POST", f"/requests/{rid}/accept", {"signature": _b64(signature)}, code=code)
    assert status == 200 and accepted["state"] == "accepted"
    status, replayed = api.call("POST", f"/requests/{rid}/accept", {"signature": _b64(signature)}, code=code)
    assert status == 409 and replayed["error"]["rule"] == "state"
    status, bad = api.call("POST", f"/requests/{rid}/accept", {"signature": "not base64!"}, code=code)
    assert status == 400 and "signature" in bad["error"]["message"]
    
    # A software key, handed out once.
    status, made = api.call("POST", "/requests", {**register, "key_location": "software-pkcs12"})
    sid, scode = made["request"]["id"], (made["tracking_code"], "0499370899")
    certs, keys = officers["certificates"], officers["keys"]
    api.call("POST", "/office/receive", {"tracking_code": scode[0], "second_factor": "0499370899"},
             officer=certs["p1"])
    api.call("POST", f"/office/requests/{sid}/proof", officer=certs["p1"],
             files=proof_form("in-person", False, signed_by=(keys["p1"], certs["p1"])))
    passphrase = "رمز عبور بلند من 1405"
    assert api.call("POST", f"/requests/{sid}/key", {"passphrase": passphrase}, code=scode)[0] == 200
    assert api.call("POST", f"/office/requests/{sid}/approve", officer=certs["a1"])[1]["state"] == "approved"
    worker.run_once()
    status, wrong = api.call("POST", f"/requests/{sid}/pkcs12", {"passphrase": "not it at all"}, code=scode)
    assert status == 403 and wrong["error"]["code"] == "passphrase"
    response = api.client.post(f"/api/ra/requests/{sid}/pkcs12", {"passphrase": passphrase},
                               content_type="application/json", HTTP_X_TRACKING_CODE=scode[0],
                               HTTP_X_SECOND_FACTOR=scode[1])
    assert response.status_code == 200 and response["Content-Type"] == "application/x-pkcs12"
    assert response["Cache-Control"] == "no-store"
    (tmp_path / "ali.p12").write_bytes(response.content)
    opened = subprocess.run(["openssl", "pkcs12", "-in", str(tmp_path / "ali.p12"), "-nokeys", "-passin",
                             f"pass:{passphrase}"], capture_output=True, text=True)
    assert opened.returncode == 0 and "BEGIN CERTIFICATE" in opened.stdout, opened.stderr
    assert api.call("POST", f"/requests/{sid}/pkcs12", {"passphrase": passphrase}, code=scode)[0] == 409
    
    # A revocation by the subscriber: by serial and national code, at the office, then the CA side.
    status, change = api.call("POST", "/changes", {"kind": "revoke", "serial": f"{outcome.serial:x}",
                                                   "second_factor": "0499370899", "reason": "keyCompromise"})
    assert status == 201 and change["request"]["kind"] == "revoke"
    status, unknown = api.call("POST", "/changes", {"kind": "revoke", "serial": "12ab",
                                                    "second_factor": "0499370899"})
    assert status == 404
    status, bad = api.call("POST", "/changes", {"kind": "revoke", "serial": "xyz", "second_factor": "0499370899"})
    assert status == 400 and "serial" in bad["error"]["message"]
    cid = change["request"]["id"]
    api.call("POST", "/office/receive", {"tracking_code": change["tracking_code"], "second_factor": "0499370899"},
             officer=certs["p1"])
    api.call("POST", f"/office/requests/{cid}/proof", officer=certs["p1"],
             files=proof_form("in-person", False, signed_by=(keys["p1"], certs["p1"])))
    api.call("POST", f"/office/requests/{cid}/approve", officer=certs["a1"])
    worker.run_once()
    assert store.get_certificate(outcome.serial).status == "revoked"
    # Registrations from one address: the rules' limit per window, then 429 with Retry-After.
    statuses = [api.call("POST", "/requests", {**register, "key_location": "phone"})[0] for _ in range(30)]
    assert statuses.count(201) < 30 and statuses[-1] == 429


def test_a_rekey_signed_with_the_current_key_needs_no_visit(counter: tuple, officers: dict, cas: dict,  # noqa: F811
                                                            tmp_path: Path) -> None:
    """Re-key end to end over the API: a level-1 phone certificate; the subscriber asks for a
    re-key, signs the request with the current key (no visit), binds the new phone key, an
    officer approves, the CA side issues; the new certificate has the new key and the same
    subject, and openssl verifies it. A signature by another key is refused by name (a level-3
    re-key without a visit: tests/test_ra.py)."""
    import subprocess

    from cryptography.hazmat.primitives.asymmetric import ec as _ec

    store, worker, api = counter
    certs = officers["certificates"]
    status, made = api.call("POST", "/requests", {"profile": "personal-signature", "level": 1, "ca": "gica1",
                                                  "applicant": ALI, "subject": ALI_SUBJECT, "key_location": "phone"})
    rid, code = made["request"]["id"], (made["tracking_code"], "0499370899")
    api.call("POST", f"/requests/{rid}/inquiry", {"mobile": "09120000000"}, code=code)
    old_key, csr = csr_for()
    api.call("POST", f"/requests/{rid}/key", {"csr": _b64(csr)}, code=code)
    [first] = worker.run_once()
    # The re-key request, proofed by the current key.
    status, change = api.call("POST", "/changes", {"kind": "rekey", "serial": f"{first.serial:x}",
                                                   "second_factor": "0499370899", "key_location": "phone"})
    assert status == 201
    kid, kcode = change["request"]["id"], (change["tracking_code"], "0499370899")
    text = api.call("GET", f"/requests/{kid}/change-text", code=kcode)[1]["text"].encode()
    stranger = _ec.generate_private_key(_ec.SECP256R1()).sign(text, _ec.ECDSA(hashes.SHA256()))
    status, refused = api.call("POST", f"/requests/{kid}/current-key", {"signature": _b64(stranger)}, code=kcode)
    assert (status, refused["error"]["rule"]) == (409, "current-key")
    signed = old_key.sign(text, _ec.ECDSA(hashes.SHA256()))
    status, proofed = api.call("POST", f"/requests/{kid}/current-key", {"signature": _b64(signed)}, code=kcode)
    assert status == 200 and proofed["state"] == "proofed"
    new_key, new_csr = csr_for()
    assert api.call("POST", f"/requests/{kid}/key", {"csr": _b64(new_csr)}, code=kcode)[1]["state"] == \
        "awaiting-approval"
    # Proofed with no visit, it belongs to no office: every office serving its CA sees it to approve.
    for officer in ("a1", "y1"):
        assert kid in [r["id"] for r in api.call("GET", "/office/queue", officer=certs[officer])[1]]
        assert api.call("GET", f"/office/requests/{kid}", officer=certs[officer])[0] == 200
    assert api.call("POST", f"/office/requests/{kid}/approve", officer=certs["a1"])[1]["state"] == "approved"
    [second] = worker.run_once()
    assert second.error is None and second.serial != first.serial
    status, issued = api.call("GET", f"/requests/{kid}/certificate", code=kcode)
    new_cert = x509.load_pem_x509_certificate(issued["pem"].encode())
    old_cert = x509.load_der_x509_certificate(store.get_certificate(first.serial).certificate)
    assert new_cert.public_key() == new_key.public_key() and new_cert.subject == old_cert.subject
    (tmp_path / "new.pem").write_text(issued["pem"])
    (tmp_path / "cas.pem").write_bytes((cas["base"] / "root.pem").read_bytes() + cas["gica1"].certificate.public_bytes(
        Encoding.PEM))
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "cas.pem"), "-attime",
                               str(int(T0.timestamp())), str(tmp_path / "new.pem")], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    events = store.request_events(kid)
    assert [e.to_state for e in events] == ["submitted", "proofed", "awaiting-approval", "approved", "issued"]


def test_guessing_a_mobile_number_or_a_passphrase_runs_out_of_tries(counter: tuple, officers: dict) -> None:
    """Automated inquiry: three failures, saying nothing of which check failed, then the request
    needs a visit even with the right number. A software key: five wrong passphrases remove it."""
    store, worker, api = counter
    register = {"profile": "personal-signature", "level": 1, "ca": "gica1", "applicant": ALI, "subject": ALI_SUBJECT}
    status, made = api.call("POST", "/requests", {**register, "key_location": "phone"})
    rid, code = made["request"]["id"], (made["tracking_code"], "0499370899")
    for guess in ("09120000001", "09120000002", "09120000003"):
        status, refused = api.call("POST", f"/requests/{rid}/inquiry", {"mobile": guess}, code=code)
        assert (status, refused["error"]["rule"]) == (409, "automated-inquiry")
        assert "mobile number is not registered" not in refused["error"]["message"]
    status, refused = api.call("POST", f"/requests/{rid}/inquiry", {"mobile": "09120000000"}, code=code)
    assert status == 409 and "visit" in refused["error"]["message"] and store.get_request(rid).state == "submitted"

    status, made = api.call("POST", "/requests", {**register, "key_location": "software-pkcs12"})
    sid, scode = made["request"]["id"], (made["tracking_code"], "0499370899")
    assert api.call("POST", f"/requests/{sid}/inquiry", {"mobile": "09120000000"}, code=scode)[0] == 200
    assert api.call("POST", f"/requests/{sid}/key", {"passphrase": "the applicant's passphrase"}, code=scode)[0] == 200
    worker.run_once()
    answers = [api.call("POST", f"/requests/{sid}/pkcs12", {"passphrase": f"guess {i}"}, code=scode) for i in range(5)]
    assert [a[0] for a in answers] == [403] * 4 + [409] and "1 tries left" in answers[3][1]["error"]["message"]
    # The fifth wrong one locks it: the key is removed, so no more guesses at it, here or on a copy.
    assert answers[4][1]["error"]["rule"] == "passphrase-tries" and "revocation" in answers[4][1]["error"]["message"]
    assert "software_key" not in store.get_request(sid).proofing
    status, locked = api.call("POST", f"/requests/{sid}/pkcs12", {"passphrase": "the applicant's passphrase"},
                              code=scode)
    assert (status, locked["error"]["rule"]) == (409, "state")


def test_what_django_itself_refuses_is_json_too(counter: tuple) -> None:
    store, worker, api = counter
    response = api.client.post("/api/ra/requests", b"{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    response = api.client.delete("/api/ra/requests")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method"
    status, bad = api.call("POST", "/requests", {"profile": "personal-signature", "level": 7, "ca": "gica1",
                                                 "applicant": ALI, "subject": ALI_SUBJECT, "key_location": "phone"})
    assert status == 400 and bad["error"]["code"] == "invalid" and "level 7" in bad["error"]["message"]
    from types import SimpleNamespace

    from iranpki_portals.ra_api import _client

    # Rate limits count an IPv6 client by its /64: rotating addresses inside it gains nothing.
    assert _client(SimpleNamespace(META={"REMOTE_ADDR": "2001:db8:1:2:3:4:5:6"})) == "2001:db8:1:2::/64"
    assert _client(SimpleNamespace(META={"REMOTE_ADDR": "::ffff:192.0.2.7"})) == "192.0.2.7"
