"""The disk cache of generated Triton kernels, under `$GEO_CACHE_DIR` (default `~/.cache/geo`), in `triton/`.

`@triton.jit` reads a kernel's source with `inspect`; each entry is a Python module's text, compiled and run
from the bytes that were verified, with those lines registered in `linecache` (under a name no file can have),
so `inspect` — and Triton's interpreter, which reads the source again at the first launch — see exactly them:
nothing is read back from the disk after the check (deleting or truncating an entry while steps run changes
nothing).

    name     sha256 of everything the source is generated from — the program as `--emit opt` prints it (nodes,
             statics, spans), the phase, the launch (dtypes, access patterns), BLOCK, the device, the versions of
             geo, its code generator and device library, Triton and torch — so a hit skips generation
    header   `# geo-triton hmac-sha256=<hex>`: an HMAC, keyed with this user's secret (`.geo-key` in the folder,
             32 random bytes, readable by its owner alone), of the module text below the header together with
             the constexprs, device and versions; an entry whose text no longer matches it (torn, edited, or
             written by anyone without the key) is rebuilt

Trust model. An entry is code that runs in the process, so the cache is used only where nobody else can write:
the `triton/` folder must be a directory owned by the current user and not writable by group or others (it is
created 0700), and an entry must be a regular file owned by the user and not writable by group or others (a
symbolic link is not followed), besides carrying a valid HMAC. Every check is made on the open descriptor
(the folder is opened once and entries are opened relative to it), so nothing can be swapped between the check
and the use. Where the folder fails a check (another user's, group- or world-writable, a file rather than a
folder, not creatable, not a POSIX system), geo warns once and keeps its kernels in memory for the process,
generating them again; an entry that fails one (a directory, a FIFO, a link, another owner's, a bad HMAC, not
UTF-8, too large) is generated again and replaced where it can be. A cache problem never fails or blocks a step.

Entries are written atomically (a temporary file in the same folder, then `os.replace`), so a concurrent reader
sees the old entry or the new one, never half of one. No bytecode is written. Triton keeps its own cache of
compiled binaries (keyed by the source, constexprs and target); this one holds the source.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import linecache
import os
import secrets
import stat
import types
import warnings
from pathlib import Path
from typing import Any, Callable

STATS = {"generated": 0, "disk_hits": 0, "memory_hits": 0, "rebuilt": 0, "untrusted": 0, "unwritable": 0}
_LOADED: dict[str, Any] = {}  # name -> module, for this process
_KEYS: dict[tuple[int, int], bytes] = {}  # (st_dev, st_ino) of a trusted folder -> its key, read once per process
_WARNED: set[str] = set()
_PREFIX = "# geo-triton hmac-sha256="
KEY_FILE = ".geo-key"
KEY_BYTES = 32
MAX_ENTRY_BYTES = 16 << 20  # a generated module is tens of kB; anything bigger is not one of ours
_POSIX = hasattr(os, "getuid") and hasattr(os, "O_NOFOLLOW") and os.open in os.supports_dir_fd


def cache_dir() -> Path:
    root = os.environ.get("GEO_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "geo")
    return Path(root) / "triton"


def versions() -> dict[str, str]:
    import torch
    import triton

    from ....version import __version__
    from . import codegen, device
    library = hashlib.sha256(Path(device.__file__).read_bytes()).hexdigest()[:16]
    return {"geo": __version__, "codegen": codegen.CODEGEN_VERSION, "library": library,
            "triton": triton.__version__, "torch": torch.__version__}


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()


def clear_memory() -> None:
    """Forgets the modules loaded by this process and the keys read (the disk cache stays)."""
    _LOADED.clear()
    _KEYS.clear()
    _WARNED.clear()


def load(key_parts: Any, generate: Callable[[], str], context: Any) -> Any:
    """The module for `key_parts`: from this process, else from the disk cache, else `generate()`d (and written
    to the cache where the cache is trusted).

    `context` (constexprs, device, versions) is authenticated with the text in the entry's header."""
    name = "k" + digest(key_parts)[:40]
    module = _LOADED.get(name)
    if module is not None:
        STATS["memory_hits"] += 1
        return module
    folder = _Folder.open()
    try:
        text, present = folder.read(name, context) if folder is not None else (None, False)
        if text is not None:
            STATS["disk_hits"] += 1
        else:
            if present:
                STATS["rebuilt"] += 1
            text = _generated(name, generate, context, folder)
        try:
            module = _run(name, text)
        except Exception:  # noqa: BLE001 - an entry that verified but does not run (another version's): rebuild once
            STATS["rebuilt"] += 1
            module = _run(name, _generated(name, generate, context, folder))
    finally:
        if folder is not None:
            folder.close()
    _LOADED[name] = module
    return module


def _generated(name: str, generate: Callable[[], str], context: Any, folder: "_Folder | None") -> str:
    STATS["generated"] += 1
    body = generate()
    key = folder.key if folder is not None else None
    text = f"{_PREFIX}{_seal(key, body, context)}\n{body}"
    if folder is not None:
        folder.write(name, text)
    return text


def _seal(key: bytes | None, body: str, context: Any) -> str:
    message = json.dumps([body, context], sort_keys=True, default=repr).encode()
    return hmac.new(key or b"", message, hashlib.sha256).hexdigest()


