#!/usr/bin/env bash
# The iranpki demo, on the embedded defaults (SQLite store, SoftHSM2 tokens):
#   1. two SoftHSM2 tokens, "Root CA" and "GICA", with random PINs kept in the environment only;
#   2. the national root (RSA 4096 on the Root CA token) in the shape of Root CA-G3;
#   3. the General Intermediate CA, a CA certificate per assurance level 1-4 for signing, and at
#      level 2 one each for TLS, code signing and time-stamping (docs/hierarchy.md), keys on "GICA";
#      and the key-recovery key on "GICA" to which the RA archives S/MIME encryption keys;
#   4. one certificate of every end-entity profile from the level-2 intermediates, each from a
#      subscriber's CSR, and each checked with `openssl verify -x509_strict -purpose ...`;
#   5. revocation: complete and delta CRLs (the level-2 CA's in two shards), published into a
#      repository folder as the certificates' URLs say, and judged by `openssl verify -crl_check_all`;
#   6. the OCSP responder on 127.0.0.1, asked by `openssl ocsp` about a good and a revoked certificate;
#   7. a relying party's check with `iranpki verify` (chain, level, CRLs);
#   8. the time-stamp authority (key on the token), its stamp checked by `openssl ts -verify`;
#   9. a compliance review: what the level-2 CA really issued (CA certificates, one certificate of
#      each kind, its CRLs, an OCSP response from its responder) checked with the example CPS by
#      `iranpki cps check --level 2 --artifacts`, the report also as HTML;
#  10. a personal signature through a registration office: the applicant registers with curl
#      (tracking code), the officers work at the desk with `iranpki ra desk` over the RA's HTTPS
#      API (`iranpki ra serve`): receive, proof with a scan and a signed statement, the key made
#      on the applicant's SoftHSM2 token "Ali", approval by a second officer; the CA side issues
#      (`iranpki ra issue`), the certificate goes onto the token, the applicant accepts with the
#      token's key, the token is handed over, and openssl verifies the certificate;
#  11. the portals (`iranpki portal serve`): the repository's status page says the new
#      certificate is valid, and the office portal (HTTPS) recognises an officer by the token's
#      client certificate before asking for the one-time code.
# Output goes to ./demo-out (made afresh on each run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

out="$PWD/demo-out"
rm -rf "$out"
mkdir -p "$out/tokens" "$out/subscribers"
cat > "$out/softhsm2.conf" <<CONF
directories.tokendir = $out/tokens
objectstore.backend = file
log.level = ERROR
CONF
export SOFTHSM2_CONF="$out/softhsm2.conf"
# PINs live in the environment only: never in an argument list, a file or a log.
IRANPKI_PKCS11_SO_PIN="$(openssl rand -hex 12)"; export IRANPKI_PKCS11_SO_PIN
IRANPKI_PKCS11_PIN="$(openssl rand -hex 12)"; export IRANPKI_PKCS11_PIN
# The passphrase of the software keys (the registration officers' and the demo lab's).
IRANPKI_KEY_PASSPHRASE="$(openssl rand -hex 16)"; export IRANPKI_KEY_PASSPHRASE

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "tokens"
iranpki token init --label "Root CA"
iranpki token init --label "GICA"

step "workspace"
iranpki init "$out/ca" --repository-url http://repository.demo.ir --ocsp-url http://ocsp.demo.ir
export IRANPKI_HOME="$out/ca"

step "root CA (RSA 4096 on token 'Root CA')"
iranpki key generate --token "Root CA" --label root-g3 --algorithm rsa4096
iranpki ca create-root --name root --key 'pkcs11:token=Root%20CA;object=root-g3' \
  --subject 'C=IR,O=I.R.Government,OU=Root CA,CN=Islamic Republic of Iran Root CA-G3 (demo)'

