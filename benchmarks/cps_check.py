"""Artefacts checked per second: ``check_cps(..., artefacts_dir=DIR)`` against the pkilint command-line
tools run once per file, as an operator lints a CA's artefacts today.

One run builds one folder of what a level-2 CA issues, with the iranpki library and software keys
under a frozen clock: the root and the intermediate (P-384) certificates, ``--certificates``
end-entity certificates spread evenly over the profiles of ``tests/samples.py`` (one in ten
revoked), the intermediate's CRL and one OCSP response per ``OCSP_EVERY`` certificates (good and
revoked). Then, in alternating rounds, each side checks the whole folder:

- iranpki: one Python process that calls ``iranpki.compliance.check_cps`` on the example CPS
  (``policies/examples/general-intermediate-ca-cps.md``) at level 2 with the folder. It reads the
  CPS, compares its claims with the CP, and lints every artefact with pkilint as a library plus the
  national validators. Its time inside ``check_cps`` (the lazy imports of pkilint included) is the
  measured figure; the whole process, interpreter start-up included, is shown beside it;
- pkilint CLI (the anchor): one process per file and tool: ``lint_pkix_cert lint -s WARNING`` for
  every certificate, also ``lint_cabf_serverauth_cert lint -d -s WARNING`` for an SSL/TLS server
  certificate and ``lint_cabf_smime_cert lint -g -s WARNING`` for an S/MIME one,
  ``lint_crl lint -t CRL -p PKIX -s WARNING`` for the CRL, ``lint_ocsp_response lint -s WARNING``
  for each OCSP response. Its time is the sum of the wall clocks of those processes.

So the two sides do not do the same work: iranpki does more (the CPS, the claims, the national
validators, the comparisons), the CLI starts an interpreter and imports pkilint for every file.
The figures say what the operator waits for, per artefact.

Peak memory is the ``ru_maxrss`` of each child from ``os.wait4``: the iranpki process's, against
the median (and the largest) of the pkilint processes'. Linux carries the RSS high-water mark of
the forking process over into its child, so every child is started from a small launcher process
(a bare interpreter) and not from this one.

Before printing, both sides are checked: the report describes every artefact of the folder and has
no ART-UNREADABLE or ART-UNKNOWN-KIND finding; every pkilint process exits 0 (no finding) or 1
(findings) and wrote its report.

The run is bounded: each batch of children has a time limit (``BATCH_TIMEOUT`` plus
``PER_PROCESS_TIMEOUT`` per process), and rounds after the first do not start once ``--budget``
seconds have passed. The folder is removed on exit, SIGTERM or Ctrl-C.

    .venv/bin/python benchmarks/cps_check.py [--certificates 200] [--rounds 3] [--budget 900] [--keep NEW_DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/samples.py: the requests every end-entity profile accepts

CPS = ROOT / "policies" / "examples" / "general-intermediate-ca-cps.md"
LEVEL = 2
REVOKE_EVERY = 10  # one certificate in ten is revoked, so the CRL and some OCSP responses list it
OCSP_EVERY = 20  # one OCSP response per twenty certificates
# A batch of child processes gets 60 s plus 10 s per process (a pkilint process takes about 0.5 s,
# check_cps about 0.1 s per artefact); past that something hangs and the run fails.
BATCH_TIMEOUT, PER_PROCESS_TIMEOUT = 60, 10
BIN = Path(sys.executable).parent  # the pkilint tools are installed beside this interpreter

# Started from this (large) process, it runs each command of the file named by argv[1] (one
# command a line, its arguments separated by tabs) in turn, and prints for each its wall time,
# exit code and ru_maxrss; the output of command i goes to argv[1].i.out and .err. It imports
# nothing but builtins, so its own RSS (which a child inherits until it execs) stays small. If the
# benchmark dies (even by SIGKILL) it starts no further command.
LAUNCHER = """\
import os, sys, time
parent = os.getppid()
with open(sys.argv[1]) as f:
    commands = [line.rstrip("\\n").split("\\t") for line in f if line.strip()]
for i, argv in enumerate(commands):
    if os.getppid() != parent:
        sys.exit(1)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_OPEN, fd, f"{sys.argv[1]}.{i}.{name}", flags, 0o644) for fd, name in ((1, "out"), (2, "err"))])
    _, status, usage = os.wait4(pid, 0)
    print(time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage.ru_maxrss, flush=True)
