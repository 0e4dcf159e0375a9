"""The registration authority's engine (issue 15): the subscriber's path from registration to
issuance, every rule that refuses a step, tracking codes and their rate limit, automated inquiry
against the simulated registry, and a stateful test that no sequence of actions by any actors
reaches issuance without the proofing and approvals its level needs."""

from __future__ import annotations

import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iranpki.ca import CertificateAuthority, create_intermediate, create_root, parse_subject
from iranpki.clock import FixedClock
from iranpki.errors import (
    ConcurrentChangeError,
    NotFoundError,
    RateLimitedError,
    RequestError,
    RuleRefusedError,
)
from iranpki.keys import KeySpec, SignatureScheme, SoftwareSigner
from iranpki.ra import Actor, Document, RaWorker, RegistrationAuthority, SimulatedRegistry, normalise_code
from iranpki.ra.registry import Person
from iranpki.store import open_store

from .conftest import REPO, ROOT_SUBJECT, utc

T0 = utc(2026, 12, 1, 8)
OPERATOR = Actor("operator", "ca-admin")
WORKER = Actor("worker", "ca-side")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"x" * 64
ALI = {"national_code": "0499370899", "given_name": "علی", "surname": "محمدی", "mobile": "09120000000"}
ALI_SUBJECT = "C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی"
#: The token in the desk's reader, as it reports itself: a model the lab approved (fixture ``cas``).
DEVICE = {"manufacturer": "SoftHSM project", "model": "SoftHSM v2", "serial": "0123456789abcdef"}


