"""The tests' own servers and hosts: private PostgreSQL clusters (Debian's server, run as the
postgres user in a folder of their own), and hosts of their own on a real network: Linux network
namespaces joined by a bridge in a namespace of its own, so that nothing of this machine's
network is touched."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def pg_bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL's server is not installed; bash scripts/setup.sh installs it"
    return os.path.dirname(found[-1])


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass
class Cluster:
    """A running PostgreSQL cluster: its admin URL (no password: that is ``password``)."""

    base: Path
    host: str
    port: int
    password: str
    netns: str | None = None
    bindir: str = field(default_factory=pg_bindir)

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://iranpki@{self.host}:{self.port}/{database}"

    def as_postgres(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return _run(*prefix, "runuser", "-u", "postgres", "--", *args, timeout=timeout)

    def start(self) -> None:
        self.as_postgres(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-l", str(self.base / "log"), "-w", "-t", "60",
                         "-o", f"-c listen_addresses={self.host} -c port={self.port} "
                               f"-c unix_socket_directories={self.base}", "start")

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", mode,
                        "-w", "stop"], capture_output=True, timeout=120)

    def new_database(self) -> str:
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.url(), password=self.password, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _private_folder() -> Path:
    base = Path(tempfile.mkdtemp(prefix="iranpki-pg-"))
    shutil.chown(base, "postgres", "postgres")
    return base


def new_cluster(*, host: str = "127.0.0.1", netns: str | None = None, password: str | None = None,
                clients: str | None = None, settings: str = "") -> Cluster:
    """Make and start a cluster listening on ``host`` (in network namespace ``netns``), password
    authentication, open to the ``clients`` network as well (a CIDR) and to replication."""
    base = _private_folder()
    password = password or secrets.token_hex(12)
    (base / "pw").write_text(password + "\n")
    shutil.chown(base / "pw", "postgres", "postgres")
    cluster = Cluster(base, host, free_port() if netns is None else 5432, password, netns)
    cluster.as_postgres(f"{cluster.bindir}/initdb", "-D", str(cluster.data), "-U", "iranpki", "--pwfile",
                        str(base / "pw"), "--auth", "scram-sha-256", "--locale", "C.UTF-8", "-E", "UTF8")
    (base / "pw").unlink()
    with open(cluster.data / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("fsync = off\nmax_connections = 200\nwal_level = replica\nmax_wal_senders = 4\n" + settings)
    if clients:
        with open(cluster.data / "pg_hba.conf", "a", encoding="utf-8") as hba:
            hba.write(f"host all iranpki {clients} scram-sha-256\nhost replication iranpki {clients} scram-sha-256\n")
    cluster.start()
    return cluster


def new_standby(primary: Cluster) -> Cluster:
    """A hot standby of ``primary``, streaming from it (pg_basebackup -R), on 127.0.0.1."""
    base = _private_folder()
    standby = Cluster(base, "127.0.0.1", free_port(), primary.password)
    (base / "pgpass").write_text(f"*:*:*:iranpki:{primary.password}\n")
    os.chmod(base / "pgpass", 0o600)
    shutil.chown(base / "pgpass", "postgres", "postgres")
    standby.as_postgres("env", f"PGPASSFILE={base / 'pgpass'}", f"{standby.bindir}/pg_basebackup", "-h", primary.host,
                        "-p", str(primary.port), "-U", "iranpki", "-D", str(standby.data), "-R", "-X", "stream",
                        "-c", "fast")
    standby.start()
    return standby


def remove_cluster(cluster: Cluster) -> None:
    cluster.stop("immediate")
    shutil.rmtree(cluster.base, ignore_errors=True)


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    ip: str

    def command(self, *args: str) -> list[str]:
        """``args`` run on this host."""
        return ["ip", "netns", "exec", self.netns, *args]


@contextmanager
def network(*names: str) -> Iterator[dict[str, Host]]:
    """Hosts of their own, one network namespace each, on one /24 through a bridge in a namespace
    of its own; removed, with every link, when the block ends."""
    tag = secrets.token_hex(2)
    switch = f"ipk{tag}sw"
    prefix = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
    made = [switch]
    try:
        _run("ip", "netns", "add", switch)
        _run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", switch, "link", "set", "br0", "up")
        hosts = {}
        for i, name in enumerate(names, start=1):
            ns = f"ipk{tag}{name}"
            _run("ip", "netns", "add", ns)
            made.append(ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"p{i}", "netns", switch)
            _run("ip", "-n", ns, "addr", "add", f"{prefix}.{i}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", switch, "link", "set", f"p{i}", "master", "br0")
            _run("ip", "-n", switch, "link", "set", f"p{i}", "up")
            hosts[name] = Host(name, ns, f"{prefix}.{i}")
        hosts["_network"] = Host("network", switch, f"{prefix}.0/24")
        yield hosts
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