step "General Intermediate CA: a CA certificate per assurance level and purpose (docs/hierarchy.md)"
intermediate() {  # name, level, purpose, key algorithm, CN, extra arguments
  local name=$1 level=$2 purpose=$3 alg=$4 cn=$5; shift 5
  iranpki key generate --token GICA --label "$name" --algorithm "$alg" >/dev/null
  iranpki ca create-intermediate --parent root --level "$level" --purpose "$purpose" --name "$name" \
    --key "pkcs11:token=GICA;object=$name" \
    --subject "C=IR,O=E-Commerce Development Center,OU=GICA,CN=$cn (demo)" --json "$@" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print("  %s: level %s, %s, serial %s" % (d["name"], d["level"], d["purpose"], d["serial"]))'
  iranpki ca export "$name" --out "$out/$name.pem"
}
algs=(p256 p384 p384 rsa3072)
for level in 1 2 3 4; do
  shards=1; [ "$level" = 2 ] && shards=2   # the level-2 CA partitions its CRL in two
  intermediate "gica$level" "$level" signing "${algs[$((level-1))]}" "General Intermediate CA Level $level" \
    --crl-shards "$shards"
done
intermediate gica2tls 2 tls p384 "General Intermediate CA Level 2 TLS"
intermediate gica2code 2 code-signing rsa3072 "General Intermediate CA Level 2 Code Signing"
intermediate gica2tsa 2 time-stamping p384 "General Intermediate CA Level 2 Time Stamping"
iranpki ca list
iranpki ca export root --out "$out/root.pem"
# The key-recovery key (key agreement only) to which the RA archives S/MIME encryption keys.
iranpki escrow init --token GICA --label key-recovery >/dev/null
iranpki escrow list
# Which level-2 CA issues which profile: the one whose purpose allows it.
declare -A ca_of=([personal-signature]=gica2 [organisational-seal]=gica2 [smime]=gica2 [smime-encryption]=gica2
                  [ocsp-signer]=gica2
                  [ssl-server]=gica2tls [code-signing]=gica2code [tsa]=gica2tsa)

