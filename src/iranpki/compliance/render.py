"""The national CP written out as an RFC 3647 document in Markdown (``iranpki cps render``).

Every heading of the RFC 3647 section 6 outline (:data:`.outline.OUTLINE`) appears once, in
order, at the depth its number gives. The CP's values stand in the sections RFC 3647 gives them,
in the shapes the CPS compliance checker reads (tables with a "Level" column, durations as a
number and a unit): 1.2 name, version and policy OIDs; 3.2.3 identity proofing; 4.9.5, 4.9.7,
4.9.8 and 4.9.10 revocation and status freshness; 4.12.1 and 6.2.3 key escrow; 5.4.3, 5.5.2 and 8.1 records and audits;
6.1.5 keys; 6.2.1 key storage; 6.3.2 validity; 6.8 time-stamping; 7.1.3 algorithms; 7.1.6
policy OIDs. Each value names its source. Sections where the CP sets nothing say "No
stipulation." where RFC 3647 allows it (see :mod:`.outline`), and otherwise that each intermediate
CA states its practice in its CPS. The result passes :func:`.structure.check_structure` with no
error or warning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..policy import CertificatePolicy
from .outline import OUTLINE

__all__ = ["KIND_NAMES", "render_cp"]

#: How a CPS names each kind of certificate of the CP (``iranpki.policy.CERTIFICATE_KINDS``).
KIND_NAMES: dict[str, str] = {
    "intermediate": "CA certificate",
    "personal-signature": "Personal signature",
    "organisational-seal": "Organisational seal",
    "ssl-server": "SSL/TLS server",
    "smime": "S/MIME",
    "code-signing": "Code signing",
    "tsa": "Time-stamping (TSA)",
    "ocsp-signer": "OCSP signer",
    "ra-officer": "Registration officer",
}

_HASH_ALGORITHMS = {
    "sha256": ("sha256WithRSAEncryption", "RSASSA-PSS with SHA-256", "ecdsa-with-SHA256"),
    "sha384": ("sha384WithRSAEncryption", "RSASSA-PSS with SHA-384", "ecdsa-with-SHA384"),
    "sha512": ("sha512WithRSAEncryption", "RSASSA-PSS with SHA-512", "ecdsa-with-SHA512"),
}


def _levels_label(levels: Sequence[int]) -> str:
    return str(levels[0]) if len(levels) == 1 else f"{levels[0]}-{levels[-1]}"


def _by_level(cp: CertificatePolicy, value: Callable[[int], str]) -> list[tuple[str, str]]:
    """(levels, value) rows, consecutive levels with the same value in one row ("1-3", "4")."""
    rows: list[tuple[list[int], str]] = []
    for lv in cp.levels:
        v = value(lv.level)
        if rows and rows[-1][1] == v and rows[-1][0][-1] == lv.level - 1:
            rows[-1][0].append(lv.level)
        else:
            rows.append(([lv.level], v))
    return [(_levels_label(levels), v) for levels, v in rows]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|", *(line(r) for r in rows)])


def _level_table(cp: CertificatePolicy, column: str, value: Callable[[int], str]) -> str:
    return _table(["Level", column], [list(r) for r in _by_level(cp, value)])


def _level_sources(cp: CertificatePolicy) -> str:
    return "Source: " + "; ".join(f"level {lv.level}: {lv.source}" for lv in cp.levels) + "."


def _valued(cp: CertificatePolicy, intro: str, column: str, value: Callable[[int], str],
            after: str | None = None) -> str:
    """A sentence, a table of one value per level, and where the values come from."""
    return "\n\n".join([intro, _level_table(cp, column, value), after if after is not None else _level_sources(cp)])


def _s_1_1(cp: CertificatePolicy) -> str:
    return (f"This document is the {cp.name}, version {cp.version}. It sets the requirements that the "
            "Government Root CA and every licensed intermediate CA of Iran's national public key "
            "infrastructure meet at assurance levels 1 to 4. Each intermediate CA's CPS follows the "
            "same RFC 3647 outline and is reviewed against this document before licensing and at "
            "every compliance audit.")


def _s_1_2(cp: CertificatePolicy) -> str:
    rows = [[str(lv.level), lv.name, lv.policy_oid] for lv in cp.levels]
    return "\n\n".join([
        f"Name: {cp.name}.\n\nVersion: {cp.version}.",
        "Each assurance level has a policy object identifier of its own:",
        _table(["Level", "Name", "Policy OID"], rows),
        f"The OIDs are under the arc {cp.oid_arc}. Source: {cp.oid_source}.",
    ])


def _s_3_2_3(cp: CertificatePolicy) -> str:
    return _valued(cp, "The identity of an individual applicant is proven at least as follows; a stronger method "
                   "(a later row of the list of methods) is accepted at any level.", "Identity proofing",
                   lambda n: cp.identity_method(cp.level(n).identity_proofing).text)


def _s_4_9_5(cp: CertificatePolicy) -> str:
    return _valued(cp, "The CA revokes a certificate within the following time of a verified revocation request:",
                   "Revocation processing", lambda n: f"within {cp.level(n).status.revocation_processing_hours} hours")


def _s_4_9_7(cp: CertificatePolicy) -> str:
    rows = _by_level(cp, lambda n: f"{cp.level(n).status.crl_next_update_hours} hours|"
                                   f"within {cp.level(n).status.crl_publish_within_hours} hours")
    return "\n\n".join([
        "A CA of each level issues complete CRLs with nextUpdate at most the following time after "
        "thisUpdate, issues a new CRL before the nextUpdate of the previous one, and issues a new "
        "CRL within the following time of a revocation:",
        _table(["Level", "CRL nextUpdate at most", "New CRL after a revocation"],
               [[lv, *v.split("|")] for lv, v in rows]),
        f"Delta CRLs, where issued, have nextUpdate at most {cp.status.crl.delta_next_update_hours} hours "
        f"after thisUpdate. Source: {cp.status.crl.source}.",
        f"The Government Root CA's own CRL, which lists CA certificates, has nextUpdate at most "
        f"{cp.root.crl_next_update_hours} hours after thisUpdate. Source: {cp.root.source}.",
    ])


def _s_4_9_8(cp: CertificatePolicy) -> str:
    return _valued(cp, "A CRL that lists a revocation is published in the repository within the following time "
                   "of the revocation:", "Maximum latency",
                   lambda n: f"within {cp.level(n).status.crl_publish_within_hours} hours",
                   f"Source: {cp.status.crl.source}.")


def _s_4_9_9(cp: CertificatePolicy) -> str:
    return ("Every CA operates an OCSP responder (RFC 6960) for the certificates it issues, available "
            "to relying parties at all times, besides its CRLs.")


def _s_4_9_10(cp: CertificatePolicy) -> str:
    o = cp.status.ocsp
    return _valued(cp, "An OCSP response is valid (nextUpdate after thisUpdate) for at most:", "OCSP response validity",
                   lambda n: f"at most {cp.level(n).status.ocsp_validity_hours} hours",
                   f"Pre-produced responses are signed again at least {o.refresh_before_hours} hours before their "
                   f"nextUpdate. A delegated responder certificate is valid for at most {o.delegated_responder_days} "
                   f"days and is replaced {o.renew_responder_before_days} days before it expires. Source: {o.source}.")


def _s_5_4_3(cp: CertificatePolicy) -> str:
    return _valued(cp, "Audit logs are kept for at least:", "Audit log retention",
                   lambda n: f"{cp.level(n).records.audit_log_retention_years} years")


def _s_5_5_2(cp: CertificatePolicy) -> str:
    return _valued(cp, "Archived records are kept for at least:", "Archive retention",
                   lambda n: f"{cp.level(n).records.archive_retention_years} years")


def _s_6_1_5(cp: CertificatePolicy) -> str:
    rsa = _by_level(cp, lambda n: f"{cp.level(n).keys.min_rsa_bits} bits")
    ec = _by_level(cp, lambda n: ", ".join(cp.level(n).keys.ec_curves))
    rows = [[lv, "RSA", v] for lv, v in rsa] + [[lv, "ECDSA", v] for lv, v in ec]
    return "\n\n".join([
        "Keys of certificates of each level, and of the CAs that issue them, are at least:",
        _table(["Level", "Algorithm", "Minimum size / curves"], rows),
        _level_sources(cp),
    ])


def _s_6_2_1(cp: CertificatePolicy) -> str:
    return _valued(cp, "Subscriber private keys are kept at least as follows; a better protected store is accepted "
                   "at any level. CA private keys are kept in a lab-approved hardware security module at every "
                   "level.", "Key storage", lambda n: cp.key_storage(cp.level(n).keys.storage).text)


def _s_6_3_2(cp: CertificatePolicy) -> str:
    rows = []
    for kind, name in KIND_NAMES.items():
        for lv, v in _by_level(cp, lambda n, k=kind: f"{cp.level(n).max_validity_days[k]} days"):
            rows.append([name, lv, v])
    return "\n\n".join([
        "Certificates are valid for at most the following periods; a key pair is used only while its "
        "certificate is valid.",
        _table(["Certificate", "Level", "Maximum validity"], rows),
        _level_sources(cp),
        f"The Government Root CA's own certificate is valid for at most {cp.root.max_validity_days} days. "
        f"Source: {cp.root.source}.",
    ])


def _s_6_8(cp: CertificatePolicy) -> str:
    t = cp.status.tsa
    return (f"Time-stamp tokens (RFC 3161) carry the time-stamping policy {t.policy_oid}, state an "
            f"accuracy of {t.accuracy_ms} milliseconds or better, and accept message imprints of "
            f"{', '.join(h.upper() for h in t.hashes)}. Source: {t.source}.")


def _s_7_1_3(cp: CertificatePolicy) -> str:
    return _valued(cp, "Certificates, CRLs and OCSP responses are signed with one of the following algorithms; no "
                   "other signature algorithm is allowed.", "Signature algorithms",
                   lambda n: ", ".join(a for h in cp.level(n).keys.hashes for a in _HASH_ALGORITHMS[h]))


def _s_7_1_6(cp: CertificatePolicy) -> str:
    return _valued(cp, "Each certificate names the policy OID of its assurance level in its certificatePolicies "
                   "extension:", "Policy OID", lambda n: cp.level(n).policy_oid, f"Source: {cp.oid_source}.")


def _s_8_1(cp: CertificatePolicy) -> str:
    return _valued(cp, "The Root CA audits each intermediate CA's compliance with this CP and its CPS at least once "
                   "every:", "Compliance audit", lambda n: f"{cp.level(n).records.compliance_audit_months} months",
                   "An audit also follows any change of the CA's ownership, key ceremony or site. "
                   + _level_sources(cp))

def _s_4_12_1(cp: CertificatePolicy) -> str:
    r = cp.key_recovery
    if r is None:
        return "No subscriber private key is escrowed."
    return (f"{r.text[:1].upper()}{r.text[1:]}. The keys of {', '.join(r.profiles)} certificates, which allow "
            "encryption only, are archived when the registration authority makes them, encrypted to a key-recovery "
            "key held on the CA's hardware security module, before the certificate is issued; a key whose "
            "certificate allows signatures is never archived. A recovery is asked for by the subscriber, proofed "
            f"at least by {cp.identity_method(r.proofing).text}, approved by {r.approvals} registration officers "
            "other than the one who proofed, audit logged, and returns the key to the subscriber alone, under a "
            f"passphrase they chose. Source: {r.source}.")


def _s_6_2_3(cp: CertificatePolicy) -> str:
    r = cp.key_recovery
    if r is None:
        return "No private key is escrowed."
    return (f"CA private keys are never escrowed. Subscribers' encryption keys of {', '.join(r.profiles)} "
            "certificates are escrowed as section 4.12.1 states; signature keys never are.")


def _s_1_3_1(cp: CertificatePolicy) -> str:
    purposes = "; ".join(f"**{p.id}**, for {p.text}: extended key usage {', '.join(p.extended_key_usage)}, "
                         f"issuing {', '.join(p.issues)}" for p in cp.ca_purposes)
    return ("The Government Root CA issues, renews and revokes the certificates of intermediate CAs, a "
            "separate CA certificate per assurance level and per purpose. Each CA certificate carries its "
            "purpose's extended key usages and issues only the certificates they allow, and the OCSP signer "
            f"certificate of its own responder: {purposes}. Licensed intermediate CAs issue certificates "
            "to subscribers; a government intermediate CA may license subordinate CAs inside its sector.")


_FIXED: dict[str, str] = {
    "1.3.2": "Registration offices identify applicants, check their data and prepare requests for "
             "issuance, revocation, renewal and re-key on behalf of an intermediate CA.",
    "1.3.3": "Natural persons, organisations and servers that hold certificates of the national PKI.",
    "1.3.4": "Anyone who relies on a certificate of the national PKI, including PKE applications.",
    "1.4.1": "Personal signature, organisational seal, SSL/TLS server, S/MIME, code signing, "
             "time-stamping and OCSP signer certificates, each for the uses its profile allows.",
    "1.5.1": "The Certificate Policy Council approves this CP and its amendments.",
    "1.5.2": "The E-Commerce Development Center, operator of the Government Root CA.",
    "1.5.3": "The Government Root CA reviews each intermediate CA's CPS against this CP.",
    "1.5.4": "The Government Root CA approves a CPS after review; the Council licenses the CA.",
    "2.1": "The Government Root CA and every intermediate CA keep an online repository of their "
           "certificates, CRLs, CP and CPS.",
}

_SECTIONS: dict[str, Callable[[CertificatePolicy], str]] = {
    "1.1": _s_1_1, "1.2": _s_1_2, "1.3.1": _s_1_3_1, "3.2.3": _s_3_2_3, "4.9.5": _s_4_9_5, "4.9.7": _s_4_9_7,
    "4.9.8": _s_4_9_8, "4.9.9": _s_4_9_9, "4.9.10": _s_4_9_10, "4.12.1": _s_4_12_1, "5.4.3": _s_5_4_3,
    "5.5.2": _s_5_5_2, "6.1.5": _s_6_1_5, "6.2.1": _s_6_2_1, "6.2.3": _s_6_2_3, "6.3.2": _s_6_3_2, "6.8": _s_6_8, "7.1.3": _s_7_1_3,
    "7.1.6": _s_7_1_6, "8.1": _s_8_1,
}

_STATE_PRACTICE = ("Each intermediate CA states its practice here in its CPS; the Government Root CA "
                   "reviews it before licensing and at every compliance audit.")



def render_cp(policy: CertificatePolicy) -> str:
    """``policy`` as a Markdown document with every RFC 3647 section 6 heading, in order."""
    numbers = [h.number for h in OUTLINE]
    parts = [f"# {policy.name}", f"Version {policy.version}. Written out from the national CP data "
             "(policies/national-cp.yaml) by iranpki; the RFC 3647 outline follows."]
    for h in OUTLINE:
        parts.append(f"{'#' * h.depth} {h.number}. {h.title}" if h.depth == 1 else f"{'#' * h.depth} {h.number} {h.title}")
        if h.number in _SECTIONS:
            parts.append(_SECTIONS[h.number](policy))
        elif h.number in _FIXED:
            parts.append(_FIXED[h.number])
        elif any(n.startswith(h.number + ".") for n in numbers):
            continue  # a heading with sub-sections: the sub-sections say it
        elif h.stipulation_required:
            parts.append(_STATE_PRACTICE)
        else:
            parts.append("No stipulation.")
    return "\n\n".join(parts) + "\n"