"""


def fail(message: str) -> None:
    sys.exit(f"cps_check benchmark: FAILED: {message}")


# ---- set-up -----------------------------------------------------------------------------------

def build(folder: Path, store_dir: Path, n: int) -> list[tuple[str, list[str]]]:
    """Issue the artefacts into ``folder``; return, per file, its name and the pkilint tools (each
    with its options) an operator runs on it."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import Encoding

    from iranpki import crl
    from iranpki.ca import CertificateAuthority, create_intermediate, create_root, parse_subject
    from iranpki.clock import FixedClock
    from iranpki.keys import SoftwareSigner
    from iranpki.ocsp import Responder, single_response
    from iranpki.policy import load_policy
    from iranpki.store import Reason, open_store
    from tests.samples import KEYS, SUBJECTS, request

    def new_key(kind: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        """A fresh subscriber key of ``kind`` (tests/samples.py KEYS: rsa2048, rsa3072, p256)."""
        return rsa.generate_private_key(65537, int(kind[3:])) if kind.startswith("rsa") else \
            ec.generate_private_key(ec.SECP256R1())

    now = datetime.now(timezone.utc).replace(microsecond=0)
    clock = FixedClock(now)
    cp = load_policy()
    # Level 2 wants CA keys on a token. Where a key lives does not show in what it signs, so the
    # artefacts are issued under a copy of the CP whose levels accept software keys (as
    # tests/test_compliance_artefacts.py does); the check runs under the real CP.
    software_cp = cp.model_copy(update={"levels": tuple(
        lv.model_copy(update={"keys": lv.keys.model_copy(update={"storage": "software"})}) for lv in cp.levels)})
    store = open_store(store_dir / "store.sqlite3", clock=clock, create=True)
    tools: list[tuple[str, list[str]]] = []
    try:
        root = create_root(store, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "root",
                           parse_subject("C=IR,O=I.R.Government,OU=Root CA,CN=Bench Root CA"),
                           repository_url="http://repository.bench.ir", ocsp_url="http://ocsp.bench.ir", clock=clock)
        root = CertificateAuthority(root.record, root.signer, store, clock=clock, policy=software_cp)
        ica = create_intermediate(root, SoftwareSigner(ec.generate_private_key(ec.SECP384R1())), "gica2", LEVEL,
                                  parse_subject("C=IR,O=E-Commerce Development Center,CN=Bench GICA Level 2"),
                                  ocsp_url="http://ocsp.bench.ir/gica2")
        (folder / "certs").mkdir(parents=True)
        (folder / "crl").mkdir()
        (folder / "ocsp").mkdir()
        for name, cert in (("root.pem", root.certificate), ("gica2.pem", ica.certificate)):
            (folder / "certs" / name).write_bytes(cert.public_bytes(Encoding.PEM))
            tools.append((f"certs/{name}", ["lint_pkix_cert"]))

        profiles = sorted(SUBJECTS)
        serials: list[int] = []
        for i in range(n):
            profile = profiles[i % len(profiles)]
            key = new_key(KEYS.get(profile, "p256"))
            cert = ica.issue(profile, request(profile, key.public_key())).certificate
            serials.append(cert.serial_number)
            # Both encodings, as a CA's folder has them: DER for some, PEM for the rest.
            der = i % 4 == 3
            name = f"certs/{profile}-{i:05d}{'.der' if der else '.pem'}"
            (folder / name).write_bytes(cert.public_bytes(Encoding.DER if der else Encoding.PEM))
            lint = ["lint_pkix_cert"]
            if profile == "ssl-server":
                lint.append("lint_cabf_serverauth_cert -d")
            elif profile == "smime":
                lint.append("lint_cabf_smime_cert -g")
            tools.append((name, lint))
            if i % REVOKE_EVERY == REVOKE_EVERY - 1:
                ica.revoke(cert.serial_number, Reason.superseded)

        full = crl.generate_crl(store, ica.record, ica.signer, store_dir / "crls", clock=clock)
        (folder / "crl" / "gica2.crl").write_bytes(full.der)
        tools.append(("crl/gica2.crl", ["lint_crl -t CRL -p PKIX"]))

        responder = Responder(ica.record, ica.signer)
        hours = cp.ocsp_validity_hours(LEVEL)
        this_update, next_update = _gentime(now), _gentime(now + timedelta(hours=hours))
        # One response per OCSP_EVERY certificates, for good and revoked ones in turn.
        picks = [min(n - 1, j * OCSP_EVERY // 2 + (REVOKE_EVERY - 1) * (j % 2)) for j in range(max(1, n // OCSP_EVERY))]
        for j, serial in enumerate(serials[i] for i in picks):
            single = single_response(responder.cert_id("sha1", serial), store.certificate_status("gica2", serial),
                                     this_update, next_update)
            name = f"ocsp/{j:04d}.ocsp"
            (folder / name).write_bytes(responder.sign([single], now))
            tools.append((name, ["lint_ocsp_response"]))
    finally:
        store.close()
    return tools


def _gentime(moment: datetime) -> bytes:
    return b"\x18\x0f" + moment.strftime("%Y%m%d%H%M%SZ").encode("ascii")


def pkilint_commands(folder: Path, tools: list[tuple[str, list[str]]]) -> list[list[str]]:
    """Every pkilint command line an operator runs on the folder, one process per file and tool."""
    commands = []
    for name, lints in tools:
        for lint in lints:
            tool, *options = lint.split()
            commands.append([str(BIN / tool), "lint", *options, "-s", "WARNING", str(folder / name)])
    return commands


# ---- measurement ------------------------------------------------------------------------------

def launch(commands: list[list[str]], name: Path) -> list[tuple[float, int, float]]:
    """Run ``commands`` one after the other from the launcher; per command (seconds, exit code,
    peak RSS in MB). Their outputs are in ``name``.<i>.out and .err."""
    name.write_text("".join("\t".join(argv) + "\n" for argv in commands))
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER, str(name)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=BATCH_TIMEOUT + PER_PROCESS_TIMEOUT * len(commands))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        fail(f"{len(commands)} command(s) from {Path(commands[0][0]).name} took more than "
             f"{BATCH_TIMEOUT + PER_PROCESS_TIMEOUT * len(commands)} s")
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)  # SIGTERM or Ctrl-C: no child outlives the run
        proc.communicate()
        raise
    rows = [line.split() for line in out.splitlines()]
    if proc.returncode != 0 or len(rows) != len(commands):
        fail(f"the launcher stopped after {len(rows)} of {len(commands)} command(s) (exit {proc.returncode})")
    return [(float(s), int(code), int(kb) / 1024) for s, code, kb in rows]


def ours_child(cps: str, folder: str) -> None:
    """In the measured child: check the CPS with the folder; print the time inside check_cps and
    what the report holds."""
    from iranpki.compliance import Severity, check_cps

    start = time.perf_counter()
    report = check_cps(cps, LEVEL, artefacts_dir=folder)
    inner = time.perf_counter() - start
    print(json.dumps({"inner": inner, "described": len(report.artefacts), "findings": len(report.findings),
                      "errors": sum(1 for f in report.findings if f.severity is Severity.ERROR),
                      "rules": sorted({f.rule for f in report.findings})}))


# ---- main -------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--certificates", type=int, default=200, help="end-entity certificates in the folder")
    parser.add_argument("--budget", type=float, default=900.0,
                        help="seconds after which no further round starts (the first always runs)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--keep", metavar="DIR", help="build everything in DIR (a new folder) and keep it")
    parser.add_argument("--child", nargs=2, metavar=("CPS", "DIR"), help=argparse.SUPPRESS)  # the measured process
    args = parser.parse_args()
    if args.child:
        ours_child(*args.child)
        return
    if not 1 <= args.certificates <= 5000 or not 1 <= args.rounds <= 20 or args.budget <= 0:
        parser.error("--certificates must be 1 to 5000, --rounds 1 to 20, --budget above 0")
    missing = [t for t in ("lint_pkix_cert", "lint_cabf_serverauth_cert", "lint_cabf_smime_cert", "lint_crl",
                           "lint_ocsp_response") if not (BIN / t).exists()]
    if missing:
        fail(f"{', '.join(missing)} not in {BIN}; install pkilint in this environment")

    if args.keep and Path(args.keep).exists():
        parser.error(f"--keep {args.keep}: the folder exists; name a new one")
    # SIGTERM becomes SystemExit, so the temporary folder is removed on it as on Ctrl-C and on exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("cps_check benchmark: stopped (SIGTERM)"))
    with contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="iranpki-cps-") as tmp:
        work = Path(tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        run(args, work)


def run(args: argparse.Namespace, work: Path) -> None:
    started = time.perf_counter()
    folder = work / "artefacts"
    (work / "runs").mkdir()
    tools = build(folder, work, args.certificates)
    commands = pkilint_commands(folder, tools)
    n = len(tools)
    built = time.perf_counter() - started
    print(f"CPS check benchmark: {n} artefacts ({args.certificates} end-entity certificates, 2 CA certificates, "
          f"1 CRL, {n - args.certificates - 3} OCSP response(s)), level {LEVEL}, {args.rounds} round(s), medians "
          f"(built in {built:.1f} s)")
    print(f"  iranpki: check_cps({CPS.relative_to(ROOT)}, {LEVEL}, artefacts_dir=...) in one process")
    print(f"  pkilint CLI: {len(commands)} processes, one per file and tool")

    ours_t, ours_wall, ours_rss, theirs_t, theirs_rss = [], [], [], [], []
    result: dict = {}
    for r in range(args.rounds):  # alternate, so that machine noise hits both alike
        if r and time.perf_counter() - started > args.budget:
            print(f"  budget of {args.budget:.0f} s spent: {r} round(s) of {args.rounds} measured")
            break
        [(seconds, code, rss)] = launch([[sys.executable, os.path.abspath(__file__), "--child", str(CPS),
                                          str(folder)]], work / "runs" / f"ours-{r}")
        if code != 0:
            errors = (work / "runs" / f"ours-{r}.0.err").read_text(errors="replace").strip()
            fail(f"check_cps exited with {code}:\n{errors}")
        result = json.loads((work / "runs" / f"ours-{r}.0.out").read_text())
        ours_t.append(result["inner"])
        ours_wall.append(seconds)
        ours_rss.append(rss)

        rows = launch(commands, work / "runs" / f"pkilint-{r}")
        for i, (seconds, code, rss) in enumerate(rows):
            out = Path(f"{work / 'runs' / f'pkilint-{r}'}.{i}.out").read_text(errors="replace")
            if code not in (0, 1) or (code == 1 and not out.strip()):
                err = Path(f"{work / 'runs' / f'pkilint-{r}'}.{i}.err").read_text(errors="replace").strip()
                fail(f"{' '.join(Path(a).name for a in commands[i])} exited with {code}:\n{err}")
        theirs_t.append(sum(s for s, _, _ in rows))
        theirs_rss.extend(rss for _, _, rss in rows)

    if result["described"] != n:
        fail(f"the report describes {result['described']} artefacts; the folder holds {n}")
    bad = {"ART-UNREADABLE", "ART-UNKNOWN-KIND"} & set(result["rules"])
    if bad:
        fail(f"the report has {', '.join(sorted(bad))}: the folder is not what the benchmark meant to build")

    t_ours, t_wall, t_theirs = (statistics.median(v) for v in (ours_t, ours_wall, theirs_t))
    m_ours, m_theirs, m_max = statistics.median(ours_rss), statistics.median(theirs_rss), max(theirs_rss)
    print(f"{'':<34}{'total s':>9}{'ms/artefact':>13}{'peak RSS MB':>13}")
    print(f"{'iranpki check_cps (in-process)':<34}{t_ours:>9.2f}{t_ours * 1000 / n:>13.1f}{m_ours:>13.1f}")
    print(f"{'iranpki, whole process':<34}{t_wall:>9.2f}{t_wall * 1000 / n:>13.1f}{m_ours:>13.1f}")
    print(f"{'pkilint CLI, process per file':<34}{t_theirs:>9.2f}{t_theirs * 1000 / n:>13.1f}{m_theirs:>13.1f}"
          f"   (RSS: median process; the largest {m_max:.1f})")
    print(f"ratio time   {t_ours / t_theirs:>6.3f}  iranpki/pkilint-CLI, check_cps in-process")
    print(f"ratio time   {t_wall / t_theirs:>6.3f}  iranpki/pkilint-CLI, whole process (interpreter start-up included)")
    print(f"ratio memory {m_ours / m_theirs:>6.2f}  iranpki/pkilint-CLI, peak RSS of the iranpki process "
          "against one pkilint process")
    print(f"artefacts {n}; the report: {result['findings']} finding(s), {result['errors']} error(s) "
          f"({', '.join(result['rules']) or 'none'})")
    print(f"verified: the report describes all {n} artefacts; all {len(commands)} pkilint processes ran "
          "and reported")


if __name__ == "__main__":
    main()