step "one certificate of every end-entity profile, from the level-2 intermediates"
csr() {  # name, subject, then openssl req arguments for the key and extensions
  local name=$1 subj=$2; shift 2
  openssl req -new -utf8 -nodes -keyout "$out/subscribers/$name.key" \
    -subj "$subj" -out "$out/subscribers/$name.csr" "$@" 2>/dev/null
}
P256=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
P384=(-newkey ec -pkeyopt ec_paramgen_curve:P-384)
fail=0
declare -A serials
# OpenSSL before 3.2 has no "codesign" purpose: there, verify the chain with "any" and check
# the codeSigning EKU with openssl x509.
codesign_purpose=codesign
case "$(openssl verify -purpose codesign /dev/null 2>&1 || true)" in *"Invalid purpose"*) codesign_purpose=any ;; esac
issue() {  # profile, purpose, csr name, extra iranpki args...
  local profile=$1 purpose=$2 name=$3; shift 3
  local serial
  if [ "$purpose" = codesign ]; then purpose=$codesign_purpose; fi
  serial=$(iranpki cert issue --ca "${ca_of[$profile]}" --profile "$profile" --csr "$out/subscribers/$name.csr" \
           --out "$out/$profile.pem" --json "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["serial"])')
  serials[$profile]=$serial
  if openssl verify -x509_strict -purpose "$purpose" -CAfile "$out/root.pem" -untrusted "$out/${ca_of[$profile]}.pem" \
       "$out/$profile.pem" >/dev/null 2>"$out/$profile.verify.txt"; then
    printf '  %-20s serial %s  openssl verify -purpose %-13s OK\n' "$profile" "$serial" "$purpose"
  else
    printf '  %-20s serial %s  openssl verify -purpose %-13s FAILED\n' "$profile" "$serial" "$purpose"
    cat "$out/$profile.verify.txt"; fail=1
  fi
}
csr personal '/C=IR/SN=محمدی/GN=علی/serialNumber=0499370899/CN=علی محمدی' "${P256[@]}"
issue personal-signature smimesign personal
csr seal '/C=IR/O=شرکت نمونه/organizationIdentifier=NTRIR-10380284790/CN=مهر سازمانی شرکت نمونه' -newkey rsa:2048
issue organisational-seal smimesign seal
csr site '/C=IR/ST=Tehran/O=Example Co' "${P256[@]}" \
  -addext 'subjectAltName=DNS:www.example.ir,DNS:example.ir,IP:185.143.232.10'
issue ssl-server sslserver site
csr mail '/CN=ali@example.ir' -newkey rsa:2048 -addext 'subjectAltName=email:ali@example.ir'
issue smime smimesign mail
csr mailenc '/CN=ali@example.ir' -newkey rsa:2048 -addext 'subjectAltName=email:ali@example.ir'
issue smime-encryption smimeencrypt mailenc
csr code '/C=IR/O=Example Co/CN=Example Co Code Signing' -newkey rsa:3072
issue code-signing codesign code
openssl x509 -in "$out/code-signing.pem" -noout -ext extendedKeyUsage | grep -q "Code Signing" \
  || { echo "  code-signing: the certificate lacks the Code Signing EKU" >&2; fail=1; }
csr tsa '/C=IR/O=E-Commerce Development Center/CN=National TSA (demo)' "${P384[@]}"
issue tsa timestampsign tsa
csr ocsp '/C=IR/O=E-Commerce Development Center/CN=GICA2 OCSP (demo)' "${P256[@]}"
issue ocsp-signer ocsphelper ocsp

step "revocation: CRLs published into a repository folder, judged by openssl verify -crl_check_all"
iranpki cert revoke "${serials[ssl-server]}" --reason keyCompromise >/dev/null
iranpki crl generate --ca root
for ca in gica2 gica2tls gica2code gica2tsa; do iranpki crl generate --ca "$ca"; done
iranpki cert revoke "${serials[smime]}" --reason superseded >/dev/null
iranpki crl generate --ca gica2 --delta
iranpki crl publish --to "$out/repository"
crl_check() {  # profile, expected (good|revoked): the certificate against its own shard's CRL
  local profile=$1 expected=$2 url path got
  url=$(openssl x509 -in "$out/$profile.pem" -noout -ext crlDistributionPoints | grep -o 'http[^ ]*')
  path="$out/repository/${url#http://repository.demo.ir/}"
  { openssl crl -inform DER -in "$path"; openssl crl -inform DER -in "$out/repository/crl/root.crl"; } > "$out/crls.pem"
  if openssl verify -crl_check_all -CAfile "$out/root.pem" -untrusted "$out/${ca_of[$profile]}.pem" -CRLfile "$out/crls.pem" \
       "$out/$profile.pem" >"$out/$profile.crl-check.txt" 2>&1; then got=good; else got=revoked; fi
  if [ "$got" = revoked ] && ! grep -q "certificate revoked" "$out/$profile.crl-check.txt"; then got=error; fi
  printf '  %-20s CRL %-22s openssl: %s (expected %s)\n' "$profile" "${url##*/}" "$got" "$expected"
  [ "$got" = "$expected" ] || { cat "$out/$profile.crl-check.txt"; fail=1; }
}
crl_check personal-signature good
crl_check ssl-server revoked
crl_check tsa good

serve_bg() {  # log file, then the server command: start it, wait for "listening on URL", set $url
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  server_pids+=("$!")
  url=""
  for _ in $(seq 1 300); do  # at most 30 s (pre-produced responses are signed before it listens)
    url=$(grep -Eo 'listening on https?://[0-9.:]*' "$log" | head -1 | cut -d' ' -f3 || true)
    [ -n "$url" ] && return 0
    kill -0 "${server_pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "  the server did not start:" >&2; cat "$log" >&2; fail=1; return 1
}
server_pids=()
trap 'kill "${server_pids[@]}" 2>/dev/null || true' EXIT

step "OCSP: iranpki ocsp serve on 127.0.0.1, asked by openssl ocsp"
if serve_bg "$out/ocsp.log" iranpki ocsp serve --ca gica2 --ca gica2tls --host 127.0.0.1 --port 0 --workers 2; then
  ocsp_check() {  # profile, expected status
    local profile=$1 expected=$2 got ca=${ca_of[$1]}
    got=$(openssl ocsp -issuer "$out/$ca.pem" -cert "$out/$profile.pem" -url "$url/$ca" \
            -CAfile "$out/root.pem" -respout "$out/$profile.ocsp.der" 2>&1 | tee "$out/$profile.ocsp.txt")
    if grep -q "Response verify OK" <<<"$got" && grep -q ": $expected" <<<"$got"; then
      printf '  %-20s openssl ocsp: %-8s Response verify OK\n' "$profile" "$expected"
    else
      printf '  %-20s openssl ocsp: expected %s, got:\n%s\n' "$profile" "$expected" "$got"; fail=1
    fi
  }
  ocsp_check personal-signature good
  ocsp_check ssl-server revoked
  ocsp_check smime revoked
fi

step "a relying party: iranpki verify with the published CRLs"
{ openssl crl -inform DER -in "$out/repository/crl/root.crl"; for f in "$out"/repository/crl/gica2*.crl; do
    openssl crl -inform DER -in "$f"; done; } > "$out/all-crls.pem"
for profile in personal-signature ssl-server; do
  if iranpki verify "$out/$profile.pem" --chain "$out/${ca_of[$profile]}.pem" --crl "$out/all-crls.pem" --level 2 \
       --revocation hard-fail >"$out/$profile.verify-rp.txt" 2>&1; then got=valid; else got=invalid; fi
  printf '  %-20s iranpki verify --level 2: %s\n' "$profile" "$got"
  [ "$got" = valid ] || grep -o 'revoked on [^;]*' "$out/$profile.verify-rp.txt" | sed 's/^/    /'
done
grep -q "revoked on" "$out/ssl-server.verify-rp.txt" || { echo "  the revoked certificate was not refused" >&2; fail=1; }

step "time-stamping: iranpki tsa serve (key on token GICA), checked by openssl ts -verify"
iranpki key generate --token GICA --label tsa --algorithm p256 --pubout "$out/tsa.pub.pem" >/dev/null
iranpki cert issue --ca gica2tsa --profile tsa --public-key "$out/tsa.pub.pem" \
  --subject 'C=IR,O=E-Commerce Development Center,CN=National TSA on token (demo)' --out "$out/tsa-token.pem" --json >/dev/null
if serve_bg "$out/tsa.log" iranpki tsa serve --ca gica2tsa --key 'pkcs11:token=GICA;object=tsa' --host 127.0.0.1 \
     --port 0 --workers 2; then
  printf 'قرارداد شماره ۱۲۳\n' > "$out/contract.txt"
  iranpki tsa stamp "$out/contract.txt" --url "$url/" --trust "$out/root.pem" --out "$out/contract.tsr"
  if openssl ts -verify -data "$out/contract.txt" -in "$out/contract.tsr" -CAfile "$out/root.pem" \
       >"$out/contract.ts-verify.txt" 2>&1 && grep -q "Verification: OK" "$out/contract.ts-verify.txt"; then
    echo "  openssl ts -verify: Verification: OK"
  else
    echo "  openssl ts -verify failed:" >&2; cat "$out/contract.ts-verify.txt" >&2; fail=1
  fi
fi
kill "${server_pids[@]}" 2>/dev/null || true
wait "${server_pids[@]}" 2>/dev/null || true

step "a personal signature through a registration office (iranpki ra serve, iranpki ra desk)"
ra="$out/ra"
mkdir -p "$ra"
iranpki token init --label Ali >/dev/null   # the applicant's token, in the desk's reader
# The RA server's TLS certificate (ra.demo.ir, from the level-2 TLS CA) and the officers' client
# certificates (profile ra-officer, from gica2), their keys encrypted files at the desk.
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$ra/server.key" \
  -subj '/C=IR/ST=Tehran/O=E-Commerce Development Center' -addext 'subjectAltName=DNS:ra.demo.ir' \
  -out "$ra/server.csr" 2>/dev/null
iranpki cert issue --ca gica2tls --profile ssl-server --csr "$ra/server.csr" --out "$ra/server.pem" --json >/dev/null
cat "$out/gica2tls.pem" >> "$ra/server.pem"
cat "$out/root.pem" "$out/gica2tls.pem" > "$ra/trust.pem"
cat "$out/gica2.pem" "$out/root.pem" > "$ra/client-cas.pem"
iranpki ra office create THR-01 --name "دفتر پیشخوان تهران ۱" --city Tehran --ca gica2
officer() {  # id, role, given name, surname
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes-256-cbc -pass env:IRANPKI_KEY_PASSPHRASE \
    -out "$ra/$1.key" 2>/dev/null
  openssl req -new -key "$ra/$1.key" -passin env:IRANPKI_KEY_PASSPHRASE -subj "/CN=$1" -out "$ra/$1.csr"
  iranpki ra officer enrol "$1" --office THR-01 --name "$3 $4" --role "$2" --csr "$ra/$1.csr" --ca gica2 \
    --subject "C=IR,O=دفتر پیشخوان شماره ۱ تهران,OU=THR-01,title=Registration Officer,SN=$4,GN=$3,serialNumber=$5,CN=$3 $4" \
    --out "$ra/$1.pem"
}
officer p1 proofing رضا احمدی 0012345679
officer a1 approving مریم کریمی 0067749828
# Only a lab-approved token model takes a key at the desk. SoftHSM2 fails the real suite, so the
# demo's laboratory records a DEMO approval of it (examples/_demo_device_approval.py says why).
openssl req -new -utf8 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$ra/lab.plain.key" \
  -subj '/C=IR/O=آزمایشگاه نمایشی/organizationIdentifier=NTRIR-10380284790/CN=مهر آزمایشگاه نمایشی' \
  -out "$ra/lab.csr" 2>/dev/null
openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$ra/lab.plain.key" -passout env:IRANPKI_KEY_PASSPHRASE -out "$ra/lab.key"
rm -f "$ra/lab.plain.key"
iranpki cert issue --ca gica2 --profile organisational-seal --csr "$ra/lab.csr" --out "$ra/lab.pem" --json >/dev/null
python3 examples/_demo_device_approval.py --token Ali --lab-key "$ra/lab.key" --lab-cert "$ra/lab.pem" \
  --chain "$out/gica2.pem" --out "$ra/approval.p7m"
iranpki ra device approve "$ra/approval.p7m" --trust "$out/root.pem" --chain "$out/gica2.pem"
if serve_bg "$out/ra.log" iranpki ra serve --host 127.0.0.1 --port 0 --certificate "$ra/server.pem" \
     --key "$ra/server.key" --client-ca "$ra/client-cas.pem" --threads 4; then
  port=${url##*:}; port=${port%%/*}
  export IRANPKI_RA_URL="https://127.0.0.1:$port" IRANPKI_RA_TRUST="$ra/trust.pem" IRANPKI_RA_SERVER_NAME=ra.demo.ir
  as() { local who=$1; shift; IRANPKI_RA_CERT="$ra/$who.pem" IRANPKI_RA_KEY="$ra/$who.key" iranpki ra desk "$@"; }
  # The applicant registers online (curl, an independent client) and keeps the tracking code.
  curl -sS --fail-with-body --cacert "$ra/trust.pem" --resolve "ra.demo.ir:$port:127.0.0.1" \
    -H 'Content-Type: application/json' "https://ra.demo.ir:$port/api/ra/requests" -o "$ra/registered.json" \
    --data '{"profile": "personal-signature", "level": 2, "ca": "gica2", "key_location": "desk-token",
             "applicant": {"national_code": "0499370899", "given_name": "علی", "surname": "محمدی"},
             "subject": "C=IR,SN=محمدی,GN=علی,serialNumber=0499370899,CN=علی محمدی"}'
  code=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tracking_code"])' "$ra/registered.json")
  echo "  registered; tracking code $code"
  # At the office: receive, proof, key on the token, approval by another officer.
  export IRANPKI_RA_TRACKING_CODE="$code"   # the applicant's credential: never an argument
  id=$(as p1 receive --national-code 0499370899 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  python3 -c 'import sys, zlib, struct
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)) \
      + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)' "$ra/id-card.png"
  as p1 proof "$id" --method in-person-two-documents --document "national-id-card:0499370899:$ra/id-card.png" \
    --statement "کارت ملی اصل با چهره متقاضی تطبیق داده شد" >/dev/null
  as p1 key "$id" --token Ali --label signature --json >/dev/null
  as a1 approve "$id" --json >/dev/null
  echo "  request $id: received, proofed, key made on token Ali, approved"
  iranpki ra issue   # the CA side, where the CA keys are: never the web process
  as p1 certificate "$id" --token Ali --label signature --out "$ra/ali.pem"
  as p1 accept "$id" --national-code 0499370899 --key 'pkcs11:token=Ali;object=signature' \
    --json >/dev/null
  as p1 hand-over "$id" --token Ali --json >/dev/null
  iranpki ra requests --state accepted
  if openssl verify -x509_strict -purpose smimesign -CAfile "$out/root.pem" -untrusted "$out/gica2.pem" "$ra/ali.pem" \
       >"$ra/verify.txt" 2>&1; then
    echo "  personal signature on token Ali: openssl verify OK; accepted with the token's key; handed over"
  else
    echo "  the personal signature failed openssl verify:" >&2; cat "$ra/verify.txt" >&2; fail=1
  fi
