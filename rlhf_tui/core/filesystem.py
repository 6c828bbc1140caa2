"""How files are reached: this machine's through `os`, another machine's through fsspec.

Discovery and tailing ask a filesystem for a few os-like things and nothing else: `scandir`, `stat`,
`open` (then `seek` and `read`), `isdir`, `isfile`, `exists`, `islink`, `realpath`, `normpath` and
`identity` (what makes a directory the same one twice). `LOCAL` hands out the `os` functions
themselves, so a local root runs exactly the code it always ran.

`RemoteFS` answers the same questions about `ssh://[user@]host[:port]/path`, `s3://bucket/prefix` and
`gs://bucket/prefix` through fsspec's sshfs, s3fs and gcsfs, imported only when such a root is given.
Paths stay URLs (`ssh://gpu-a/home/me/runs/dpo/metrics.jsonl`), so runs on several hosts never
share a name. It only ever lists and reads:

- a `stat` is answered from the listing of the file's directory, made at most once per pass
  (`new_pass()`); on an object store one listing of the whole root (a request per 1000 objects)
  answers every `stat` and `scandir` of the pass;
- `open(path)` gives a handle whose `read(n)` after `seek(offset)` is one ranged read of those bytes
  (sshfs's own `cat_file` would fetch the whole file);
- there is no identity beyond the path (SFTP and object stores have no inode), so `stat` reports
  device and inode 0 and a followed file is known by its size alone.

A failure that is not about one file (host down, key refused, connection dropped, no credentials)
raises `Unreachable` with a one-line explanation naming the cause and the fix; a missing or
forbidden file raises the usual `FileNotFoundError`/`PermissionError`, which discovery and tailing
already turn into notes on the run.
"""

from __future__ import annotations

import importlib
import os
import posixpath
import re
import socket
import stat
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, BinaryIO, NamedTuple, Protocol

# scheme -> (module, extra that installs it, object store: listed whole per pass)
BACKENDS = {
    "ssh": ("sshfs", "ssh", False),
    "sftp": ("sshfs", "ssh", False),
    "s3": ("s3fs", "s3", True),
    "gs": ("gcsfs", "gcs", True),
    "gcs": ("gcsfs", "gcs", True),
}
CONNECT_TIMEOUT = 15
# A host that vanishes without closing the connection is noticed after 3 unanswered keepalives.
KEEPALIVE_SECONDS = 10
_FILE_PROBLEMS = {"SFTPNoSuchFile": FileNotFoundError, "SFTPNoSuchPath": FileNotFoundError,
                  "SFTPPermissionDenied": PermissionError, "SFTPNotADirectory": NotADirectoryError}


class Entry(Protocol):
    """A directory entry: `os.DirEntry`, or a remote listing's."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> str: ...

    def is_dir(self, *, follow_symlinks: bool = True) -> bool: ...

    def is_file(self, *, follow_symlinks: bool = True) -> bool: ...

    def is_symlink(self) -> bool: ...


class Stat(Protocol):
    """What discovery and tailing read of a stat: `os.stat_result`, or `RemoteStat`."""

    @property
    def st_mode(self) -> int: ...

    @property
    def st_size(self) -> int: ...

    @property
    def st_mtime(self) -> float: ...

    @property
    def st_mtime_ns(self) -> int: ...

    @property
    def st_dev(self) -> int: ...

    @property
    def st_ino(self) -> int: ...


class Reader(Protocol):
    def seek(self, offset: int) -> object: ...

    def read(self, length: int = -1) -> bytes: ...

    def __enter__(self) -> Reader: ...

    def __exit__(self, kind: Any, value: Any, traceback: Any, /) -> object: ...


class FileSystem(Protocol):
    """Everything discovery and tailing ask of the files they look at."""

    remote: bool

    def scandir(self, path: str) -> Iterable[Entry]: ...

    def stat(self, path: str) -> Stat: ...

    def open(self, path: str) -> Reader: ...

    def isdir(self, path: str) -> bool: ...

    def isfile(self, path: str) -> bool: ...

    def exists(self, path: str) -> bool: ...

    def islink(self, path: str) -> bool: ...

    def realpath(self, path: str) -> str: ...

    def normpath(self, path: str) -> str: ...

    def identity(self, path: str) -> object: ...


class LocalFS:
    """This machine's files, through `os`."""

    remote = False

    def scandir(self, path: str) -> Iterator[os.DirEntry[str]]:
        return os.scandir(path)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    def open(self, path: str) -> BinaryIO:
        return open(path, "rb")

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def isfile(self, path: str) -> bool:
        return os.path.isfile(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def islink(self, path: str) -> bool:
        return os.path.islink(path)

    def realpath(self, path: str) -> str:
        return os.path.realpath(path)

    def normpath(self, path: str) -> str:
        return os.path.normpath(path)

    def identity(self, path: str) -> object:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)


