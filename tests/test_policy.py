"""The national CP as data: the shipped file loads, a broken one is refused with the field that
is wrong, and issuance, CRLs and OCSP take their limits from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from iranpki.ca import CertificateAuthority, create_intermediate, create_root, parse_subject
from iranpki.errors import ConfigError, IssuanceError, ProfileViolationError
from iranpki.keys import SignatureScheme, SoftwareSigner
from iranpki.policy import CERTIFICATE_KINDS, load_policy
from iranpki.profiles import list_profiles
from iranpki.store import SqliteStore

from .conftest import OCSP, REPO, ROOT_SUBJECT, new_key
from .samples import request

CP = Path(__file__).resolve().parents[1] / "policies" / "national-cp.yaml"


def _write(tmp_path: Path, change) -> str:
    data = yaml.safe_load(CP.read_text("utf-8"))
    change(data)
    path = tmp_path / "cp.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return str(path)


def test_shipped_cp_has_every_value_the_services_read() -> None:
    cp = load_policy()
    assert [lv.level for lv in cp.levels] == [1, 2, 3, 4]
    for lv in cp.levels:
        assert set(lv.max_validity_days) == set(CERTIFICATE_KINDS)
        assert lv.policy_oid == f"{cp.oid_arc}.{lv.level}"
        assert cp.status.ocsp.refresh_before_hours < lv.status.ocsp_validity_hours
    # Stronger levels never ask for less: identity proofing, key storage and RSA size only rise.
    ranks = [(cp.identity_method(lv.identity_proofing).rank, cp.key_storage(lv.keys.storage).rank,
              lv.keys.min_rsa_bits) for lv in cp.levels]
    assert all(a <= b for a, b in zip(ranks, ranks[1:], strict=False) for a, b in zip(a, b, strict=True))
    assert cp.level(1).software_keys_allowed and not cp.level(2).software_keys_allowed
    assert cp.crl_next_update_hours("root", None) == 8760
    assert cp.crl_next_update_hours("intermediate", 4) == 24
    assert cp.ocsp_validity_hours(None) == min(lv.status.ocsp_validity_hours for lv in cp.levels)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["levels"][1]["max_validity_days"].pop("smime"), "missing: smime"),
    (lambda d: d["levels"][0]["max_validity_days"].update({"web": 1}), "unknown: web"),
    (lambda d: d["levels"][2].update({"identity_proofing": "a-phone-call"}), "identity_proofing 'a-phone-call'"),
    (lambda d: d["levels"][3]["keys"].update({"storage": "paper"}), "keys.storage 'paper'"),
    (lambda d: d["levels"][0]["status"].update({"ocsp_validity_hours": 24}), "refresh_before_hours"),
    (lambda d: d["levels"][0].update({"colour": "blue"}), "colour"),
    (lambda d: d["levels"][3].update({"policy_oid": d["levels"][2]["policy_oid"]}), "policy_oid of its own"),
])
def test_broken_cp_is_refused_naming_the_field(tmp_path: Path, change, message: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid certificate policy") as err:
        load_policy(_write(tmp_path, change))
    assert message in str(err.value)


def test_missing_cp_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the certificate policy .*nope\.yaml"):
        load_policy(str(tmp_path / "nope.yaml"))


def test_issuance_holds_to_the_cp_validity_even_when_the_profile_allows_more(
        software_ca: CertificateAuthority, tmp_path: Path) -> None:
    def shorter(d):
        d["levels"][0]["max_validity_days"]["ssl-server"] = 90
    ca = CertificateAuthority(software_ca.record, software_ca.signer, software_ca.store, clock=software_ca.clock,
                              policy=load_policy(_write(tmp_path, shorter)))
    with pytest.raises(ProfileViolationError) as err:
        ca.issue("ssl-server", request("ssl-server", new_key().public_key(), validity_days=120))
    assert [(v.attribute, v.value) for v in err.value.violations] == [("validity", "120 days")]
    assert "at most 90 days" in err.value.violations[0].rule
    issued = ca.issue("ssl-server", request("ssl-server", new_key().public_key(), validity_days=90))
    assert (issued.certificate.not_valid_after_utc - issued.certificate.not_valid_before_utc).days == 89


def test_no_shipped_profile_promises_more_than_the_cp() -> None:
    """A profile's longest validity is within the CP at every level it can be used at, so the CP
    check in issuance only ever bites on a profile or CP the operator changed."""
    cp = load_policy()
    for prof in list_profiles():
        name = prof.name
        for lv in cp.levels:
            limit = cp.max_validity_days(lv.level, prof.name, prof.kind)
            if limit is not None and (prof.level is None or prof.level == lv.level):
                assert prof.max_validity_days <= limit, (name, lv.level)


def test_a_ca_signing_with_a_hash_its_level_does_not_allow_is_refused(tmp_path: Path) -> None:
    def sha384_only(d):
        d["levels"][0]["keys"]["hashes"] = ["sha384"]
    policy = load_policy(_write(tmp_path, sha384_only))
    store = SqliteStore(str(tmp_path / "store.sqlite3"), create=True)
    root = create_root(store, SoftwareSigner(new_key("p384")), "root", parse_subject(ROOT_SUBJECT),
                       repository_url=REPO, ocsp_url=OCSP)
    root = CertificateAuthority(root.record, root.signer, store, clock=root.clock, policy=policy)
    subject = parse_subject("C=IR,O=GICA,CN=GICA Level 1 (test)")
    with pytest.raises(IssuanceError, match=r"assurance level 1 allows signatures with sha384; .* uses sha256"):
        create_intermediate(root, SoftwareSigner(new_key("p256")), "gica1", 1, subject)
    ica = create_intermediate(root, SoftwareSigner(new_key("p256")), "gica1", 1, subject,
                              scheme=SignatureScheme(hash="sha384"))
    assert ica.record.signature.endswith("sha384") or "sha384" in ica.record.signature