def _run(name: str, text: str) -> Any:
    """The module made from `text`, exactly these bytes: compiled and run, with its lines in `linecache` under
    a name in angle brackets (linecache never reads such a name from a disk, and `checkcache` keeps an entry
    with no modification time), where `inspect.getsource` and Triton find them."""
    filename = f"<geo-triton {name}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    module = types.ModuleType(f"geo_triton_{name}")
    module.__file__ = filename
    exec(compile(text, filename, "exec", dont_inherit=True), module.__dict__)  # noqa: S102 - our generated code
    return module


def _uid() -> int:
    return os.getuid()


def _safe(st: os.stat_result) -> bool:
    """Owned by this user and writable by nobody else."""
    return st.st_uid == _uid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _warn(folder: Path, why: str) -> None:
    STATS["untrusted"] += 1
    if str(folder) not in _WARNED:
        _WARNED.add(str(folder))
        warnings.warn(f"geo: not using the Triton kernel cache {folder}: {why}; kernels are generated for this "
                      "process only (docs/triton.md, the cache's trust model)", RuntimeWarning, stacklevel=4)


_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_CREATE = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))


class _Folder:
    """The trusted `triton/` folder, open: every entry is read and written relative to this descriptor."""

    def __init__(self, fd: int, key: bytes):
        self.fd, self.key = fd, key

    @classmethod
    def open(cls) -> "_Folder | None":
        path = cache_dir()
        if not _POSIX:
            _warn(path, "ownership cannot be checked on this system")
            return None
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        except (OSError, ValueError) as err:  # `triton` is a file, the folder cannot be created, a NUL in the path
            _warn(path, f"it cannot be used ({getattr(err, 'strerror', None) or err})")
            return None
        try:
            st = os.fstat(fd)
            why = ("it is not a folder" if not stat.S_ISDIR(st.st_mode) else
                   "it belongs to another user" if st.st_uid != _uid() else
                   "others can write to it" if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) else None)
            key = None if why else _key(fd, (st.st_dev, st.st_ino))
            if why or key is None:
                _warn(path, why or "its key cannot be read or made")
                os.close(fd)
                return None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, key)

    def close(self) -> None:
        os.close(self.fd)

    def read(self, name: str, context: Any) -> tuple[str | None, bool]:
        """(the entry's text if it is trusted and intact else None, whether something is there by that name)."""
        data = _read_private(f"{name}.py", self.fd, MAX_ENTRY_BYTES, private=False)
        if data is None:
            return None, False
        if not isinstance(data, bytes):
            return None, True
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None, True
        header, sep, body = text.partition("\n")
        seal = header[len(_PREFIX):] if header.startswith(_PREFIX) else ""
        if not sep or not hmac.compare_digest(seal, _seal(self.key, body, context)):
            return None, True
        return text, True

    def write(self, name: str, text: str) -> None:
        """Writes the entry atomically; where it cannot (a directory by that name, a full disk), the kernel stays
        in memory for this process."""
        if not _write_private(f"{name}.py", text.encode("utf-8"), self.fd):
            STATS["unwritable"] += 1


def _read_private(name: str, dir_fd: int, limit: int, private: bool) -> bytes | bool | None:
    """The bytes of `name` in the folder, or None if there is nothing by that name, or False if it is not a
    regular file owned by this user, writable by nobody else (and with `private`, readable by nobody else) of at
    most `limit` bytes. Opened without following a link and without blocking (a FIFO)."""
    try:
        fd = os.open(name, _READ, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError:  # a symbolic link (ELOOP), a socket (ENXIO), no permission
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _safe(st) or st.st_size > limit or (
                private and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO)):
            return False
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks) if size <= limit else False
    except OSError:
        return False
    finally:
        os.close(fd)


def _write_private(name: str, data: bytes, dir_fd: int, exclusive: bool = False) -> bool:
    """Writes `name` in the folder through a temporary file of mode 0600 and `os.replace` (with `exclusive`,
    `os.link`, which fails where `name` exists); whether it was written."""
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, _CREATE, 0o600, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if exclusive:
                os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            else:
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return True
        except OSError:
            return False
    finally:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass


def _key(dir_fd: int, folder_id: tuple[int, int]) -> bytes | None:
    """This user's key for the folder: read from `.geo-key` (a regular file of 32 bytes, the user's, readable by
    nobody else), or made (32 random bytes) where there is none or it is not one. Two processes making it at once
    agree: it is created with `os.link`, which only one of them wins; the other reads the winner's."""
    key = _KEYS.get(folder_id)
    if key is not None:
        return key
    for _ in range(3):
        data = _read_private(KEY_FILE, dir_fd, KEY_BYTES, private=True)
        if isinstance(data, bytes) and len(data) == KEY_BYTES:
            key = data
            break
        fresh = secrets.token_bytes(KEY_BYTES)
        if data is None:
            if _write_private(KEY_FILE, fresh, dir_fd, exclusive=True):
                key = fresh
                break
            continue  # another process made it first: read theirs
        if _write_private(KEY_FILE, fresh, dir_fd):  # a damaged or foreign key: replaced (its entries are rebuilt)
            key = fresh
            break
        return None  # a directory by that name, say: no key, no disk cache
    if key is not None:
        _KEYS[folder_id] = key
    return key