LOCAL: FileSystem = LocalFS()


def is_remote(root: str) -> bool:
    return urllib.parse.urlsplit(root).scheme in BACKENDS


def canonical_root(root: str) -> str:
    """The same root however it was written: an absolute local path, or the remote URL normalised."""
    return RemoteFS(root).root if is_remote(root) else os.path.abspath(root)


def missing_backend(root: str) -> str | None:
    """What to install for a remote root's scheme, if its package is not importable."""
    module, extra, _ = BACKENDS[urllib.parse.urlsplit(root).scheme]
    try:
        importlib.import_module(module)
    except ImportError:
        return f"{root}: needs the {module} package: pip install 'rlhf-top[{extra}]'"
    return None


def scheme_options(options: dict[str, Any], scheme: str) -> dict[str, Any]:
    """The storage options for one scheme's roots: `KEY` applies to every remote root, `SCHEME.KEY`
    (`s3.endpoint_url`, `ssh.config`) only to that scheme's, so ssh and s3 roots can be given together."""
    module = BACKENDS[scheme][0]
    chosen = {}
    for key, value in options.items():
        prefix, dot, name = key.partition(".")
        if dot and prefix in BACKENDS:
            if BACKENDS[prefix][0] == module:
                chosen[name] = value
        elif key not in chosen:
            chosen[key] = value
    return chosen


