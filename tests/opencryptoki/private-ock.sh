#!/usr/bin/env bash
# Run a command beside an openCryptoki of its own. The script puts itself in mount, PID and IPC
# namespaces of its own (unshare), hides the machine's openCryptoki state there behind empty tmpfs
# folders (configuration, token store, and /run: locks, the daemon's socket and pid file; SysV
# shared memory is the IPC namespace's), starts pkcsslotd with one software token (slot 3, not
# yet initialised) and runs the command; the daemon dies with the PID namespace. Nothing outside
# is touched, so every run starts from a fresh token and two runs never share one.
#   bash tests/opencryptoki/private-ock.sh CMD [ARG...]
set -euo pipefail
if [ "${IRANPKI_PRIVATE_OCK:-}" != "$$" ]; then
  # Not yet inside: enter the namespaces, where this shell is PID 1 and the marker says so.
  exec unshare -m -p -i -f --mount-proc --propagation private \
    env IRANPKI_PRIVATE_OCK=1 bash "$0" "$@"
fi
[ "$(findmnt -no PROPAGATION /)" = private ] \
  || { echo "private-ock: / is not private in this mount namespace; refusing to mount" >&2; exit 2; }
command -v pkcsslotd >/dev/null || PATH="$PATH:/usr/sbin"
command -v pkcsslotd >/dev/null || { echo "private-ock: pkcsslotd not found; apt-get install opencryptoki" >&2; exit 2; }
getent group pkcs11 >/dev/null || { echo "private-ock: no group pkcs11; apt-get install opencryptoki" >&2; exit 2; }
# openCryptoki 3.8 keeps its pid file and socket in /run itself, so all of /run is private here.
mount -t tmpfs -o mode=0755 tmpfs /run
for d in /etc/opencryptoki /var/lib/opencryptoki /dev/shm; do
  mkdir -p "$d"
  mount -t tmpfs -o mode=0770 tmpfs "$d"
done
mkdir -p /var/lib/opencryptoki/swtok/TOK_OBJ /run/lock/opencryptoki/swtok /run/opencryptoki
chgrp -R pkcs11 /etc/opencryptoki /var/lib/opencryptoki /run/lock/opencryptoki /run/opencryptoki
chmod -R 0770 /var/lib/opencryptoki /run/lock/opencryptoki /run/opencryptoki
printf 'version opencryptoki-3.1\nslot 3\n{\nstdll = libpkcs11_sw.so\n}\n' >/etc/opencryptoki/opencryptoki.conf
pkcsslotd
"$@"
