"""The whole NIST PKITS suite through iranpki.validation, and a sample through `iranpki verify`
(issue 13 items 4 and 5).

The certificates, CRLs and the table of expected results are the shared vectors
(`shared/vectors/pkits`, see its SOURCE): 247 cases of PKITS section 4, each with the RFC 5280
6.1.1 inputs it needs (user-initial-policy-set, initial-explicit-policy,
initial-policy-mapping-inhibit, initial-any-policy-inhibit). They are validated at 2022-05-01 (the
certificates run 2010-2030), revocation required unless the table says it is not checked, with the
`legacy` algorithm policy: PKITS dates from 2011 and holds DSA and SHA-1 cases that the national
policy refuses by design (shown below).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from iranpki import inputs, validation
from iranpki.errors import (
    CertificateRevokedError, CertificateValidationError, InvalidPathError, PolicyNotAcceptableError,
    RevocationUnknownError,
)

# The shared vectors beside the repository (../shared/vectors/pkits), as CI checks it out.
PKITS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "pkits"
CASES = json.loads((PKITS / "pkits.json").read_text("utf-8"))
AT = datetime(2022, 5, 1, tzinfo=timezone.utc)
ROOT = "TrustAnchorRootCertificate.crt"
# Stated, reasoned exceptions: the case, and why it does not pass (none today).
EXCEPTIONS: dict[str, str] = {}
# What pyhanko-certvalidator's error in the table becomes in iranpki.
EXPECTED_ERROR = {"RevokedError": CertificateRevokedError, "InsufficientRevinfoError": RevocationUnknownError,
                  "StaleRevinfoError": RevocationUnknownError, "PathValidationError": CertificateValidationError}


def _read(kind: str, name: str) -> bytes:
    return (PKITS / kind / name).read_bytes()


def _validate(case: dict, algorithms: str = "legacy") -> validation.ValidationResult:
    return validation.validate_certificate(
        _read("certs", case["cert"]), at=AT, trust_roots=[_read("certs", ROOT)],
        intermediates=[_read("certs", c) for c in case.get("other_certs", [])],
        crls=[_read("crls", c) for c in [*case.get("crls", []), "TrustAnchorRootCRL.crl"]],
        revocation="soft-fail" if case.get("revocation") is False else "require", algorithms=algorithms,
        **case.get("params", {})).raise_for_error()


def test_the_suite_is_whole() -> None:
    # 247 entries, 246 cases: the upstream table lists invalid_dn_nameconstraints_test3 twice, alike.
    assert len(CASES) == 247 and len({json.dumps(c, sort_keys=True) for c in CASES}) == 246
    with_inputs = [c for c in CASES if c.get("params")]
    assert len(with_inputs) == 33  # the cases that need RFC 5280 6.1.1 inputs beyond the defaults


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"], marks=[pytest.mark.xfail(
    strict=True, reason=EXCEPTIONS[c["name"]])] if c["name"] in EXCEPTIONS else []) for c in CASES])
def test_pkits_case(case: dict) -> None:
    error = case.get("error")
    if error is None:
        result = _validate(case)
        assert len(result.path) == case["path_len"]
        return
    with pytest.raises(CertificateValidationError) as caught:
        _validate(case)
    assert isinstance(caught.value, EXPECTED_ERROR[error["class"]]), (type(caught.value), str(caught.value))
    if "set of policies" in error["msg_regex"]:
        assert isinstance(caught.value, (PolicyNotAcceptableError, InvalidPathError))
        if case.get("params", {}).get("user_initial_policy_set") or case.get("params", {}).get(
                "initial_explicit_policy"):
            assert isinstance(caught.value, PolicyNotAcceptableError) and "RFC 5280 6.1.1" in str(caught.value)


def test_the_national_algorithm_policy_refuses_dsa_and_says_so() -> None:
    """PKITS 4.1.4 (DSA-1024 with SHA-1) is valid under the legacy policy and refused under the
    national one, the default, which names what it allows."""
    case = next(c for c in CASES if c["name"] == "valid_dsa_signatures_test4")
    assert _validate(case, "legacy").path
    with pytest.raises(InvalidPathError, match="dsa signatures are not in the national algorithm policy"):
        _validate(case, "national")
    with pytest.raises(validation.ValidationInputError, match="unknown algorithm policy 'weak'"):
        _validate(case, "weak")


def test_a_level_and_a_policy_set_are_not_given_together() -> None:
    case = CASES[0]
    with pytest.raises(validation.ValidationInputError, match="give either an assurance level or a set"):
        validation.validate_certificate(_read("certs", case["cert"]), at=AT, trust_roots=[_read("certs", ROOT)],
                                        level=2, user_initial_policy_set=["2.16.840.1.101.3.2.1.48.1"])
    with pytest.raises(validation.ValidationInputError, match="'1.2.x' is not an object identifier"):
        validation.validate_certificate(_read("certs", case["cert"]), at=AT, trust_roots=[_read("certs", ROOT)],
                                        user_initial_policy_set=["1.2.x"])


def test_the_command_takes_the_rfc5280_inputs(tmp_path: Path) -> None:
    from iranpki_cli.main import cli

    def verify(name: str, *args: str) -> tuple[int, dict]:
        case = next(c for c in CASES if c["name"] == name)
        files = []
        for i, c in enumerate(case.get("other_certs", [])):
            (tmp_path / f"{name}-{i}.crt").write_bytes(_read("certs", c))
            files += ["--chain", str(tmp_path / f"{name}-{i}.crt")]
        for i, c in enumerate([*case.get("crls", []), "TrustAnchorRootCRL.crl"]):
            (tmp_path / f"{name}-{i}.crl").write_bytes(_read("crls", c))
            files += ["--crl", str(tmp_path / f"{name}-{i}.crl")]
        (tmp_path / "ee.crt").write_bytes(_read("certs", case["cert"]))
        (tmp_path / "root.crt").write_bytes(_read("certs", ROOT))
        out = CliRunner().invoke(cli, ["verify", str(tmp_path / "ee.crt"), "--trust", str(tmp_path / "root.crt"),
                                       "--at", "2022-05-01", "--revocation",
                                       "soft-fail" if case.get("revocation") is False else "require", *files, *args,
                                       "--json"])
        text = out.stdout if out.exit_code == 0 else out.stderr or out.stdout
        return out.exit_code, {**(json.loads(text) if text.strip().startswith("{") else {}), "raw": out.output}

    pol1, pol2 = "2.16.840.1.101.3.2.1.48.1", "2.16.840.1.101.3.2.1.48.2"
    code, data = verify("all_certs_same_policy_test1_with_constraints1", "--policy", pol1, "--explicit-policy")
    assert code == 0 and data["valid"] and pol1 in data["policies"]
    code, data = verify("all_certs_same_policy_test1_with_constraint_mismatch", "--policy", pol2, "--explicit-policy")
    assert code == 1 and data["error"] == "PolicyNotAcceptableError" and "acceptable policies " + pol2 in data["message"]
    code, data = verify("invalid_policy_mapping_test2_inhibit_mapping", "--inhibit-policy-mapping")
    assert code == 1 and data["error"] == "PolicyNotAcceptableError" and "policy mapping inhibited" in data["message"]
    code, data = verify("valid_dsa_signatures_test4")
    assert code == 1 and "national algorithm policy" in data["message"]
    code, data = verify("valid_dsa_signatures_test4", "--algorithms", "legacy")
    assert code == 0 and data["valid"]
    code, data = verify("valid_dsa_parameter_inheritance_test5", "--algorithms", "legacy")
    assert code == 0 and data["valid"] and len(data["path"]) == 4
    code, data = verify("valid_signatures_test1", "--level", "2", "--policy", pol1)
    assert code == 2 and "give either an assurance level or a set" in data["raw"]


def test_a_certificate_whose_key_cryptography_cannot_load_is_read(tmp_path: Path) -> None:
    """PKITS 4.1.5: a DSA key inheriting its parameters from the CA's (RFC 3279 2.3.2). cryptography
    cannot load it; openssl reads it, and so does iranpki now: names, serial and extensions as
    openssl shows them, its own bytes back, and a clear error only for its public key."""
    import subprocess

    from cryptography.hazmat.primitives.serialization import Encoding

    der = _read("certs", "ValidDSAParameterInheritanceTest5EE.crt")
    (cert,) = inputs.load_certificates(der)
    assert isinstance(cert, inputs.KeylessCertificate) and cert.public_bytes(Encoding.DER) == der
    shown = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-serial", "-nameopt",
                            "RFC2253"], input=der, capture_output=True, timeout=60).stdout.decode()
    assert f"subject={cert.subject.rfc4514_string()}" in shown and f"serial={cert.serial_number:02X}" in shown
    with pytest.raises(validation.ValidationInputError, match="DSA public key .* cannot be loaded here"):
        cert.public_key()
    pem = cert.public_bytes(Encoding.PEM)
    assert inputs.load_certificates(pem)[0] == cert
    case = next(c for c in CASES if c["name"] == "valid_dsa_parameter_inheritance_test5")
    result = _validate(case)
    assert result.certificate == cert and len(result.path) == 4