def csr_for(subject_cn: str = "علی محمدی") -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])).sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def cas(softhsm, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A root, a level-1 CA with a software key and a level-3 CA on the SoftHSM2 token "Test",
    both for signing; their store file is copied for each test."""
    import secrets

    from iranpki.keys.pkcs11 import generate_keypair

    base = tmp_path_factory.mktemp("ra")
    store = open_store(base / "store.sqlite3", create=True, clock=FixedClock(T0 - timedelta(days=1)))
    root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                       parse_subject(ROOT_SUBJECT), repository_url=REPO, clock=FixedClock(T0 - timedelta(days=1)))
    gica1 = create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "gica1", 1,
                                parse_subject("C=IR,O=GICA,CN=GICA Level 1 Signing (test)"), purpose="signing")
    token_key = generate_keypair("Test", f"ra-gica3-{secrets.token_hex(4)}", KeySpec.parse("p256"))
    gica3 = create_intermediate(root, token_key, "gica3", 3,
                                parse_subject("C=IR,O=GICA,CN=GICA Level 3 Signing (test)"), purpose="signing")
    # A CA certificate per purpose, for the other journeys.
    others = {
        "gica1tls": create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "gica1tls", 1,
                                        parse_subject("C=IR,O=GICA,CN=GICA Level 1 TLS (test)"), purpose="tls"),
        "gica1tsa": create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "gica1tsa", 1,
                                        parse_subject("C=IR,O=GICA,CN=GICA Level 1 Time-stamping (test)"),
                                        purpose="time-stamping"),
        "gica3code": create_intermediate(root, generate_keypair("Test", f"ra-code-{secrets.token_hex(4)}",
                                                                KeySpec.parse("p384")), "gica3code", 3,
                                         parse_subject("C=IR,O=GICA,CN=GICA Level 3 Code Signing (test)"),
                                         purpose="code-signing"),
    }
    # The lab approved the SoftHSM v2 model (its organisational seal under gica1 signs the approval).
    from iranpki.ca import IssueRequest
    from iranpki.conformance.attestation import approve

    from .samples import SUBJECTS
    from .test_conformance_reports import sample_report

    lab_key = ec.generate_private_key(ec.SECP256R1())
    lab_cert = gica1.issue("organisational-seal", IssueRequest(parse_subject(SUBJECTS["organisational-seal"]),
                                                               lab_key.public_key())).pem
    module = base / "libsofthsm2.so"
    module.write_bytes(b"\x7fELF module")
    report = sample_report(module).to_json().encode()
    attestation = approve(report, SoftwareSigner(lab_key), lab_cert,
                          [gica1.certificate.public_bytes(serialization.Encoding.PEM)], valid_days=365,
                          clock=FixedClock(T0 - timedelta(days=1)))
    RegistrationAuthority(store, clock=FixedClock(T0 - timedelta(hours=1))).record_device_approval(
        attestation, OPERATOR, trust_roots=[root.certificate.public_bytes(serialization.Encoding.PEM)])
    store.close()
    (base / "attestation.p7m").write_bytes(attestation)
    (base / "root.pem").write_bytes(root.certificate.public_bytes(serialization.Encoding.PEM))
    (base / "gica3.pem").write_bytes(gica3.certificate.public_bytes(serialization.Encoding.PEM))
    for name, ca in others.items():
        (base / f"{name}.pem").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    return {"base": base, "root": root, "gica1": gica1, "gica3": gica3, **others}


@pytest.fixture
def ra(cas: dict, store_location: str) -> RegistrationAuthority:
    """The engine over a copy of the module's store, on each backend."""
    from .conftest import store_copied

    clock = FixedClock(T0)
    store = store_copied(cas["base"] / "store.sqlite3", store_location, clock)
    engine = RegistrationAuthority(store, clock=clock, registry=simulated_registry())
    engine.create_office("THR-01", "دفتر پیشخوان تهران ۱", "Tehran", ["gica1", "gica3", "gica1tls", "gica1tsa", "gica3code"],
                         OPERATOR)
    engine.create_office("ISF-02", "دفتر ثبت‌نام اصفهان", "Isfahan", ["gica3"], OPERATOR)
    for officer, office, roles in (("p1", "THR-01", ["proofing"]), ("a1", "THR-01", ["approving"]),
                                   ("a2", "THR-01", ["approving"]), ("m1", "THR-01", ["proofing", "approving"]),
                                   ("x1", "ISF-02", ["proofing", "approving"])):
        engine.enrol_officer(officer, office, f"Officer {officer}", roles, OPERATOR)
    yield engine
    store.close()


def simulated_registry() -> SimulatedRegistry:
    """The simulated civil registry and mobile operator, knowing Ali and his phone."""
    return SimulatedRegistry([Person("0499370899", "علی", "محمدی", utc(1990, 3, 21).date())],
                             {"09120000000": "0499370899"})


def worker_for(ra: RegistrationAuthority, cas: dict) -> RaWorker:
    """The CA side over the test's store, with the fixture's CA keys."""
    return RaWorker(ra, lambda name: CertificateAuthority(ra.store.get_ca(name), cas[name].signer, ra.store,
                                                          clock=ra.clock))


def documents(*kinds: str) -> list[Document]:
    return [Document(k, f"{k}-0042", (PNG if i % 2 == 0 else PDF) + k.encode(),  # each document its own scan
                     "image/png" if i % 2 == 0 else "application/pdf")
            for i, k in enumerate(kinds)]


def proofed_level3(ra: RegistrationAuthority) -> tuple[str, str]:
    reg = ra.register(profile="personal-signature", level=3, ca="gica3", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    ra.proof(ra.officer("p1"), request.id, method="in-person-two-documents",
             documents=documents("national-id-card", "birth-certificate"), statement="both originals seen")
    return request.id, reg.code


def test_the_personal_signature_path_at_level_3(ra: RegistrationAuthority, cas: dict) -> None:
    reg = ra.register(profile="personal-signature", level=3, ca="gica3", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    assert reg.request.state == "submitted" and normalise_code(reg.code) == reg.code.replace("-", "")
    assert reg.code.replace("-", "") not in repr(reg) and reg.request.code_hash != reg.code
    p1, a1, a2 = ra.officer("p1"), ra.officer("a1"), ra.officer("a2")
    request = ra.receive(p1, reg.code.lower(), "0499370899")
    assert (request.state, request.office) == ("awaiting-proofing", "THR-01")
    request = ra.proof(p1, request.id, method="in-person-two-documents",
                       documents=documents("national-id-card", "birth-certificate"), statement="both originals seen")
    assert request.state == "proofed"
    assert sorted(e.kind for e in ra.store.list_evidence(request.id)) == ["birth-certificate", "national-id-card"]
    key, csr = csr_for()
    request = ra.bind_key(p1, request.id, csr=csr, device=DEVICE)
    assert request.state == "awaiting-approval"
    request = ra.approve(a1, request.id)
    assert request.state == "awaiting-approval"  # level 3: two approving officers
    with pytest.raises(RuleRefusedError) as twice:
        ra.approve(a1, request.id)
    assert twice.value.rule == "dual-control"
    with pytest.raises(RuleRefusedError) as proofer:
        ra.approve(p1, request.id)
    assert proofer.value.rule == "roles"
    request = ra.approve(a2, request.id)
    assert request.state == "approved"
    # The CA side issues what was approved, with the request's subject and the CSR's key.
    worker = worker_for(ra, cas)
    [outcome] = worker.run_once()
    assert outcome.error is None and outcome.request == request.id
    request = ra.store.get_request(request.id)
    assert request.state == "issued" and request.serial == outcome.serial
    assert worker.run_once() == []  # never twice
    with pytest.raises(RuleRefusedError):
        ra.mark_issued(WORKER, request.id, outcome.serial)
    leaf = cas["base"] / f"{request.id}.pem"
    leaf.write_bytes(x509.load_der_x509_certificate(ra.store.get_certificate(outcome.serial).certificate)
                     .public_bytes(serialization.Encoding.PEM))
    out = subprocess.run(["openssl", "verify", "-CAfile", str(cas["base"] / "root.pem"), "-untrusted",
                          str(cas["base"] / "gica3.pem"), str(leaf)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    events = ra.store.request_events(request.id)
    # The subscriber accepts with the new key; a replay, or a signature by another key, is refused.
    applicant = ra.applicant(reg.code, "0499370899", client="panel")
    text = ra.acceptance_text(request)
    with pytest.raises(RuleRefusedError) as forged:
        ra.accept(applicant, request.id, ec.generate_private_key(ec.SECP256R1()).sign(text, ec.ECDSA(hashes.SHA256())))
    assert forged.value.rule == "acceptance"
    signature = key.sign(text, ec.ECDSA(hashes.SHA256()))
    request = ra.accept(applicant, request.id, signature)
    assert request.state == "accepted" and request.proofing["acceptance"]["text"] == text.decode()
    with pytest.raises(RuleRefusedError) as replayed:
        ra.accept(applicant, request.id, signature)
    assert replayed.value.rule == "state"
    events = ra.store.request_events(request.id)
    assert [(e.from_state, e.to_state) for e in events] == [
        (None, "submitted"), ("submitted", "awaiting-proofing"), ("awaiting-proofing", "proofed"),
        ("proofed", "awaiting-approval"), ("awaiting-approval", "awaiting-approval"),
        ("awaiting-approval", "approved"), ("approved", "issued"), ("issued", "accepted")]
    assert [e.actor for e in events][1:] == ["officer:p1"] * 3 + ["officer:a1", "officer:a2", "worker:ca-side",
                                                                 f"applicant:{request.id}"]
    assert all(e.office == "THR-01" for e in events[1:6])
    audit = [e.event for _, _, e in ra.store.audit_log() if e.subject == request.id]
    assert audit.count("ra.request.approved") == 1 and audit[-2:] == ["ra.request.issued", "ra.request.accepted"]


def test_rules_refuse_and_say_which(ra: RegistrationAuthority) -> None:
    def refused(rule: str, call, *args, **kw) -> None:  # noqa: ANN001
        with pytest.raises(RuleRefusedError) as err:
            call(*args, **kw)
        assert err.value.rule == rule, (rule, str(err.value))

    refused("key-location", ra.register, profile="personal-signature", level=3, ca="gica3", applicant=ALI,
            subject=ALI_SUBJECT, key_location="phone")
    refused("ca", ra.register, profile="personal-signature", level=1, ca="gica3", applicant=ALI, subject=ALI_SUBJECT,
            key_location="phone")
    with pytest.raises(RequestError, match="national_code"):
        ra.register(profile="personal-signature", level=1, ca="gica1", applicant={"given_name": "x"},
                    subject=ALI_SUBJECT, key_location="phone")
    reg = ra.register(profile="personal-signature", level=3, ca="gica3", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    refused("roles", ra.receive, ra.officer("a1"), reg.code, "0499370899")
    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    refused("office", ra.proof, ra.officer("x1"), request.id, method="in-person-two-documents",
            documents=documents("national-id-card", "birth-certificate"))
    refused("proofing-method", ra.proof, ra.officer("p1"), request.id, method="in-person",
            documents=documents("national-id-card", "birth-certificate"))
    refused("documents", ra.proof, ra.officer("p1"), request.id, method="in-person-two-documents",
            documents=documents("national-id-card"))
    with pytest.raises(RequestError, match="not a image/png file"):
        ra.proof(ra.officer("p1"), request.id, method="in-person-two-documents",
                 documents=[Document("national-id-card", "1", b"GIF89a", "image/png"),
                            *documents("birth-certificate")])
    with pytest.raises(RequestError, match="at most"):
        ra.proof(ra.officer("p1"), request.id, method="in-person-two-documents",
                 documents=[Document("national-id-card", "1", PNG + b"\x00" * (5 << 20), "image/png"),
                            *documents("birth-certificate")])
    assert ra.store.list_evidence(request.id) == []  # nothing half-done
    refused("state", ra.approve, ra.officer("a1"), request.id)
    # A suspended office: its officers can do nothing; its pending work is listed to the CA.
    ra.set_office_status("THR-01", "suspended", OPERATOR)
    refused("office-status", ra.officer, "p1")
    assert [r.id for r in ra.store.list_requests(office="THR-01", states=("awaiting-proofing",))] == [request.id]
    ra.set_office_status("THR-01", "cancelled", OPERATOR)
    refused("office-status", ra.set_office_status, "THR-01", "active", OPERATOR)
    refused("actor", ra.create_office, "X", "x", "x", ["gica1"], ra.officer("x1"))


def test_only_a_token_of_an_approved_model_takes_a_key(ra: RegistrationAuthority, cas: dict) -> None:
    request_id, _ = proofed_level3(ra)
    _, csr = csr_for()
    for device in ({**DEVICE, "model": "Acme Token X1"}, {**DEVICE, "manufacturer": "Acme"}):
        with pytest.raises(RuleRefusedError) as err:
            ra.bind_key(ra.officer("p1"), request_id, csr=csr, device=device)
        assert err.value.rule == "device-approval" and "not of a model the lab approved" in str(err.value)
    with pytest.raises(RequestError, match="manufacturer, model and serial"):
        ra.bind_key(ra.officer("p1"), request_id, csr=csr, device={"model": "SoftHSM v2"})
    [approval] = ra.store.device_approvals("SoftHSM project", "SoftHSM v2")
    ra.clock.moment = approval.valid_until + timedelta(seconds=1)  # the approval lapsed (so did the request)
    with pytest.raises(RuleRefusedError) as lapsed:
        ra.bind_key(ra.officer("p1"), request_id, csr=csr, device=DEVICE)
    assert lapsed.value.rule == "device-approval"
    # An attestation that does not verify against the roots given is never recorded.
    from iranpki.errors import AttestationError

    other_root = [cas["gica3"].certificate.public_bytes(serialization.Encoding.PEM)]
    with pytest.raises(AttestationError):
        ra.record_device_approval((cas["base"] / "attestation.p7m").read_bytes(), OPERATOR, trust_roots=other_root)


def test_the_proofing_officer_never_approves_the_same_request(ra: RegistrationAuthority) -> None:
    reg = ra.register(profile="personal-signature", level=1, ca="gica1", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    m1 = ra.officer("m1")  # holds both roles
    request = ra.receive(m1, reg.code, "0499370899")
    ra.proof(m1, request.id, method="in-person", documents=documents("national-id-card"))
    _, csr = csr_for()
    ra.bind_key(m1, request.id, csr=csr, device=DEVICE)
    with pytest.raises(RuleRefusedError) as err:
        ra.approve(m1, request.id)
    assert err.value.rule == "separation"
    assert ra.approve(ra.officer("a1"), request.id).state == "approved"  # level 1: one approval


def test_an_expired_request_goes_no_further(ra: RegistrationAuthority) -> None:
    request_id, _ = proofed_level3(ra)
    ra.clock.moment = T0 + timedelta(days=31)
    _, csr = csr_for()
    with pytest.raises(RuleRefusedError) as err:
        ra.bind_key(ra.officer("p1"), request_id, csr=csr, device=DEVICE)
    assert err.value.rule == "expiry"
    assert ra.expire_due() == [request_id] and ra.store.get_request(request_id).state == "expired"


def test_tracking_code_guessing_is_rate_limited(ra: RegistrationAuthority) -> None:
    reg = ra.register(profile="personal-signature", level=3, ca="gica3", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    assert ra.lookup(reg.code, "0499370899", client="10.0.0.1").id == reg.request.id
    with pytest.raises(RequestError, match="check character"):
        ra.lookup(reg.code[:-1] + ("0" if reg.code[-1] != "0" else "1"), "0499370899", client="10.0.0.9")
    for _ in range(5):
        with pytest.raises(NotFoundError):
            ra.lookup(reg.code, "0012345678", client="10.0.0.2")  # the wrong second factor
    with pytest.raises(RateLimitedError) as limited:
        ra.lookup(reg.code, "0499370899", client="10.0.0.2")  # even the right one, until the window passes
    assert limited.value.retry_after == 15 * 60
    assert ra.lookup(reg.code, "0499370899", client="10.0.0.3").id == reg.request.id  # another client
    ra.clock.moment = T0 + timedelta(minutes=16)
    assert ra.lookup(reg.code, "0499370899", client="10.0.0.2").id == reg.request.id


def test_level_1_mobile_signature_by_automated_inquiry(ra: RegistrationAuthority) -> None:
    reg = ra.register(profile="personal-signature", level=1, ca="gica1", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="phone")
    with pytest.raises(RuleRefusedError) as wrong:
        ra.inquire(reg.request.id, mobile="09129999999")
    assert wrong.value.rule == "automated-inquiry" and "mobile number" in str(wrong.value)
    request = ra.inquire(reg.request.id, mobile="09120000000")
    assert request.state == "proofed" and request.proofing["registry"] == "simulated-registry"
    applicant = ra.applicant(reg.code, "0499370899", client="phone")
    _, csr = csr_for()
    request = ra.bind_key(applicant, request.id, csr=csr)
    assert request.state == "approved"  # no officer: the registries were the check
    # Level 3 never goes without a visit.
    reg3 = ra.register(profile="personal-signature", level=3, ca="gica3", applicant=ALI, subject=ALI_SUBJECT,
                       key_location="desk-token")
    with pytest.raises(RuleRefusedError):
        ra.inquire(reg3.request.id, mobile="09120000000")


def test_concurrent_approvals_exactly_one_wins(ra: RegistrationAuthority, store_location: str) -> None:
    reg = ra.register(profile="personal-signature", level=1, ca="gica1", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    _, csr = csr_for()
    ra.bind_key(ra.officer("p1"), request.id, csr=csr, device=DEVICE)
    # Two desks, each with its own connection to the store, approve at the same moment.
    engines = [RegistrationAuthority(open_store(store_location, clock=ra.clock), clock=ra.clock)
               for _ in range(2)]
    seen = [e.store.get_request(request.id) for e in engines]
    assert seen[0].version == seen[1].version
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def approve(i: int, officer: str) -> None:
        barrier.wait()
        try:
            results[i] = engines[i].approve(engines[i].officer(officer), request.id).state
        except (ConcurrentChangeError, RuleRefusedError) as exc:
            results[i] = exc

    threads = [threading.Thread(target=approve, args=(i, o)) for i, o in enumerate(("a1", "a2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(r).__name__ for r in results) in (["ConcurrentChangeError", "str"], ["RuleRefusedError", "str"])
    events = ra.store.request_events(request.id)
    assert [e.to_state for e in events].count("approved") == 1
    assert len(ra.store.get_request(request.id).proofing["approvals"]) == 1


# ---- any actors, any order: the rules hold ---------------------------------------------------------

OFFICERS = {"p1": ("THR-01", {"proofing"}), "a1": ("THR-01", {"approving"}), "a2": ("THR-01", {"approving"}),
            "m1": ("THR-01", {"proofing", "approving"}), "x1": ("ISF-02", {"proofing", "approving"}),
            "y1": ("ISF-02", {"approving"})}
NEEDED = {("in-person", 1): 1, ("in-person-two-documents", 1): 1, ("automated-inquiry", 1): 0,
          ("in-person-two-documents", 3): 2, ("in-person-two-documents-biometric", 3): 2}


def assert_the_audit_log_shows_every_rule_kept(store, reached: dict[str, int]) -> None:  # noqa: ANN001 - a Store
    """Read back from the audit log alone: nothing issued without proofing by a proofing officer
    (or the registry) and approvals by as many distinct approving officers as the level needs,
    none of them the proofing officer; no officer acting while their office is suspended or for
    another office; nothing issued twice. Counts the states reached into ``reached``."""
    status = {}
    proofed_by: dict[str, tuple[str, str]] = {}
    approvers: dict[str, list[str]] = {}
    issued: dict[str, int] = {}
    level = {}
    for _, _, e in store.audit_log():
        if e.event == "ra.office.created":
            status[e.subject] = "active"
        elif e.event == "ra.office.status":
            status[e.subject] = e.details["to"]
        elif e.event == "ra.request.submitted":
            level[e.subject] = e.details.get("level")
        elif e.event.startswith("ra.request.") and e.actor.startswith("officer:"):
            officer = e.actor.split(":", 1)[1]
            office, roles = OFFICERS[officer]
            assert status[office] == "active", f"{officer} of suspended {office} did {e.event}"
            assert e.details.get("office") == office, f"{officer} of {office} recorded as {e.details}"
            if e.event == "ra.request.proofed":
                assert "proofing" in roles
                proofed_by[e.subject] = (officer, e.details["method"])
            if e.details.get("from") == "awaiting-approval" and e.event in (
                    "ra.request.awaiting-approval", "ra.request.approved"):
                assert "approving" in roles and officer != proofed_by[e.subject][0]
                assert officer not in approvers.setdefault(e.subject, [])
                approvers[e.subject].append(officer)
        elif e.event == "ra.request.proofed" and e.actor.startswith("applicant:"):
            assert e.details["method"] == "signed-with-current-key", e
            proofed_by[e.subject] = ("applicant", e.details["method"])
        elif e.event == "ra.request.proofed":
            assert e.actor.startswith("registry:") and e.details["method"] == "automated-inquiry", e
            proofed_by[e.subject] = ("registry", e.details["method"])
        if e.event == "ra.request.issued":
            issued[e.subject] = issued.get(e.subject, 0) + 1
            who, method = proofed_by[e.subject]
            assert len(approvers.get(e.subject, [])) >= NEEDED[(method, level[e.subject])], e.subject
    assert all(n == 1 for n in issued.values()), issued
    for request in store.list_requests(limit=1000):
        reached[request.state] = reached.get(request.state, 0) + 1


def test_no_sequence_of_actions_reaches_issuance_without_what_its_level_needs(cas: dict, tmp_path: Path) -> None:
    """Random actors (officers of two offices with various roles, applicants, the CA side, the
    operator suspending and reinstating offices, time passing) act in random order. Whatever
    they do, read back from the audit log alone: nothing is issued without proofing by a
    proofing officer and approvals by as many distinct approving officers as the level needs,
    none of them the proofing officer; no officer acts while their office is suspended; nothing
    is issued twice."""
    import itertools
    import shutil

    from hypothesis import HealthCheck, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

    runs = itertools.count()
    reached: dict[str, int] = {}
    refusals = (RuleRefusedError, RequestError, ConcurrentChangeError, NotFoundError, RateLimitedError)

    class Desk(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            folder = tmp_path / f"run{next(runs)}"
            folder.mkdir()
            shutil.copy(cas["base"] / "store.sqlite3", folder / "store.sqlite3")
            self.clock = FixedClock(T0)
            self.store = open_store(folder / "store.sqlite3", clock=self.clock)
            self.ra = RegistrationAuthority(self.store, clock=self.clock, registry=simulated_registry())
            self.ra.create_office("THR-01", "Tehran 1", "Tehran", ["gica1", "gica3"], OPERATOR)
            self.ra.create_office("ISF-02", "Isfahan 2", "Isfahan", ["gica1", "gica3"], OPERATOR)
            for officer, (office, roles) in OFFICERS.items():
                self.ra.enrol_officer(officer, office, officer, sorted(roles), OPERATOR)
            self.requests: list[tuple[str, str]] = []

        def teardown(self) -> None:
            if hasattr(self, "store"):
                self.store.close()

        def _try(self, call, *args, **kw) -> None:  # noqa: ANN001
            try:
                call(*args, **kw)
            except refusals:
                pass

        def _officer(self, name: str) -> Actor:
            # A client may claim any office and every role: the engine must go by the store.
            return Actor("officer", name, ("ISF-02", "THR-01")[len(self.requests) % 2], ("approving", "proofing"))

        def _request(self, i: int) -> tuple[str, str] | None:
            # The few newest requests: a walk that spreads over many reaches few states.
            return self.requests[-1 - i % min(3, len(self.requests))] if self.requests else None

        @rule(level=st.sampled_from([1, 3]), location=st.sampled_from(["desk-token", "phone", "software-pkcs12"]))
        def register(self, level: int, location: str) -> None:
            if len(self.requests) >= 6:
                return
            try:
                reg = self.ra.register(profile="personal-signature", level=level, ca=f"gica{level}", applicant=ALI,
                                       subject=ALI_SUBJECT, key_location=location)
                self.requests.append((reg.request.id, reg.code))
            except refusals:
                pass

        @rule(officer=st.sampled_from(sorted(OFFICERS)), i=st.integers(0, 2))
        def receive(self, officer: str, i: int) -> None:
            if (r := self._request(i)) is not None:
                self._try(self.ra.receive, self._officer(officer), r[1], "0499370899")

        @rule(officer=st.sampled_from(sorted(OFFICERS)), i=st.integers(0, 2),
              method=st.sampled_from(["in-person", "in-person-two-documents", "in-person-two-documents-biometric"]),
              two=st.booleans())
        def proof(self, officer: str, i: int, method: str, two: bool) -> None:
            if (r := self._request(i)) is not None:
                docs = documents("national-id-card", "birth-certificate") if two else documents("national-id-card")
                self._try(self.ra.proof, self._officer(officer), r[0], method=method, documents=docs)

        @rule(i=st.integers(0, 2))
        def inquire(self, i: int) -> None:
            if (r := self._request(i)) is not None:
                self._try(self.ra.inquire, r[0], mobile="09120000000")

        @rule(officer=st.sampled_from([*sorted(OFFICERS), "applicant"]), i=st.integers(0, 2))
        def bind(self, officer: str, i: int) -> None:
            if (r := self._request(i)) is not None:
                actor = (Actor("applicant", r[0]) if officer == "applicant" else self._officer(officer))  # forged
                record = self.store.get_request(r[0])
                csr = None if record.key_location == "software-pkcs12" else csr_for()[1]
                self._try(self.ra.bind_key, actor, r[0], csr=csr,
                          device=DEVICE)

        @rule(officer=st.sampled_from(sorted(OFFICERS)), i=st.integers(0, 2))
        def approve(self, officer: str, i: int) -> None:
            if (r := self._request(i)) is not None:
                self._try(self.ra.approve, self._officer(officer), r[0])

        @rule(officer=st.sampled_from(sorted(OFFICERS)), i=st.integers(0, 2), really=st.integers(0, 4))
        def reject(self, officer: str, i: int, really: int) -> None:
            if really == 0 and (r := self._request(i)) is not None:
                self._try(self.ra.reject, self._officer(officer), r[0], "documents do not match")

        @rule(i=st.integers(0, 2), serial=st.integers(1, 2**64))
        def issue(self, i: int, serial: int) -> None:
            if (r := self._request(i)) is not None:
                self._try(self.ra.mark_issued, WORKER, r[0], serial)

        @rule(i=st.integers(0, 2), pick=st.integers(0, 5))
        def next_step(self, i: int, pick: int) -> None:
            """The step a well-behaved desk would take next (so that walks reach issuance), by
            an officer who may or may not be allowed to take it."""
            if (r := self._request(i)) is None:
                return
            record = self.store.get_request(r[0])
            office = record.office or ("THR-01", "ISF-02")[pick % 2]
            staff = [o for o, (where, _) in OFFICERS.items() if where == office]
            proofer = [o for o in staff if "proofing" in OFFICERS[o][1]][pick % 2 - 1]
            method = "in-person" if record.level == 1 else "in-person-two-documents"
            docs = documents("national-id-card", "birth-certificate")
            if record.state == "submitted" and record.key_location == "phone" and pick % 3 == 0:
                self._try(self.ra.inquire, r[0], mobile="09120000000")
            elif record.state == "submitted":
                self._try(self.ra.receive, self._officer(proofer), r[1], "0499370899")
            elif record.state == "awaiting-proofing":
                self._try(self.ra.proof, self._officer(proofer), r[0], method=method, documents=docs)
            elif record.state == "proofed":
                actor = Actor("applicant", r[0], credential=r[1].replace("-", "")) \
                    if record.key_location == "phone" else self._officer(
                    record.proofing.get("officer") or proofer)
                csr = None if record.key_location == "software-pkcs12" else csr_for()[1]
                self._try(self.ra.bind_key, actor, r[0], csr=csr, device=DEVICE)
            elif record.state == "awaiting-approval":
                approver = [o for o in staff if "approving" in OFFICERS[o][1]][pick % 2 - 1]
                self._try(self.ra.approve, self._officer(approver), r[0])
            elif record.state == "approved":
                self._try(self.ra.mark_issued, WORKER, r[0], pick + 1)

        @rule(i=st.integers(0, 2), pick=st.integers(0, 5))
        def next_step_again(self, i: int, pick: int) -> None:
            self.next_step(i, pick)

        @rule(i=st.integers(0, 2), pick=st.integers(0, 5))
        def and_again(self, i: int, pick: int) -> None:
            self.next_step(i, pick)

        @rule(office=st.sampled_from(["THR-01", "ISF-02"]), status=st.sampled_from(["active", "suspended"]))
        def office_status(self, office: str, status: str) -> None:
            self._try(self.ra.set_office_status, office, status, OPERATOR)

        @rule(days=st.integers(0, 10))
        def time_passes(self, days: int) -> None:
            self.clock.moment = self.clock.moment + timedelta(days=days)

        @invariant()
        def the_audit_log_shows_every_rule_kept(self) -> None:
            if hasattr(self, "store"):
                assert_the_audit_log_shows_every_rule_kept(self.store, reached)

    Desk.TestCase.settings = settings(max_examples=100, stateful_step_count=60, deadline=None, derandomize=True,
                                      database=None,
                                      suppress_health_check=list(HealthCheck))
    run_state_machine_as_test(Desk, settings=Desk.TestCase.settings)
    # The random walks did reach issuance, by both paths, and the refusals too.
    assert all(reached.get(state, 0) > 0 for state in ("issued", "rejected", "awaiting-approval")), reached


def _issued_level1(ra: RegistrationAuthority, worker: RaWorker) -> tuple[str, int]:
    reg = ra.register(profile="personal-signature", level=1, ca="gica1", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    ra.bind_key(ra.officer("p1"), request.id, csr=csr_for()[1], device=DEVICE)
    ra.approve(ra.officer("a1"), request.id)
    [outcome] = worker.run_once()
    assert outcome.error is None
    return request.id, outcome.serial


def test_a_revocation_request_reaches_ocsp(ra: RegistrationAuthority, cas: dict, tmp_path: Path) -> None:
    from iranpki.ocsp import OcspService, Responder

    worker = worker_for(ra, cas)
    _, serial = _issued_level1(ra, worker)
    with pytest.raises(NotFoundError):
        ra.request_change("revoke", serial, second_factor="0012345678")  # not the subscriber
    with pytest.raises(RequestError, match="unknown revocation reason"):
        ra.request_change("revoke", serial, second_factor="0499370899", reason="bored")
    change = ra.request_change("revoke", serial, second_factor="0499370899", reason="keyCompromise")
    request = ra.receive(ra.officer("p1"), change.code, "0499370899")
    request = ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    assert request.state == "awaiting-approval"  # nothing to bind for a revocation
    ra.approve(ra.officer("a1"), request.id)
    [outcome] = worker.run_once()
    assert outcome.error is None and ra.store.get_request(request.id).state == "issued"
    assert ra.store.get_certificate(serial).reason.name == "keyCompromise"
    # What a relying party asks: openssl's request, our responder's answer, openssl's reading.
    pem = {"leaf": ra.store.get_certificate(serial).certificate, "ca": ra.store.get_ca("gica1").certificate,
           "root": ra.store.get_ca("root").certificate}
    for name, der in pem.items():
        (tmp_path / f"{name}.pem").write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    made = subprocess.run(["openssl", "ocsp", "-issuer", str(tmp_path / "ca.pem"), "-cert", str(tmp_path / "leaf.pem"),
                           "-no_nonce", "-reqout", str(tmp_path / "req.der")], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    service = OcspService(ra.store, [Responder(ra.store.get_ca("gica1"), cas["gica1"].signer)], clock=ra.clock)
    (tmp_path / "resp.der").write_bytes(service.respond((tmp_path / "req.der").read_bytes()).body)
    said = subprocess.run(["openssl", "ocsp", "-respin", str(tmp_path / "resp.der"), "-issuer", str(tmp_path / "ca.pem"),
                           "-cert", str(tmp_path / "leaf.pem"), "-CAfile", str(tmp_path / "root.pem"),
                           "-attime", str(int(T0.timestamp()) + 60)], capture_output=True, text=True)
    assert "Response verify OK" in said.stderr + said.stdout and ": revoked" in said.stdout, said.stdout + said.stderr
    assert "Reason: keyCompromise" in said.stdout


def test_a_request_that_moved_on_gets_no_certificate(ra: RegistrationAuthority, cas: dict) -> None:
    """The certificate and the request's move to issued are one transaction: a request cancelled
    after the worker read it gets no certificate, and nothing of one is kept."""
    worker = worker_for(ra, cas)
    reg = ra.register(profile="personal-signature", level=1, ca="gica1", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    ra.bind_key(ra.officer("p1"), request.id, csr=csr_for()[1], device=DEVICE)
    read = ra.approve(ra.officer("a1"), request.id)
    with pytest.raises(RuleRefusedError):
        ra.cancel(Actor("applicant", request.id), request.id)  # an applicant who never showed the code
    ra.cancel(ra.applicant(reg.code, "0499370899", client="panel"), request.id)
    before = len(list(ra.store.iter_certificates(ca="gica1")))
    with pytest.raises(ConcurrentChangeError):
        worker.carry_out(read)
    assert len(list(ra.store.iter_certificates(ca="gica1"))) == before
    assert ra.store.get_request(request.id).state == "cancelled"


def test_the_operator_and_the_ca_side_at_the_command_line(cas: dict, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`iranpki ra`: offices and officers made, an office suspended (its open requests listed), and
    the CA side issuing an approved request once, which openssl then verifies."""
    import json

    from click.testing import CliRunner

    from iranpki.keys import SecretSource
    from iranpki.workspace import Workspace
    from iranpki_cli.main import cli

    monkeypatch.setenv("IRANPKI_KEY_PASSPHRASE", "a passphrase long enough")
    home = tmp_path / "ws"
    ws = Workspace.init(home, repository_url=REPO)
    secret = SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase")
    ws.generate_key(KeySpec.parse("p384"), label="root", secret=secret)
    ws.generate_key(KeySpec.parse("p256"), label="gica1", secret=secret)
    ws.create_root("root", "root", ROOT_SUBJECT, secret=secret)
    ws.create_intermediate("gica1", "root", 1, "gica1", "C=IR,O=GICA,CN=GICA Level 1 (cli)", secret=secret,
                           parent_secret=secret, purpose="signing")
    ws.close()

    def iranpki(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, [*args, "--home", str(home)])
        assert result.exit_code == code, result.output
        return result.output

    iranpki("ra", "office", "create", "THR-01", "--name", "دفتر تهران", "--city", "Tehran", "--ca", "gica1")
    iranpki("ra", "officer", "enrol", "p1", "--office", "THR-01", "--name", "Reza", "--role", "proofing")
    iranpki("ra", "officer", "enrol", "a1", "--office", "THR-01", "--name", "Sara", "--role", "approving")
    # An officer whose token made a CSR: the CA issues the ra-officer certificate, openssl calls it a TLS client.
    officer_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "s1.csr").write_bytes(x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s1")])).sign(officer_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM))
    subject = ("C=IR,O=دفتر پیشخوان تهران,OU=THR-01,title=Registration Officer,SN=احمدی,GN=رضا,"
               "serialNumber=0012345679,CN=رضا احمدی")
    enrolled = json.loads(iranpki("ra", "officer", "enrol", "s1", "--office", "THR-01", "--name", "Reza",
                                  "--role", "proofing", "--csr", str(tmp_path / "s1.csr"), "--ca", "gica1",
                                  "--subject", subject, "--out", str(tmp_path / "s1.pem"), "--json"))
    assert enrolled["fingerprint"]
    officer_cert = tmp_path / "s1.pem"
    before = len(json.loads(iranpki("cert", "list", "--json")))
    again = iranpki("ra", "officer", "enrol", "s1", "--office", "THR-01", "--name", "Reza", "--role", "proofing",
                    "--csr", str(tmp_path / "s1.csr"), "--ca", "gica1", "--subject", subject, code=1)
    assert "enrolled already" in again and len(json.loads(iranpki("cert", "list", "--json"))) == before
    approved = json.loads(iranpki("ra", "device", "approve", str(cas["base"] / "attestation.p7m"), "--trust",
                                  str(cas["base"] / "root.pem"), "--json"))
    assert (approved["manufacturer"], approved["model"]) == ("SoftHSM project", "SoftHSM v2")
    refused = iranpki("ra", "device", "approve", str(cas["base"] / "attestation.p7m"), code=1)  # the national root
    assert "approval" in refused and "Traceback" not in refused, refused
    assert "--ca" in iranpki("ra", "office", "create", "X", "--name", "x", "--city", "x", code=2)
    assert "no CA named 'nope'" in iranpki("ra", "office", "create", "X", "--name", "x", "--city", "x", "--ca", "nope",
                                           code=1)
    ws = Workspace.open(home)
    ra = ws.registration()
    reg = ra.register(profile="personal-signature", level=1, ca="gica1", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    suspended = json.loads(iranpki("ra", "office", "suspend", "THR-01", "--json"))
    assert suspended["status"] == "suspended" and suspended["pending_requests"] == [request.id]
    with pytest.raises(RuleRefusedError):
        ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    iranpki("ra", "office", "reinstate", "THR-01")
    ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    ra.bind_key(ra.officer("p1"), request.id, csr=csr_for()[1], device=DEVICE)
    ra.approve(ra.officer("a1"), request.id)
    ws.close()
    [done] = json.loads(iranpki("ra", "issue", "--json"))
    assert done["request"] == request.id and done["error"] is None
    assert json.loads(iranpki("ra", "issue", "--json")) == []  # nothing left to do
    listed = json.loads(iranpki("ra", "requests", "--state", "issued", "--json"))
    assert [(r["id"], r["serial"]) for r in listed] == [(request.id, done["serial"])]
    for name in ("root", "gica1"):
        (tmp_path / f"{name}.pem").write_bytes(CliRunner().invoke(cli, ["ca", "export", name, "--home", str(home)])
                                               .stdout_bytes)
    (tmp_path / "leaf.pem").write_bytes(CliRunner().invoke(cli, ["cert", "export", done["serial"], "--home", str(home)])
                                        .stdout_bytes)
    out = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted",
                          str(tmp_path / "gica1.pem"), str(tmp_path / "leaf.pem")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    client = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(tmp_path / "root.pem"),
                             "-untrusted", str(tmp_path / "gica1.pem"), str(officer_cert)], capture_output=True, text=True)
    assert client.returncode == 0, client.stdout + client.stderr
    server = subprocess.run(["openssl", "verify", "-purpose", "sslserver", "-CAfile", str(tmp_path / "root.pem"),
                             "-untrusted", str(tmp_path / "gica1.pem"), str(officer_cert)], capture_output=True, text=True)
    assert server.returncode != 0  # an officer's certificate is no server's
    ws = Workspace.open(home)
    officer_der = x509.load_pem_x509_certificate(officer_cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    assert ws.registration().authenticate(officer_der).id == "s1"
    ws.close()
    iranpki("ra", "officer", "remove", "s1")
    ws = Workspace.open(home)
    with pytest.raises(RuleRefusedError) as removed:
        ws.registration().authenticate(officer_der)
    assert removed.value.rule == "officer"
    ws.close()
    assert "not reopened" in iranpki("ra", "office", "cancel", "THR-01") + iranpki("ra", "office", "reinstate",
                                                                                  "THR-01", code=1)


def test_rules_that_weaken_the_cp_are_refused_when_they_load(tmp_path: Path) -> None:
    import yaml

    from iranpki.errors import ConfigError
    from iranpki.ra.rules import load_rules

    shipped = yaml.safe_load((Path(__file__).resolve().parent.parent / "policies" / "ra-rules.yaml").read_text())
    for i, (change, says) in enumerate(((lambda r: r["levels"][2]["approvals"].update(count=1), "dual control"),
                                        (lambda r: r["key_locations"][0].update(storage="paper"), "does not know"),
                                        (lambda r: r.update(extra=1), "extra"),
                                        (lambda r: r["profiles"]["smime"]["key_locations"].append("pocket"),
                                         "pocket"),
                                        # No visit where the CP wants one; one approval where it wants two.
                                        (lambda r: r["levels"][1].update(remote_approvals=0), "does not accept automated"),
                                        (lambda r: r["levels"][3].update(remote_approvals=1), "dual control"))):
        rules = yaml.safe_load(yaml.safe_dump(shipped))
        change(rules)
        path = tmp_path / f"rules{i}.yaml"
        path.write_text(yaml.safe_dump(rules, allow_unicode=True))
        with pytest.raises(ConfigError, match=says):
            load_rules(str(path))


def test_an_officer_with_a_token_certificate_signs_the_statement_and_authenticates_by_it(
        ra: RegistrationAuthority, cas: dict, tmp_path: Path) -> None:
    from iranpki import signing
    from iranpki.ca import IssueRequest, revoke

    gica1 = CertificateAuthority(ra.store.get_ca("gica1"), cas["gica1"].signer, ra.store, clock=ra.clock)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = gica1.issue("personal-signature", IssueRequest(parse_subject(
        "C=IR,SN=احمدی,GN=رضا,serialNumber=0012345679,CN=رضا احمدی"), key.public_key()))
    ra.enrol_officer("s1", "THR-01", "Reza Ahmadi", ["proofing"], OPERATOR, certificate=cert.record.certificate)
    assert ra.authenticate(cert.record.certificate).id == "s1"
    stranger = gica1.issue("personal-signature", IssueRequest(parse_subject(ALI_SUBJECT), csr_for()[0].public_key()))
    with pytest.raises(RuleRefusedError) as unknown:
        ra.authenticate(stranger.record.certificate)
    assert unknown.value.rule == "officer"

    reg = ra.register(profile="personal-signature", level=1, ca="gica1", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    s1 = ra.officer("s1")
    request = ra.receive(s1, reg.code, "0499370899")
    statement = "کارت ملی اصل دیده شد؛ عکس با متقاضی مطابقت دارد. National ID card original seen."
    proof = {"method": "in-person", "documents": documents("national-id-card"), "statement": statement}
    with pytest.raises(RuleRefusedError) as unsigned:
        ra.proof(s1, request.id, **proof)
    assert unsigned.value.rule == "signed-statement"
    # Signed by another certificate (the stranger's own key): not the officer's.
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    other = gica1.issue("personal-signature", IssueRequest(parse_subject(ALI_SUBJECT), stranger_key.public_key()))
    with pytest.raises(RuleRefusedError) as by_other:
        ra.proof(s1, request.id, statement_signature=signing.sign_cms(statement.encode(), SoftwareSigner(stranger_key),
                                                                      other.pem), **proof)
    assert by_other.value.rule == "signed-statement"
    wrong_text = signing.sign_cms("something else".encode(), SoftwareSigner(key), cert.pem)
    with pytest.raises(RuleRefusedError) as mismatch:
        ra.proof(s1, request.id, statement_signature=wrong_text, **proof)
    assert mismatch.value.rule == "signed-statement"
    signature = signing.sign_cms(statement.encode(), SoftwareSigner(key), cert.pem)
    request = ra.proof(s1, request.id, statement_signature=signature, **proof)
    assert request.state == "proofed"
    # openssl verifies what was kept, over the statement, to the root.
    import base64

    (tmp_path / "statement.txt").write_bytes(statement.encode())
    (tmp_path / "sig.der").write_bytes(base64.b64decode(request.proofing["statement_signature"]))
    (tmp_path / "gica1.pem").write_bytes(x509.load_der_x509_certificate(ra.store.get_ca("gica1").certificate)
                                         .public_bytes(serialization.Encoding.PEM))
    (tmp_path / "cas.pem").write_bytes((cas["base"] / "root.pem").read_bytes() + (tmp_path / "gica1.pem").read_bytes())
    out = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "sig.der"),
                          "-content", str(tmp_path / "statement.txt"), "-CAfile", str(tmp_path / "cas.pem"),
                          "-purpose", "any", "-out", "/dev/null"],
                         capture_output=True, text=True)
    assert "Verification successful" in out.stderr, out.stderr
    # A revoked officer certificate no longer authenticates.
    revoke(ra.store, cert.record.serial, "affiliationChanged", clock=ra.clock)
    with pytest.raises(RuleRefusedError) as revoked:
        ra.authenticate(cert.record.certificate)
    assert revoked.value.rule == "officer-certificate"


def test_a_software_key_is_handed_out_once_in_a_pkcs12_openssl_opens(ra: RegistrationAuthority, cas: dict,
                                                                    store_location: str,
                                                                    tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    from iranpki.errors import PinError

    worker = worker_for(ra, cas)
    reg = ra.register(profile="personal-signature", level=1, ca="gica1", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="software-pkcs12")
    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    applicant = ra.applicant(reg.code, "0499370899", client="panel")
    with pytest.raises(RequestError, match="at least 8"):
        ra.bind_key(applicant, request.id, csr=None, passphrase="short")
    passphrase = "رمز عبور بلند من 1405"
    ra.bind_key(applicant, request.id, csr=None, passphrase=passphrase)
    ra.approve(ra.officer("a1"), request.id)
    [outcome] = worker.run_once()
    assert outcome.error is None
    with pytest.raises(PinError):
        ra.pkcs12(applicant, request.id, "not the passphrase")
    data = ra.pkcs12(applicant, request.id, passphrase)
    with pytest.raises(RuleRefusedError) as again:
        ra.pkcs12(applicant, request.id, passphrase)
    assert again.value.rule == "state"  # handed out once
    key, cert, _ = pkcs12.load_key_and_certificates(data, passphrase.encode())
    assert cert.serial_number == outcome.serial and "software_key" not in ra.store.get_request(request.id).proofing
    path = tmp_path / "ali.p12"
    path.write_bytes(data)
    info = subprocess.run(["openssl", "pkcs12", "-info", "-in", str(path), "-noout", "-passin", f"pass:{passphrase}"],
                          capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert "PBES2, PBKDF2, AES-256-CBC" in info.stderr and "MAC: sha256" in info.stderr, info.stderr
    # The key was never in the store unencrypted: its private value is nowhere in the store's files.
    from .conftest import stored_bytes

    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    ra.store.close()
    stored = stored_bytes(store_location)
    assert len(stored) > 10_000 and scalar not in stored and scalar.hex().encode() not in stored
    # And the subscriber accepts with it.
    ra.store = open_store(store_location, clock=ra.clock)
    record = ra.store.get_request(request.id)
    signature = key.sign(ra.acceptance_text(record), ec.ECDSA(hashes.SHA256()))
    assert ra.accept(applicant, request.id, signature).state == "accepted"


def test_the_desk_makes_the_key_on_the_token_and_writes_the_certificate_back(
        ra: RegistrationAuthority, cas: dict, softhsm: dict, tmp_path: Path) -> None:
    """Personal signature at level 3 on a SoftHSM2 token at the desk: the key is made on the
    token, its CSR signed there (openssl verifies it), the token identifies itself as an approved
    model, the certificate goes back onto the token (pkcs11-tool lists it) and the subscriber
    accepts with the token's key."""
    import secrets

    from iranpki.keys.pkcs11 import store_certificate
    from iranpki.ra import key_at_desk

    request_id, code = proofed_level3(ra)
    label = f"ali-{secrets.token_hex(3)}"
    desk = key_at_desk("Test", label, KeySpec.parse("p256"), module=softhsm["module"])
    assert (desk.device["manufacturer"], desk.device["model"]) == ("SoftHSM project", "SoftHSM v2")
    (tmp_path / "desk.csr").write_bytes(desk.csr)
    verified = subprocess.run(["openssl", "req", "-inform", "DER", "-in", str(tmp_path / "desk.csr"), "-verify",
                               "-noout"], capture_output=True, text=True)
    assert verified.returncode == 0 and "verify OK" in verified.stdout + verified.stderr, verified.stderr
    ra.bind_key(ra.officer("p1"), request_id, csr=desk.csr, device=desk.device)
    ra.approve(ra.officer("a1"), request_id)
    ra.approve(ra.officer("a2"), request_id)
    worker = worker_for(ra, cas)
    [outcome] = worker.run_once()
    record = ra.store.get_request(request_id)
    assert outcome.error is None and record.device == desk.device
    certificate = ra.store.get_certificate(outcome.serial).certificate
    wrong = ra.store.get_ca("gica3").certificate
    from iranpki.errors import TokenError

    with pytest.raises(TokenError, match="not for the key"):
        store_certificate(desk.signer.reference, wrong, module=softhsm["module"])
    store_certificate(desk.signer.reference, certificate, module=softhsm["module"])
    listed = subprocess.run(["pkcs11-tool", "--module", softhsm["module"], "--token-label", "Test", "--list-objects",
                             "--type", "cert"], capture_output=True, text=True)
    assert listed.returncode == 0 and f"label:      {label}" in listed.stdout, listed.stdout + listed.stderr
    assert "Certificate Object; type = X.509 cert" in listed.stdout
    applicant = ra.applicant(code, "0499370899", client="panel")
    signature = desk.signer.sign(ra.acceptance_text(record), SignatureScheme("sha256"))  # on the token
    assert ra.accept(applicant, request_id, signature).state == "accepted"


def test_what_the_review_of_the_engine_found_stays_fixed(ra: RegistrationAuthority, cas: dict) -> None:
    """Each of these passed once: a claimed office, a substring second factor, a code tested
    through made-up officers, a re-key with fewer approvals than the level asks, a revocation
    carried out for a request rejected meanwhile, a renewal of a revoked certificate."""
    worker = worker_for(ra, cas)
    # An officer claiming another office acts (and is recorded) as the office the store knows.
    reg = ra.register(profile="personal-signature", level=3, ca="gica3", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    claimed = Actor("officer", "p1", "ISF-02", ("proofing", "approving"))
    assert ra.receive(claimed, reg.code, "0499370899").office == "THR-01"
    with pytest.raises(RuleRefusedError) as roles:
        ra.approve(claimed, reg.request.id)
    assert roles.value.rule in ("roles", "state")
    # A made-up officer learns nothing of a code, and the lookup limit holds.
    with pytest.raises(NotFoundError, match="no registration officer"):
        ra.receive(Actor("officer", "nobody"), reg.code, "0499370899")
    # Level 3: a certificate issued with two approvals; its re-key needs two again and the level's documents.
    request_id, code = proofed_level3(ra)
    ra.bind_key(ra.officer("p1"), request_id, csr=csr_for()[1], device=DEVICE)
    ra.approve(ra.officer("a1"), request_id)
    ra.approve(ra.officer("a2"), request_id)
    [issued] = worker.run_once()
    serial = issued.serial
    for factor in ("9", "", "0499370899 ", "049937089"):
        if factor.strip() == "0499370899":
            continue
        with pytest.raises(NotFoundError):
            ra.request_change("revoke", serial, second_factor=factor)
    with pytest.raises(RuleRefusedError) as where:
        ra.request_change("rekey", serial, second_factor="0499370899", key_location="phone")
    assert where.value.rule == "key-location"  # level 3: a token, as for a new certificate
    rekey = ra.request_change("rekey", serial, second_factor="0499370899", key_location="desk-token")
    # A change nobody has proved yet blocks no other (anyone who knows the serial and the national
    # code can file one); the first proved does, until it is decided.
    early = ra.request_change("revoke", serial, second_factor="۰۴۹۹۳۷۰۸۹۹")  # typed in Persian digits
    early_at_desk = ra.receive(ra.officer("p1"), early.code, "0499370899")
    request = ra.receive(ra.officer("p1"), rekey.code, "0499370899")
    with pytest.raises(RuleRefusedError) as docs:
        ra.proof(ra.officer("p1"), request.id, method="in-person-two-documents", documents=documents("national-id-card"))
    assert docs.value.rule == "documents"
    ra.proof(ra.officer("p1"), request.id, method="in-person-two-documents",
             documents=documents("national-id-card", "birth-certificate"))
    with pytest.raises(RuleRefusedError) as twice:
        ra.request_change("revoke", serial, second_factor="0499370899")
    assert twice.value.rule == "pending-change"
    with pytest.raises(RuleRefusedError) as second:
        ra.proof(ra.officer("p1"), early_at_desk.id, method="in-person-two-documents",
                 documents=documents("national-id-card"))
    assert second.value.rule == "pending-change"
    ra.bind_key(ra.officer("p1"), request.id, csr=csr_for()[1], device=DEVICE)
    assert ra.approve(ra.officer("a1"), request.id).state == "awaiting-approval"  # one is not enough at level 3
    assert ra.approve(ra.officer("a2"), request.id).state == "approved"
    # Revoked meanwhile (by the operator): the approved re-key gets no certificate.
    from iranpki.ca import revoke

    revoke(ra.store, serial, "keyCompromise", clock=ra.clock)
    [refused] = worker.run_once()
    assert refused.request == request.id and refused.error is not None and "revoked" in str(refused.error)
    assert ra.store.get_request(request.id).state == "rejected"  # it never can be: the queue moves on
    # A revocation request rejected after the worker read it: nothing is revoked.
    _, other = _issued_level1(ra, worker)
    change = ra.request_change("revoke", other, second_factor="0499370899")
    request = ra.receive(ra.officer("p1"), change.code, "0499370899")
    ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    read = ra.approve(ra.officer("a1"), request.id)
    ra.reject(ra.officer("a2"), request.id, "the subscriber withdrew the request")
    with pytest.raises(ConcurrentChangeError):  # the revocation went with the request's refused move
        worker.carry_out(read)
    assert ra.store.get_certificate(other).status == "valid"



SEAL_ORG = {"national_id": "10380284790", "name": "شرکت نمونه"}
JOURNEYS = [
    # profile, level, CA, key location, documents beyond the level's, openssl purpose
    ("organisational-seal", 3, "gica3", "desk-token", ("company-registration", "official-letter"), "smimesign"),
    ("ssl-server", 1, "gica1tls", "subscriber-csr", ("company-registration", "csr-domain-control"), "sslserver"),
    ("tsa", 1, "gica1tsa", "subscriber-csr", ("company-registration", "official-letter"), "timestampsign"),
    ("code-signing", 3, "gica3code", "desk-token", ("company-registration",), "codesign"),
]


@pytest.mark.parametrize("profile, level, ca, location, extra, purpose", JOURNEYS, ids=[j[0] for j in JOURNEYS])
def test_each_journey_runs_end_to_end(ra: RegistrationAuthority, cas: dict, softhsm: dict, tmp_path: Path,
                                      profile: str, level: int, ca: str, location: str, extra: tuple[str, ...],
                                      purpose: str) -> None:
    """The organisational seal and code signing on a token at the desk (level 3, two approvals),
    SSL/TLS and a TSA from the organisation's own CSR (level 1): registered, proofed with the
    organisation's documents, bound, approved, issued by the CA side, verified by openssl for the
    certificate's purpose."""
    import secrets

    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from iranpki.ra import key_at_desk

    from .conftest import openssl_has_purpose, openssl_verify
    from .samples import SANS, SUBJECTS

    reg = ra.register(profile=profile, level=level, ca=ca, applicant=SEAL_ORG, subject=SUBJECTS[profile],
                      key_location=location)
    p1 = ra.officer("p1")
    request = ra.receive(p1, reg.code, "10380284790")
    method = "in-person" if level == 1 else "in-person-two-documents"
    base_docs = ("national-id-card",) if level == 1 else ("national-id-card", "birth-certificate")
    ra.proof(p1, request.id, method=method, documents=documents(*base_docs, *extra))
    if location == "desk-token":
        spec = "rsa3072" if profile == "code-signing" else "p256"
        desk = key_at_desk("Test", f"{profile}-{secrets.token_hex(3)}", KeySpec.parse(spec), module=softhsm["module"])
        ra.bind_key(p1, request.id, csr=desk.csr, device=desk.device)
    else:  # the organisation's own CSR, with its names (SSL/TLS: the DNS names and addresses)
        key = rsa.generate_private_key(65537, 2048)
        builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                                                        "csr")]))
        if profile in SANS:
            import ipaddress

            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(d) for d in SANS[profile].get("dns", [])]
                + [x509.IPAddress(ipaddress.ip_address(i)) for i in SANS[profile].get("ips", [])]), critical=False)
        csr = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        ra.bind_key(ra.applicant(reg.code, "10380284790", client="panel"), request.id, csr=csr)
    state = ra.approve(ra.officer("a1"), request.id).state
    if level >= 3:
        assert state == "awaiting-approval"
        state = ra.approve(ra.officer("a2"), request.id).state
    assert state == "approved"
    worker = worker_for(ra, cas)
    [outcome] = worker.run_once()
    assert outcome.error is None, outcome.error
    cert = x509.load_der_x509_certificate(ra.store.get_certificate(outcome.serial).certificate)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if purpose == "codesign" and not openssl_has_purpose("codesign"):
        purpose = "any"  # OpenSSL before 3.2: the chain, and the usage checked here
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
            [ExtendedKeyUsageOID.CODE_SIGNING]
    result = openssl_verify(cas["base"] / "root.pem", cas["base"] / f"{ca}.pem", leaf, purpose)
    assert result.returncode == 0, result.stdout + result.stderr


def test_smime_with_a_software_key_renewal_and_hand_over(ra: RegistrationAuthority, cas: dict, softhsm: dict,
                                                          tmp_path: Path) -> None:
    """S/MIME at level 1 with a software key and the applicant's e-mail address (names), handed
    out in a PKCS#12 that openssl opens; an SSL/TLS certificate renewed with the same key and
    names; a desk token handed over once, and only the token the key was made on."""
    import secrets

    from cryptography.hazmat.primitives.serialization import pkcs12

    from iranpki.ra import key_at_desk

    from .conftest import openssl_verify
    from .samples import SUBJECTS

    worker = worker_for(ra, cas)
    with pytest.raises(RequestError, match="not offered"):
        ra.register(profile="smime", level=1, ca="gica1", applicant=ALI, subject=SUBJECTS["smime"],
                    key_location="software-pkcs12", names={"uri": ["x"]})
    reg = ra.register(profile="smime", level=1, ca="gica1", applicant=ALI, subject=SUBJECTS["smime"],
                      key_location="software-pkcs12", names={"emails": ["ali@example.ir"]})
    request = ra.receive(ra.officer("p1"), reg.code, "0499370899")
    ra.proof(ra.officer("p1"), request.id, method="in-person", documents=documents("national-id-card"))
    applicant = ra.applicant(reg.code, "0499370899", client="panel")
    ra.bind_key(applicant, request.id, csr=None, passphrase="a passphrase for mail")
    ra.approve(ra.officer("a1"), request.id)
    [outcome] = worker.run_once()
    assert outcome.error is None, outcome.error
    _, cert, _ = pkcs12.load_key_and_certificates(ra.pkcs12(applicant, request.id, "a passphrase for mail"),
                                                  b"a passphrase for mail")
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.RFC822Name) == ["ali@example.ir"]
    leaf = tmp_path / "smime.pem"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "gica1.pem").write_bytes(x509.load_der_x509_certificate(ra.store.get_ca("gica1").certificate)
                                         .public_bytes(serialization.Encoding.PEM))
    result = openssl_verify(cas["base"] / "root.pem", tmp_path / "gica1.pem", leaf, "smimesign")
    assert result.returncode == 0, result.stdout + result.stderr

    # Renewal: the same key and names, a new serial, after the level's proofing and approval.
    renew = ra.request_change("renew", outcome.serial, second_factor="0499370899")
    request = ra.receive(ra.officer("p1"), renew.code, "0499370899")
    assert ra.proof(ra.officer("p1"), request.id, method="in-person",
                    documents=documents("national-id-card")).state == "awaiting-approval"
    ra.approve(ra.officer("a1"), request.id)
    [renewed] = worker.run_once()
    new = x509.load_der_x509_certificate(ra.store.get_certificate(renewed.serial).certificate)
    assert renewed.serial != outcome.serial and new.public_key().public_numbers() == cert.public_key().public_numbers()
    assert new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == \
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    # The hand-over of a desk token: once, and for the token the key was made on.
    request_id, _ = proofed_level3(ra)
    desk = key_at_desk("Test", f"hand-{secrets.token_hex(3)}", KeySpec.parse("p256"), module=softhsm["module"])
    ra.bind_key(ra.officer("p1"), request_id, csr=desk.csr, device=desk.device)
    ra.approve(ra.officer("a1"), request_id)
    ra.approve(ra.officer("a2"), request_id)
    worker.run_once()
    with pytest.raises(RuleRefusedError) as other_token:
        ra.hand_over(ra.officer("p1"), request_id, "another-serial")
    assert other_token.value.rule == "device"
    handed = ra.hand_over(ra.officer("p1"), request_id, desk.device["serial"])
    assert handed.state == "issued" and handed.proofing["handed_over"]["officer"] == "p1"
    with pytest.raises(RuleRefusedError):
        ra.hand_over(ra.officer("p1"), request_id, desk.device["serial"])


def test_a_workspace_names_its_rules_and_its_identity_registry(tmp_path: Path) -> None:
    """iranpki.yaml's ra_rules and identity_registry reach the engine `iranpki ra serve` runs; a
    registry that cannot be loaded, or a malformed simulated one, is a clear error."""
    import yaml

    from iranpki.errors import ConfigError
    from iranpki.workspace import CONFIG_NAME, Workspace

    ws = Workspace.init(tmp_path / "ws", repository_url=REPO)
    rules = yaml.safe_load((Path(__file__).resolve().parent.parent / "policies" / "ra-rules.yaml").read_text())
    rules["lookup"]["registrations_per_window"] = 500
    (ws.home / "rules.yaml").write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    (ws.home / "people.yaml").write_text(yaml.safe_dump({
        "people": [{"national_code": "0499370899", "given_name": "علی", "surname": "محمدی", "birth_date": "1990-03-21"}],
        "mobiles": {"09120000000": "0499370899"}}, allow_unicode=True), encoding="utf-8")
    config = yaml.safe_load((ws.home / CONFIG_NAME).read_text())

    def engine_with(**settings: str) -> RegistrationAuthority:
        (ws.home / CONFIG_NAME).write_text(yaml.safe_dump({**config, **settings}), encoding="utf-8")
        return Workspace.open(ws.home).registration()

    engine = engine_with(ra_rules="rules.yaml", identity_registry="simulated:people.yaml")
    assert engine.rules.lookup.registrations_per_window == 500
    assert engine.registry is not None and engine.registry.mobile_owned_by("09120000000", "0499370899")
    assert engine.registry.person("0499370899").surname == "محمدی"
    with pytest.raises(ConfigError, match="no_such_adapter"):
        engine_with(identity_registry="no_such_adapter:make")
    (ws.home / "people.yaml").write_text("people: [{national_code: 1}]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a simulated registry"):
        engine_with(identity_registry="simulated:people.yaml")
    with pytest.raises(ConfigError, match="identity_registry"):
        engine_with(identity_registry="not a spec")


def test_a_level_3_rekey_takes_a_visit_and_a_revocation_does_not(ra: RegistrationAuthority, cas: dict) -> None:
    """The rules let the current key ask for a re-key only at levels 1 and 2, and for a
    revocation at every level."""
    request_id, code = proofed_level3(ra)
    key, csr = csr_for()
    ra.bind_key(ra.officer("p1"), request_id, csr=csr, device=DEVICE)
    ra.approve(ra.officer("a1"), request_id)
    ra.approve(ra.officer("a2"), request_id)
    [outcome] = worker_for(ra, cas).run_once()
    rekey = ra.request_change("rekey", outcome.serial, second_factor="0499370899", key_location="desk-token")
    applicant = ra.applicant(rekey.code, "0499370899", client="panel")
    signature = key.sign(ra.change_text(rekey.request), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(RuleRefusedError) as refused:
        ra.proof_by_current_key(applicant, rekey.request.id, signature)
    assert refused.value.rule == "proofing-method" and "visit" in str(refused.value)
    ra.cancel(applicant, rekey.request.id)
    revoke = ra.request_change("revoke", outcome.serial, second_factor="0499370899", reason="keyCompromise")
    applicant = ra.applicant(revoke.code, "0499370899", client="panel")
    signature = key.sign(ra.change_text(revoke.request), ec.ECDSA(hashes.SHA256()))
    assert ra.proof_by_current_key(applicant, revoke.request.id, signature).state == "awaiting-approval"


def test_evidence_is_kept_for_the_cps_archive_period_and_exported_for_an_inspector(
        ra: RegistrationAuthority, cas: dict, tmp_path: Path, store_location: str) -> None:
    """The scans of a request are listed with the date until which they are kept (the CP's
    archive period for the level), exported with the request's events for an inspector (the
    files' SHA-256 as recorded), and purged only once that period has passed and the request is
    closed."""
    import hashlib
    import json
    import sys

    import yaml

    worker = worker_for(ra, cas)
    done_id, _ = _issued_level1(ra, worker)
    reg = ra.register(profile="personal-signature", level=1, ca="gica1", applicant=ALI, subject=ALI_SUBJECT,
                      key_location="desk-token")
    open_id = ra.receive(ra.officer("p1"), reg.code, "0499370899").id
    ra.proof(ra.officer("p1"), open_id, method="in-person", documents=documents("national-id-card"))
    # The CLI on the same store: the file beside it, or the PostgreSQL database.
    (tmp_path / "iranpki.yaml").write_text(yaml.safe_dump({"store": store_location, "repository_url": REPO}))
    iranpki = str(Path(sys.executable).parent / "iranpki")
    listed = subprocess.run([iranpki, "ra", "evidence", "list", done_id, "--home", str(tmp_path), "--json"],
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    [doc] = json.loads(listed.stdout)
    years = ra.policy.level(1).records.archive_retention_years
    assert doc["kind"] == "national-id-card" and doc["kept_until"].startswith(str(T0.year + years))
    exported = subprocess.run([iranpki, "ra", "evidence", "export", done_id, "--out", str(tmp_path / "inspector"),
                               "--home", str(tmp_path)], capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((tmp_path / "inspector" / "evidence.json").read_text(encoding="utf-8"))
    [scan] = manifest["documents"]
    assert hashlib.sha256((tmp_path / "inspector" / scan["file"]).read_bytes()).hexdigest() == doc["sha256"]
    assert [e["to"] for e in manifest["events"]][-1] == "issued"
    # Not before its time; then the closed request's scans go, the open one's stay.
    ra.clock.moment = T0 + timedelta(days=365 * years - 30)
    assert ra.purge_evidence(OPERATOR) == 0
    ra.clock.moment = T0 + timedelta(days=365 * years + 10)
    assert ra.purge_evidence(OPERATOR) == 1
    assert ra.store.list_evidence(done_id) == [] and len(ra.store.list_evidence(open_id)) == 1
    with pytest.raises(RuleRefusedError):
        ra.purge_evidence(ra.officer("p1"))


def test_one_time_codes_are_checked_against_oathtool_used_once_and_limited(ra: RegistrationAuthority) -> None:
    """The officer's second factor: the code oathtool makes from the enrolled secret for now (or
    the step before or after) is taken once; a code from two steps away, a reused code and a
    sixth wrong code in 15 minutes are refused, the last even when right. Nothing of the secret
    is in the audit."""
    import re
    import subprocess
    from datetime import timedelta

    from iranpki.errors import RateLimitedError

    uri = ra.enrol_one_time_codes("a1", OPERATOR)
    secret = re.search(r"secret=([A-Z2-7]+)", uri).group(1)

    def code(at) -> str:  # noqa: ANN001 - a datetime
        return subprocess.run(["oathtool", "--totp", "-b", secret, "--now", f"{at:%Y-%m-%d %H:%M:%S} UTC"],
                              capture_output=True, text=True, check=True, timeout=10).stdout.strip()

    a1 = ra.officer("a1")
    assert ra.check_one_time_code(a1, code(T0 - timedelta(seconds=30))).id == "a1"  # the step before: clocks drift
    with pytest.raises(RuleRefusedError, match="used already"):
        ra.check_one_time_code(a1, code(T0 - timedelta(seconds=30)))
    with pytest.raises(RuleRefusedError, match="authenticator shows now"):
        ra.check_one_time_code(a1, code(T0 + timedelta(seconds=90)))
    with pytest.raises(RuleRefusedError, match="no one-time codes enrolled"):
        ra.check_one_time_code(ra.officer("a2"), "123456")
    for _ in range(4):
        with pytest.raises(RuleRefusedError):
            ra.check_one_time_code(a1, "12345x")
    with pytest.raises(RateLimitedError):
        ra.check_one_time_code(a1, code(T0))
    assert secret not in str(ra.store.audit_log())