fi
kill "${server_pids[@]}" 2>/dev/null || true
wait "${server_pids[@]}" 2>/dev/null || true

step "the portals: the public repository and the applicant's (HTTP), the office's and the laboratory's (HTTPS)"
if [ -s "$ra/ali.pem" ] && serve_bg "$out/portals.log" iranpki portal serve --portal repository --portal applicant \
     --host 127.0.0.1 --port 0 --threads 4; then
  serial=$(openssl x509 -in "$ra/ali.pem" -noout -serial | cut -d= -f2)
  if curl -sS --fail "$url/status?serial=$serial&lang=en" | grep -q 'data-status="valid"'; then
    echo "  $url/status: Ali's certificate $serial is valid"
  else
    echo "  the repository's status page did not say valid for $serial" >&2; fail=1
  fi
  if serve_bg "$out/office.log" iranpki portal serve --portal office --portal lab --host 127.0.0.1 --port 0 \
       --certificate "$ra/server.pem" --key "$ra/server.key" --client-ca "$ra/client-cas.pem" --threads 4; then
    port=${url##*:}; port=${port%%/*}
    # Officer p1's browser: the client certificate, then a one-time code (enrolled here, made by oathtool).
    iranpki ra officer codes p1 --out "$ra/p1.otpauth" >/dev/null
    page=$(curl -sS --cacert "$ra/trust.pem" --resolve "ra.demo.ir:$port:127.0.0.1" --cert "$ra/p1.pem" \
             --key "$ra/p1.key" --pass "$IRANPKI_KEY_PASSPHRASE" "https://ra.demo.ir:$port/office/sign-in?lang=en")
    if grep -q '<strong id="officer" dir="ltr">p1</strong>' <<<"$page"; then
      echo "  https://ra.demo.ir:$port/office/: officer p1 recognised by the token certificate; next, the one-time code"
      echo "  (its authenticator URI is in $ra/p1.otpauth; oathtool --totp -b SECRET prints the code)"
    else
      echo "  the office portal did not recognise officer p1's certificate" >&2; fail=1
    fi
    echo "  (the portals stop with the demo: iranpki portal serve starts them, as docs/portals.md shows)"
  fi
fi
kill "${server_pids[@]}" 2>/dev/null || true
wait "${server_pids[@]}" 2>/dev/null || true

step "CPS review: what the level-2 CAs issued, against the example CPS (iranpki cps check --level 2)"
# The folder the General CA hands to the Root CA's reviewers: its level-2 CA certificates and the
# root, one certificate of each kind they issued above, their published CRLs (the signing CA's
# two shards, complete and delta; the root's ARL) and an OCSP response its own responder gave
# (saved by openssl ocsp -respout).
arts="$out/cps-artefacts"
mkdir -p "$arts"
cp "$out/root.pem" "$arts/root-ca.pem"
for ca in gica2 gica2tls gica2code gica2tsa; do cp "$out/$ca.pem" "$arts/$ca-ca.pem"; done
for profile in "${!serials[@]}"; do cp "$out/$profile.pem" "$arts/$profile.pem"; done
cp "$out"/repository/crl/gica2*.crl "$out/repository/crl/root.crl" "$arts/"
if [ -f "$out/personal-signature.ocsp.der" ]; then
  cp "$out/personal-signature.ocsp.der" "$arts/personal-signature.ocsp"
else
  echo "  no OCSP response was saved (see the OCSP step)" >&2; fail=1
fi
cps=policies/examples/general-intermediate-ca-cps.md
iranpki cps check "$cps" --level 2 --artifacts "$arts" --format html --out "$out/cps-report.html" || true
if iranpki cps check "$cps" --level 2 --artifacts "$arts"; then
  echo "  report: $out/cps-report.html"
else
  echo "  cps check: the level-2 CA's artefacts break its CPS or the national CP (see above)" >&2; fail=1
fi

step "the store"
iranpki cert list
step "keys on the tokens stay sensitive and never extractable (pkcs11-tool)"
pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label "Root CA" --login --pin env:IRANPKI_PKCS11_PIN \
  --list-objects --type privkey 2>/dev/null | grep -E 'label|Access'

if [ "$fail" -ne 0 ]; then
  echo "demo: a check failed (see above)" >&2
  exit 1
fi
echo
echo "demo: done. Everything is in $out (workspace: $out/ca, certificates: $out/*.pem)."
