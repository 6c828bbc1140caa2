"""Real servers on 127.0.0.1 for the remote-root tests and benchmark: OpenSSH's `sshd` with its own
host key, user key, configs and known_hosts in a temporary directory; moto's S3 server (in this
process) with an IAM user whose key is checked; and a TCP relay that counts the bytes through it and
can cut every connection (a network drop). Nothing is written outside the directories given, the
user's ~/.ssh is never read (clients get their own ssh config), and `stop()` ends every process
started here, by its id.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"
ALIAS = "gpu-test"  # the Host entry of the generated ssh config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def sshd_path() -> str | None:
    return shutil.which("sshd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def _descendants(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


class Sshd:
    """`sshd -D` on a loopback port, with the client side's files beside it:

    - `ssh_config`: `Host gpu-test` (HostName, Port, User, IdentityFile, UserKnownHostsFile),
      `Host wrong-key` (a key the server does not know), `Host unknown-host-key` (an empty known_hosts);
    - `home/.ssh/config` and `home/.ssh/known_hosts`: the same, for a client whose HOME is `home`.
    """

    def __init__(self, directory: Path, sftp: str = "internal-sftp") -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sftp = sftp
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.user = os.environ.get("USER") or __import__("getpass").getuser()
        self._keys()
        self._configs()

    def _keygen(self, name: str) -> Path:
        path = self.directory / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
        return path

    def _keys(self) -> None:
        self.host_key = self._keygen("host_key")
        self.user_key = self._keygen("user_key")
        self.other_key = self._keygen("other_key")
        (self.directory / "authorized_keys").write_text(Path(f"{self.user_key}.pub").read_text())
        self.known_hosts = self.directory / "known_hosts"
        self.known_hosts.write_text(f"[{HOST}]:{self.port} {Path(f'{self.host_key}.pub').read_text()}")
        (self.directory / "empty_known_hosts").write_text("")

    def _configs(self) -> None:
        d = self.directory
        (d / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress {HOST}\nHostKey {self.host_key}\nPidFile none\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            f"Subsystem sftp {self.sftp}\nLogLevel ERROR\nMaxStartups 100\n"
        )
        entry = (
            "Host {alias}\n  HostName {host}\n  Port {port}\n  User {user}\n  IdentityFile {key}\n"
            "  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n"
        )
        hosts = [
            (ALIAS, self.user_key, self.known_hosts),
            ("wrong-key", self.other_key, self.known_hosts),
            ("unknown-host-key", self.user_key, d / "empty_known_hosts"),
        ]
        config = "".join(
            entry.format(alias=a, host=HOST, port=self.port, user=self.user, key=k, known=n) for a, k, n in hosts
        )
        self.ssh_config = d / "ssh_config"
        self.ssh_config.write_text(config)
        self.home = d / "home"
        (self.home / ".ssh").mkdir(parents=True, exist_ok=True)
        (self.home / ".ssh" / "config").write_text(config)

    def add_host(self, alias: str, port: int) -> None:
        """A Host entry reaching this server through another port (a relay), under its own host key."""
        with open(self.ssh_config, "a") as config:
            config.write(
                f"Host {alias}\n  HostName {HOST}\n  Port {port}\n  User {self.user}\n  IdentityFile {self.user_key}\n"
                f"  IdentitiesOnly yes\n  UserKnownHostsFile {self.known_hosts}\n  HostKeyAlias [{HOST}]:{self.port}\n"
            )

    def options(self) -> dict:
        """fsspec storage options: this config, and no agent (the user's keys are not offered)."""
        return {"config": [str(self.ssh_config)], "agent_path": None}

    def url(self, path: Path | str, alias: str = ALIAS) -> str:
        return f"ssh://{alias}{path}"

    def client_env(self) -> dict[str, str]:
        """An environment for a client process whose ~/.ssh is this server's."""
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        env["HOME"] = str(self.home)
        return env

    def start(self) -> None:
        binary = sshd_path()
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "-D", "-e", "-f", str(self.directory / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "sshd.log", "ab"),
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        """Stop the server and every session it serves, as a host going down would."""
        if self.process is None:
            return
        pids = [self.process.pid, *_descendants(self.process.pid)]
        for pid in reversed(pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


class S3Server:
    """moto's S3 server, in this process, answering only requests signed with `key`/`secret`.

    Every moto server in a process shares one store, so a restarted server (same port) still holds
    what was written before it stopped, as a real one would.
    """

    _credentials: tuple[str, str] | None = None

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://{HOST}:{self.port}"
        self._server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
        self._server.start()
        wait_for_port(self.port)
        self.key, self.secret = self._user()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _user(self) -> tuple[str, str]:
        """An IAM user allowed all of S3; from then on moto checks every request's signature."""
        if S3Server._credentials is None:
            import boto3
            from moto import settings

            iam = boto3.client("iam", endpoint_url=self.endpoint, region_name="us-east-1",
                               aws_access_key_id="setup", aws_secret_access_key="setup")
            iam.create_user(UserName="rlhf-top")
            policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            iam.put_user_policy(UserName="rlhf-top", PolicyName="s3", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName="rlhf-top")["AccessKey"]
            S3Server._credentials = (key["AccessKeyId"], key["SecretAccessKey"])
            settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        return S3Server._credentials

    def options(self, **overrides: object) -> dict:
        return {"endpoint_url": self.endpoint, "key": self.key, "secret": self.secret, **overrides}

    def client(self):
        """An s3fs filesystem that writes (the training side; rlhf-top only reads)."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **self.options())


def no_aws_environment(monkeypatch) -> None:
    """No credentials from this machine, and no instance-metadata lookups off the loopback."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)


class Relay:
    """A TCP relay on a loopback port to `target_port`: counts the bytes each way, and `drop()`
    cuts every connection through it, as a network failure would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.sent = 0  # client -> server
        self.received = 0  # server -> client
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection((HOST, self.target_port))
            except OSError:
                client.close()
                continue
            for sock in (client, server):  # relay each write at once, as the network would
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, upstream: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
                with self._lock:
                    if upstream:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop(self) -> int:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        return len(sockets) // 2

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.drop()
