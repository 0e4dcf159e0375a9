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

