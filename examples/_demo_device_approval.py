"""For the demo only: a DEMO approval of the SoftHSM2 token model, so that the registration
office's desk takes a key on a SoftHSM2 token.

The RA takes keys at the desk only on a token of a model the lab approved (an approval that
`iranpki conformance approve` makes from a passing report). SoftHSM2 is not approvable: the real
suite fails it (FUNC-LOGIN-LOGOUT: a second C_Logout returns CKR_OK). This script therefore
writes a report that runs nothing, says so in its tool name and in every case's detail, and has
the demo's laboratory (a key and certificate the demo made) sign an approval over it. Never use
it outside the demo: the approval it makes proves nothing about the token.

    python examples/_demo_device_approval.py --token Ali --lab-key lab.key --lab-cert lab.pem \\
        --chain gica2.pem --out approval.p7m          # passphrase of lab.key: IRANPKI_KEY_PASSPHRASE
"""

from __future__ import annotations

import argparse
import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path

from iranpki.conformance import REGISTRY, CaseResult, DeviceIdentity, Report, Verdict
from iranpki.conformance.attestation import approve
from iranpki.conformance.required import required_cases
from iranpki.conformance.runner import load_cases
from iranpki.keys import SecretSource, open_signer
from iranpki.keys.pkcs11 import list_tokens, module_path

NOTE = "DEMO ONLY: not run; SoftHSM2 fails FUNC-LOGIN-LOGOUT in the real suite and is not approvable"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--token", required=True)
    parser.add_argument("--lab-key", required=True)
    parser.add_argument("--lab-cert", required=True)
    parser.add_argument("--chain", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    [token] = [t for t in list_tokens() if t.label == args.token]
    module = module_path(None)
    device = DeviceIdentity(
        library_manufacturer="SoftHSM", library_description="Implementation of PKCS11", library_version="2",
        cryptoki_version="2.40", slot_description=f"slot {token.slot}", token_label=token.label,
        token_manufacturer=token.manufacturer.strip(), token_model=token.model.strip(), token_serial=token.serial.strip(),
        firmware_version="2", hardware_version="2", token_flags=(), mechanisms=(), module_path=module,
        module_sha256=hashlib.sha256(Path(module).read_bytes()).hexdigest())
    load_cases()
    now = datetime.now(timezone.utc)
    results = [CaseResult(case_id, REGISTRY[case_id].category, "not run", "not run", Verdict.PASS, NOTE)
               for case_id in required_cases("usb-token", REGISTRY)]
    categories = sorted({r.category for r in results} | {"functional", "security", "stability", "performance"})
    for category in categories:  # every category appears, as in a full run
        if not any(r.category == category for r in results):
            results.append(CaseResult(f"DEMO-{category.upper()}", category, "not run", "not run", Verdict.PASS, NOTE))
    report = Report(tool="iranpki demo: NO CONFORMANCE RUN (a demo approval, proves nothing)", started_at=now,
                    finished_at=now, device=device, results=results,
                    settings={"categories": categories, "device_class": "usb-token", "demo": NOTE})
    signer = open_signer(args.lab_key, SecretSource(env="IRANPKI_KEY_PASSPHRASE", what="passphrase"))
    data = approve(report.to_json().encode("utf-8"), signer, Path(args.lab_cert).read_bytes(),
                   [Path(args.chain).read_bytes()], valid_days=30, approval_id="demo-" + os.urandom(4).hex())
    Path(args.out).write_bytes(data)
    print(f"  a DEMO approval of {device.token_manufacturer} {device.token_model} (no conformance run): {args.out}")


if __name__ == "__main__":
    main()
