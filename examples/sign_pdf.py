"""Sign a PDF as PAdES B-B and B-LT with the library, and validate it with pyHanko.

    .venv/bin/python examples/sign_pdf.py [--tsa http://127.0.0.1:PORT/]

The key here is a software key; a key on a token works the same way:
``iranpki.keys.open_signer("pkcs11:token=Ali;object=sign")`` (PIN from IRANPKI_PKCS11_PIN).
B-LT needs a time-stamp: give our TSA's URL (`iranpki tsa serve`), or the example runs our
time-stamp authority in this process.
"""

from __future__ import annotations

import argparse
import io

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PdfFileWriter

from _throwaway_pki import throwaway_pki
from iranpki import signing


def a_pdf(text: str) -> bytes:
    """A one-page PDF written with pyHanko's writer (any PDF will do)."""
    w = PdfFileWriter()
    content = w.add_object(generic.StreamObject(stream_data=f"BT /F1 14 Tf 72 770 Td ({text}) Tj ET".encode()))
    w.insert_page(generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)]),
        generic.NameObject("/Contents"): content, generic.NameObject("/Resources"): generic.DictionaryObject()}))
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


parser = argparse.ArgumentParser()
parser.add_argument("--tsa", help="URL of an RFC 3161 time-stamping service")
args = parser.parse_args()

pki = throwaway_pki()
signer, cert = pki.subscriber("personal-signature", "C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی")
pdf = a_pdf("Contract 1405/123")

signed = signing.sign_pdf(pdf, signer, cert, chain=pki.chain, reason="Approved")
for r in signing.verify_pdf(signed, [pki.root_pem]):
    print(f"B-B  {r.field_name}: ok={r.ok} intact={r.intact} trusted={r.trusted} coverage={r.coverage}")
    assert r.ok

stamper = None if args.tsa else pki.local_timestamper()
lt = signing.sign_pdf(pdf, signer, cert, chain=pki.chain, level="B-LT", tsa_url=args.tsa, timestamper=stamper,
                      trust_roots=[pki.root_pem], crls=pki.crls())
for r in signing.verify_pdf(lt, [pki.root_pem], ltv=True):  # from the document alone
    print(f"B-LT {r.field_name}: ok={r.ok} level={r.level} time-stamp={r.timestamp}")
    assert r.ok and r.level == "B-LT"

forged = signed.replace(b"Contract 1405/123", b"Contract 1405/999")
r = signing.verify_pdf(forged, [pki.root_pem])[0]
print(f"forged: ok={r.ok} problems={r.problems}")
assert not r.ok
(pki.folder / "signed.pdf").write_bytes(lt)
print(f"ok: wrote {pki.folder / 'signed.pdf'}")
