"""A single-node SLURM cluster of its own, for the tests

``start(root)`` makes a munge key and a minimal ``slurm.conf`` in the
directory ``root`` and starts ``munged``, ``slurmctld`` and ``slurmd`` as
child processes in the foreground, all as root: one node (this host's short
name, at 127.0.0.1, with the CPUs this process may use), one default
partition, process tracking without cgroups (proctrack/linuxproc,
task/none), no accounting; a job at its time limit gets SIGTERM, and
SIGKILL 2 s later (KillWait). State, spool, sockets and logs stay in
``root``; the ports are free ones picked at start, so that a SLURM of the
machine (or of another test run) is not disturbed. The client commands
(``sbatch``, ``squeue``, ...) find the cluster through ``SLURM_CONF``
(``Cluster.env``). ``Cluster.stop()`` cancels every job and stops every
daemon it started.

Debian's packages: ``apt-get install slurm-wlm munge``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ('munged', 'slurmctld', 'slurmd')
CLIENTS = ('sbatch', 'squeue', 'sinfo', 'scontrol', 'scancel')
LOG_NAMES = ('munged.log', 'munged.out', 'slurmctld.log', 'slurmctld.out',
             'slurmd.log', 'slurmd.out')


class Unavailable(Exception):
    """SLURM cannot be started here; the message says why"""


def missing() -> str | None:
    """Why this machine cannot run the cluster at all (not root, programs
    missing), or None"""
    if os.geteuid() != 0:
        return (f'the SLURM tests need root to start slurmd, which starts '
                f'the jobs (running as uid {os.geteuid()})')
    absent = [p for p in DAEMONS + CLIENTS if shutil.which(p) is None
              and not Path('/usr/sbin', p).exists()]
    if absent:
        return (f'SLURM or munge is not installed (missing: '
                f'{", ".join(absent)}); on Debian: apt-get install '
                'slurm-wlm munge')
    return None


def program(name: str) -> str:
    """The path of ``name``; daemons are in /usr/sbin, which root's PATH
    may lack"""
    return shutil.which(name) or str(Path('/usr/sbin', name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def node_name() -> str:
    """The name slurmd registers under: the short host name"""
    return socket.gethostname().split('.')[0]


def cpus() -> int:
    """The CPUs this process may use, as ``nproc`` counts them"""
    return len(os.sched_getaffinity(0))


def slurm_conf(root: Path, munge_socket: Path) -> str:
    """A minimal configuration for one node, everything kept in ``root``"""
    node = node_name()
    return f"""\
ClusterName=worktreetests
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=2
OverTimeLimit=0
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus()} State=UNKNOWN
PartitionName=tests Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class Cluster:
    """The cluster's directory, its configuration, and the daemons it
    started (name, process), in the order started"""
    root: Path
    conf: Path
    processes: list[tuple[str, subprocess.Popen]] = field(
        default_factory=list)

    @property
    def env(self) -> dict:
        """The environment for client commands: ``SLURM_CONF`` added"""
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def run(self, *args: str, timeout: float = 60) \
            -> subprocess.CompletedProcess:
        """A client command (``squeue``, ...) against this cluster"""
        return subprocess.run([program(args[0]), *args[1:]], env=self.env,
                              capture_output=True, text=True,
                              timeout=timeout, check=False)

    def logs(self, lines: int = 30) -> str:
        """The last ``lines`` of every daemon's log and output"""
        parts = []
        for name in LOG_NAMES:
            path = self.root / name
            if path.exists():
                tail = path.read_text(errors='replace').splitlines()[-lines:]
                parts.append(f'--- {path}\n' + '\n'.join(tail))
        return '\n'.join(parts)

    def spawn(self, name: str, *args: str) -> None:
        """Start daemon ``name`` in the foreground, output to NAME.out"""
        with open(self.root / f'{name}.out', 'wb') as out:
            self.processes.append((name, subprocess.Popen(
                [program(name), *args], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env)))

    def check_running(self) -> None:
        """Raise Unavailable, with the logs, if a daemon has exited"""
        for name, proc in self.processes:
            if proc.poll() is not None:
                raise Unavailable(f'{name} exited with status '
                                  f'{proc.returncode}\n{self.logs()}')

    def wait_for_idle_node(self, timeout: float = 60) -> None:
        """Return once sinfo shows the node idle, ready for jobs; raise
        Unavailable if a daemon exits or ``timeout`` seconds pass"""
        deadline = time.monotonic() + timeout
        state = ''
        while time.monotonic() < deadline:
            self.check_running()
            out = self.run('sinfo', '-h', '-n', node_name(), '-o', '%T')
            state = out.stdout.strip() or out.stderr.strip()
            if state == 'idle':
                return
            time.sleep(0.3)
        raise Unavailable(f'node {node_name()} not idle after {timeout} s '
                          f'(sinfo: {state!r})\n{self.logs()}')

    def stop(self) -> None:
        """Cancel every job, wait for them to end, and stop the daemons
        (slurmd first, munged last); kill what does not stop in time"""
        if any(name == 'slurmctld' and p.poll() is None
               for name, p in self.processes):
            self.run('scancel', '--full', '--user=root', timeout=30)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.run(
                    'squeue', '-h', '-o', '%i', timeout=30).stdout.strip():
                time.sleep(0.3)
        for _, proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.processes.clear()


def start_munged(cluster: Cluster) -> Path:
    """A munge key of its own and munged on a socket in the cluster's
    directory, which must be reachable by all (munged checks); returns
    the socket"""
    key = cluster.root / 'munge.key'
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = cluster.root / 'munge.socket'
    cluster.spawn('munged', '--foreground', f'--key-file={key}',
                  f'--socket={sock}', f'--log-file={cluster.root}/munged.log',
                  f'--pid-file={cluster.root}/munged.pid',
                  f'--seed-file={cluster.root}/munged.seed')
    deadline = time.monotonic() + 20
    while not sock.exists():
        cluster.check_running()
        if time.monotonic() > deadline:
            raise Unavailable(f'munged made no socket\n{cluster.logs()}')
        time.sleep(0.1)
    return sock


def start(root: Path) -> Cluster:
    """Start the cluster in the empty directory ``root`` (world-readable
    all the way up, for munge's socket). Raises Unavailable with the
    daemons' logs if it does not come up; stops what it started then"""
    reason = missing()
    if reason:
        raise Unavailable(reason)
    for sub in ('state', 'spool'):
        (root / sub).mkdir()
    cluster = Cluster(root, root / 'slurm.conf')
    try:
        sock = start_munged(cluster)
        cluster.conf.write_text(slurm_conf(root, sock))
        # -c: no state from an earlier run; -N: the node name, whatever
        # the host name resolves to
        cluster.spawn('slurmctld', '-D', '-c')
        cluster.spawn('slurmd', '-D', '-N', node_name())
        cluster.wait_for_idle_node()
    except BaseException:
        cluster.stop()
        raise
    return cluster
