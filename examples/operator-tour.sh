#!/usr/bin/env bash
# The README's "Using the command" block as a script: the lines between the two markers below
# are exactly that block (tests/test_docs.py checks it), and tests/test_docs.py runs this script
# on a fresh folder, so the README cannot drift from what runs.
#
#   bash examples/operator-tour.sh [FOLDER]      (default: a new temporary folder)
#
# Around the block is only what a reader's machine has already: iranpki on the PATH, a SoftHSM2
# token folder of its own, and a PDF to sign. It listens on 127.0.0.1:8080 and :3161; the test
# runs it in a network namespace of its own, where those ports are free.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$repo/.venv/bin:$PATH"
work="${1:-$(mktemp -d)}"
mkdir -p "$work/tokens"
cd "$work"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$work" > softhsm2.conf
export SOFTHSM2_CONF="$work/softhsm2.conf"
python3 - <<'PDF'
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PdfFileWriter

w = PdfFileWriter()
content = w.add_object(generic.StreamObject(stream_data=b"BT /F1 14 Tf 72 770 Td (A contract) Tj ET"))
w.insert_page(generic.DictionaryObject({
    generic.NameObject("/Type"): generic.NameObject("/Page"),
    generic.NameObject("/MediaBox"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)]),
    generic.NameObject("/Contents"): content, generic.NameObject("/Resources"): generic.DictionaryObject()}))
with open("contract.pdf", "wb") as f:
    w.write(f)
PDF
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

# --- README begin ---
export IRANPKI_PKCS11_SO_PIN=$(openssl rand -hex 12) IRANPKI_PKCS11_PIN=$(openssl rand -hex 12)  # never an argument
iranpki token init --label "Root CA"
iranpki token init --label TSA
iranpki token init --label Ali                    # the applicant's token, at the registration office
iranpki init ./ca --repository-url http://repository.example.ir --ocsp-url http://127.0.0.1:8080
export IRANPKI_HOME=./ca
iranpki key generate --token "Root CA" --label root-g3 --algorithm rsa4096
iranpki ca create-root --name root --key 'pkcs11:token=Root%20CA;object=root-g3' \
    --subject 'C=IR,O=I.R.Government,OU=Root CA,CN=Islamic Republic of Iran Root CA-G3'
for p in tls signing time-stamping; do        # one CA certificate per purpose (docs/hierarchy.md)
  iranpki key generate --token "Root CA" --label "gica2-$p" --algorithm p384
  iranpki ca create-intermediate --parent root --level 2 --purpose "$p" --name "gica2-$p" \
      --key "pkcs11:token=Root%20CA;object=gica2-$p" --subject "C=IR,O=ECDC,CN=General Intermediate CA Level 2 $p"
  iranpki ca export "gica2-$p" --out "gica2-$p.pem"
done
iranpki ca export root --out root.pem
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout site.key \
    -subj '/C=IR/ST=Tehran/O=Example Co/CN=www.example.ir' -out site.csr     # the applicant's CSR
iranpki cert issue --ca gica2-tls --profile ssl-server --csr site.csr --out site.pem
iranpki key generate --token Ali --label sign --algorithm p256 --pubout ali.pub
iranpki cert issue --ca gica2-signing --profile personal-signature --public-key ali.pub --out ali.pem \
    --subject 'C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی'
iranpki cert list                                 # rich table, dates in Gregorian and Jalali
iranpki crl generate --ca gica2-tls && iranpki crl publish --to ./repository   # RFC 5280, streamed
iranpki verify site.pem --purpose server --level 2 --crl repository/crl/gica2-tls.crl   # a relying party
iranpki cert revoke site.pem --reason keyCompromise --json
iranpki ocsp serve --ca gica2-tls --port 8080 2> ocsp.log & ocsp=$!   # RFC 6960 / RFC 9919, on 127.0.0.1
until grep -q listening ocsp.log; do sleep 0.2; done
openssl ocsp -issuer gica2-tls.pem -cert site.pem -url http://127.0.0.1:8080/gica2-tls -CAfile root.pem  # revoked
iranpki key generate --token TSA --label tsa1 --algorithm p256 --pubout tsa1.pub
iranpki cert issue --ca gica2-time-stamping --profile tsa --public-key tsa1.pub --subject 'C=IR,O=ECDC,CN=GICA TSA 1'
iranpki tsa serve --ca gica2-time-stamping --key 'pkcs11:token=TSA;object=tsa1' --port 3161 2> tsa.log & tsa=$!
until grep -q listening tsa.log; do sleep 0.2; done
iranpki tsa stamp contract.pdf --url http://127.0.0.1:3161/       # RFC 3161, checked as `verify` does
iranpki sign pdf contract.pdf --out signed.pdf --key 'pkcs11:token=Ali;object=sign' --cert ali.pem \
    --chain gica2-signing.pem --level B-T --tsa http://127.0.0.1:3161/    # PAdES; also sign cms|mail|pe
iranpki verify signed.pdf
kill $ocsp $tsa
# --- README end ---
echo "operator tour: done in $work"
