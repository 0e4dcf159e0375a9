#!/usr/bin/env bash
# Install what iranpki needs on a fresh Debian machine (run as root), then a virtualenv in
# .venv with iranpki and its test tools. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v softhsm2-util >/dev/null || need_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null || need_apt+=(opensc)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v osslsigncode >/dev/null || need_apt+=(osslsigncode)
# wrk: the HTTP load generator of benchmarks/ocsp.py (closed loop, p50/p99 latency).
command -v wrk >/dev/null || need_apt+=(wrk)
# gcc: the conformance suite's fault shim (tests/shim) is C, compiled by the tests: the proof that
# the suite fails a faulty device must run, never skip.
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev)
# ip and unshare: tests run servers in network namespaces of their own (the README's tour).
command -v ip >/dev/null || need_apt+=(iproute2)
command -v unshare >/dev/null || need_apt+=(util-linux)
# chromium: the reports are looked at in a real browser (Playwright drives Debian's Chromium;
# browsers cannot be downloaded here).
command -v chromium >/dev/null || need_apt+=(chromium)
# NSS certutil and GnuTLS certtool: relying-party software nobody here wrote, judging the chains.
command -v certutil >/dev/null || need_apt+=(libnss3-tools)
command -v certtool >/dev/null || need_apt+=(gnutls-bin)
# oathtool: an independent maker of the one-time codes (RFC 6238) officers log in to the office portal with.
command -v oathtool >/dev/null || need_apt+=(oathtool)
# PostgreSQL's server: the tests start a private cluster of it (tests/conftest.py), never the system's.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# OpenLDAP's server and clients: the tests start a private slapd (tests/test_ldap.py), never the system's.
[ -x /usr/sbin/slapd ] || need_apt+=(slapd)
command -v ldapsearch >/dev/null || need_apt+=(ldap-utils)
# openCryptoki: the second PKCS#11 module the conformance suite is tried on (its software token,
# run by the tests on a private pkcsslotd; the machine's own openCryptoki is never started).
[ -x /usr/sbin/pkcsslotd ] && compgen -G '/usr/lib/*/opencryptoki/libopencryptoki.so.0' >/dev/null \
  || need_apt+=(opencryptoki libopencryptoki0)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: iranpki needs Python 3.11 or newer; this is {sys.version.split()[0]}")
PY

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  python3 -m venv .venv
fi
stamp=.venv/.iranpki-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing iranpki and its test tools into .venv" >&2
  # Quiet: pip's own notices about this machine's package indexes are not the project's; a
  # failure still shows whole (pip exits non-zero, and the import check below names it).
  log="$(mktemp)"
  if ! { .venv/bin/pip install -q --disable-pip-version-check --upgrade pip \
         && .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'; } >"$log" 2>&1; then
    grep -v '^WARNING: Location' "$log" >&2 || true
    rm -f "$log"
    echo "setup: pip could not install iranpki into .venv; see above" >&2
    exit 1
  fi
  rm -f "$log"
  .venv/bin/python -c 'import iranpki, pkcs11, pkilint, pyhanko_certvalidator' \
    || { echo "setup: the install into .venv failed; see the pip output above" >&2; exit 1; }
  touch "$stamp"
fi