class Unreachable(Exception):
    """The root cannot be reached now; `message` says why and what to do, `auth` that it was refused."""

    def __init__(self, message: str, auth: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.auth = auth


class RemoteStat(NamedTuple):
    """The part of an `os.stat_result` that discovery and tailing read."""

    st_mode: int
    st_size: int
    st_mtime: float
    st_mtime_ns: int
    st_dev: int = 0
    st_ino: int = 0


class RemoteEntry:
    """One entry of a remote listing, shaped like `os.DirEntry`."""

    def __init__(self, name: str, path: str, kind: str, link: bool) -> None:
        self.name = name
        self.path = path
        self._kind = kind
        self._link = link

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._kind == "directory" and (follow_symlinks or not self._link)

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return self._kind == "file" and (follow_symlinks or not self._link)

    def is_symlink(self) -> bool:
        return self._link


class RemoteFS:
    """The files under one remote root; see the module's docstring. Used by one thread at a time."""

    remote = True

    def __init__(self, root: str, options: dict[str, Any] | None = None) -> None:
        parts = urllib.parse.urlsplit(root)
        self.scheme = parts.scheme
        self.options = scheme_options(options or {}, self.scheme)
        self.object_store = BACKENDS[self.scheme][2]
        if self.object_store:
            self.prefix = f"{self.scheme}://"
            self.host = parts.netloc
            native = f"{parts.netloc}{parts.path}"
        else:
            self.prefix = f"{self.scheme}://{parts.netloc}"
            self.host = parts.hostname or ""
            self.port = parts.port
            self.username = urllib.parse.unquote(parts.username) if parts.username else None
            native = parts.path or "/"
        self.native_root = posixpath.normpath(native) if native not in ("", "/") else native
        self.root = self.url(self.native_root)
        self.requests = 0
        self.bytes = 0
        self._fs: Any = None
        self._listings: dict[str, dict[str, dict]] = {}
        self._primed = False

    # --- paths ---------------------------------------------------------------------------

    def url(self, native: str) -> str:
        return self.prefix + native

    def native(self, path: str) -> str:
        if not path.startswith(self.prefix):
            raise FileNotFoundError(2, "not on this root", path)
        return path[len(self.prefix):]

    def normpath(self, path: str) -> str:
        if not path.startswith(self.prefix):
            return path
        return self.url(posixpath.normpath(self.native(path)))

    # --- connection ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._fs is not None

    def connect(self) -> None:
        """Open the connection and check that the root is a directory there."""
        module, _, _ = BACKENDS[self.scheme]
        problem = missing_backend(self.root)
        if problem:
            raise Unreachable(problem)
        backend = importlib.import_module(module)
        try:
            self.requests += 1
            if module == "sshfs":
                self._fs = backend.SSHFileSystem(self.host, **self._ssh_options())
            elif module == "s3fs":
                self._fs = backend.S3FileSystem(**self._s3_options())
                self._fs.retries = 2  # the root's thread retries with backoff itself, not five times here
            else:
                self._fs = backend.GCSFileSystem(**{"skip_instance_cache": True, **self.options})
            self.requests += 1
            info = self._fs.info(self.native_root)
            if not self.object_store and info.get("type") == "directory":
                self.requests += 1
                self._fs.ls(self.native_root, detail=False)  # may the remote user list it?
        except Exception as exc:  # noqa: BLE001 - every failure becomes the root's one-line state
            self._fs = None
            raise Unreachable(*explain(exc, self, connecting=True)) from None
        if info.get("type") != "directory":
            self._fs = None
            raise Unreachable(f"{self.root} is a file, not a directory of runs")

    def _ssh_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "known_hosts": (),  # ~/.ssh/known_hosts or the config's UserKnownHostsFile (sshfs would check nothing)
            "connect_timeout": CONNECT_TIMEOUT,
            "keepalive_interval": KEEPALIVE_SECONDS,
            "keepalive_count_max": 3,
            "skip_instance_cache": True,
        }
        if self.port:
            options["port"] = self.port
        if self.username:
            options["username"] = self.username
        return {**options, **self.options}

    def _s3_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
        config = {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": 30, "retries": {"max_attempts": 2}}
        config.update(self.options.get("config_kwargs") or {})
        return {**options, **self.options, "config_kwargs": config}

    def close(self) -> None:
        self._fs = None
        self._listings = {}

    def new_pass(self) -> None:
        """Forget the listings of the last pass; an object store lists the whole root now."""
        self._listings = {}
        self._primed = False
        if self._fs is None:
            raise Unreachable("not connected")
        self._fs.invalidate_cache()
        if self.object_store:
            found = self._call(self._fs.find, self.native_root, withdirs=True, detail=True)
            listings: dict[str, dict[str, dict]] = {self.native_root: {}}
            for name, info in found.items():
                name = name.rstrip("/")
                if name == self.native_root:
                    continue
                listings.setdefault(posixpath.dirname(name), {})[posixpath.basename(name)] = info
                if info.get("type") == "directory":
                    listings.setdefault(name, {})
            self._listings = listings
            self._primed = True

    def listed(self) -> list[str]:
        """The directories listed in this pass."""
        return [self.url(native) for native in self._listings]

    # --- what discovery and tailing ask --------------------------------------------------

    def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._fs is None:
            raise Unreachable("not connected")
        self.requests += 1
        try:
            return function(*args, **kwargs)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            raise
        except Exception as exc:  # noqa: BLE001 - sorted below: a file's problem, or the root's
            kind = _FILE_PROBLEMS.get(type(exc).__name__)
            if kind is not None:
                raise kind(str(exc)) from None
            raise Unreachable(*explain(exc, self)) from None

    def _listing(self, native_dir: str) -> dict[str, dict]:
        listing = self._listings.get(native_dir)
        if listing is not None:
            return listing
        if self._primed and _inside(native_dir, self.native_root):
            raise FileNotFoundError(2, "No such directory", self.url(native_dir))
        infos = self._call(self._fs.ls, native_dir, detail=True)
        listing = {posixpath.basename(info["name"].rstrip("/")): info for info in infos}
        for name, info in listing.items():
            if info.get("type") == "link":  # a readdir reports the link; what it points to decides
                try:
                    listing[name] = {**self._call(self._fs.info, posixpath.join(native_dir, name)), "link": True}
                except (FileNotFoundError, PermissionError):
                    listing[name] = {**info, "type": "other", "link": True}
        self._listings[native_dir] = listing
        return listing

    def _info(self, path: str) -> dict:
        native = self.native(path).rstrip("/") or "/"
        if native == self.native_root:
            return {"type": "directory", "size": 0}
        info = self._listing(posixpath.dirname(native)).get(posixpath.basename(native))
        if info is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        return info

    def stat(self, path: str) -> RemoteStat:
        info = self._info(path)
        kind = info.get("type")
        mode = stat.S_IFDIR | 0o755 if kind == "directory" else stat.S_IFREG | 0o644 if kind == "file" else 0
        mtime = _timestamp(info)
        return RemoteStat(mode, int(info.get("size") or 0), mtime, int(mtime * 1e9))

    def scandir(self, path: str) -> list[RemoteEntry]:
        native = self.native(path).rstrip("/") or "/"
        return [
            RemoteEntry(name, self.url(posixpath.join(native, name)), info.get("type", ""), bool(info.get("link")))
            for name, info in self._listing(native).items()
        ]

    def isdir(self, path: str) -> bool:
        return self._kind(path) == "directory"

    def isfile(self, path: str) -> bool:
        return self._kind(path) == "file"

    def exists(self, path: str) -> bool:
        return self._kind(path) is not None

    def islink(self, path: str) -> bool:
        try:
            return bool(self._info(path).get("link"))
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            return False

    def _kind(self, path: str) -> str | None:
        try:
            return self._info(path).get("type")
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            return None

    @staticmethod
    def realpath(path: str) -> str:
        return path  # links are followed, and the depth limit ends a loop

    @staticmethod
    def identity(path: str) -> object:
        return path.rstrip("/")

    def open(self, path: str) -> RangeReader:
        return RangeReader(self, self.native(path))

    def read_range(self, native: str, start: int, length: int) -> bytes:
        if self.object_store:
            data = self._call(self._fs.cat_file, native, start=start, end=start + length)
        else:
            data = self._call(self._read_sftp, native, start, length)
        self.bytes += len(data)
        return data

    def _read_sftp(self, native: str, start: int, length: int) -> bytes:
        with self._fs.open(native, "rb") as handle:
            handle.seek(start)
            return handle.read(length)


class RangeReader:
    """What `RemoteFS.open` gives: `seek(offset)` then `read(n)` is one ranged read."""

    def __init__(self, fs: RemoteFS, native: str) -> None:
        self._fs = fs
        self._native = native
        self._offset = 0

    def seek(self, offset: int) -> None:
        self._offset = offset

    def read(self, length: int = -1) -> bytes:
        data = self._fs.read_range(self._native, self._offset, length)
        self._offset += len(data)
        return data

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any, /) -> None:
        return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _timestamp(info: dict) -> float:
    for key in ("mtime", "LastModified", "updated"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


# --- what went wrong, in one line ------------------------------------------------------------


def explain(exc: BaseException, fs: RemoteFS, connecting: bool = False) -> tuple[str, bool]:
    """(one line naming the cause and the fix, whether it was an authentication refusal)."""
    name = type(exc).__name__
    text = _first_line(exc)
    cause = exc.__cause__ or exc.__context__
    where = fs.root
    if fs.object_store:
        bucket = fs.host
        if name == "NoCredentialsError":
            return (f"{where}: no credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; "
                    "--storage-option anon=true for a public bucket)", True)
        if isinstance(exc, PermissionError):
            return f"{where}: access denied: {text} (check the credentials and the bucket's policy)", True
        if isinstance(exc, FileNotFoundError):
            if "bucket" in text.lower():
                return (f"{where}: no bucket named {bucket!r} (check the name; for MinIO, R2 or Ceph give "
                        "--storage-option endpoint_url=URL)"), False
            return f"{where}: nothing there (check the prefix: no run has been written under it yet?)", False
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ConnectionClosedError"):
            return f"{where}: cannot reach the storage endpoint ({text}; check endpoint_url and the network)", False
        if isinstance(exc, socket.gaierror):
            return f"{where}: cannot resolve the storage endpoint's name (check endpoint_url)", False
        return f"{where}: {name}: {text}", False
    host = fs.host
    port = fs.port or 22
    if isinstance(exc, socket.gaierror):
        return f"{where}: unknown host {host!r} (check the name, or its Host entry in ~/.ssh/config)", False
    if isinstance(exc, ConnectionRefusedError):
        address = re.search(r"\('([^']+)', (\d+)\)", text)
        at = f" at {address[1]}:{address[2]}" if address else f" on port {port}"
        return f"{where}: connection refused by {host}{at} (is sshd running there, and on that port?)", False
    if name == "HostKeyNotVerifiable":
        return (f"{where}: host key of {host} is not in known_hosts, or does not match it (connect once with "
                f"`ssh {host}` to check and accept it)"), True
    if name == "SFTPPermissionDenied":
        return f"{where}: permission denied on {host} (the remote user may not read it: check its rights)", False
    if name == "SFTPNoSuchFile" or (isinstance(exc, FileNotFoundError) and not connecting):
        return f"{where}: no such directory on {host} (check the path; it must be absolute)", False
    if name == "PermissionDenied" or type(cause).__name__ == "PermissionDenied" or (connecting and isinstance(exc, PermissionError)):
        return (f"{where}: {host} refused our keys ({text}; load your key with ssh-add, or set IdentityFile in "
                "~/.ssh/config, and check the server's authorized_keys)"), True
    if isinstance(exc, FileNotFoundError):
        return f"{where}: no such directory on {host} (check the path; it must be absolute)", False
    if isinstance(exc, PermissionError):
        return f"{where}: permission denied on {host} (the remote user may not read it: check its rights)", False
    if isinstance(exc, (TimeoutError, socket.timeout)) or name in ("FSTimeoutError", "TimeoutError"):
        return f"{where}: no answer from {host} (host down or unreachable; check ProxyJump or the VPN)", False
    if name in ("ConnectionLost", "DisconnectError", "ChannelOpenError", "SFTPNoConnection", "SFTPConnectionLost") or isinstance(exc, (ConnectionError, EOFError)):
        return f"{where}: connection to {host} lost ({text}); reconnecting", False
    return f"{where}: {name}: {text}", False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
