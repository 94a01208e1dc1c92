"""Outputs appear whole or not at all, and replace only kmervae's own outputs.

Everything kmervae writes goes to a temporary sibling path first (same directory, so
the final rename is atomic on one file system) and is renamed into place only after it
was written completely. A failure or an interrupt removes the temporary path and
leaves any previous output untouched.

What may stand at an output path is declared once per kind of output (:class:`Kind`):
nothing, an empty directory, or a finished output of the same kind (a zarr group whose
``format`` attribute matches, a model directory holding only model files, a plain file
for file outputs). Anything else, the working directory and its ancestors included, is
refused with a :class:`~kmervae.errors.KmervaeError` before any work is done
(:func:`prepare_output`) and again right before the swap (:func:`publish`).

A finished directory replaces an existing one by one ``renameat2(RENAME_EXCHANGE)`` on
Linux (``renamex_np(RENAME_SWAP)`` on macOS), so a reader finds a whole output at the
path at every instant, even with concurrent writers; elsewhere (or on a file system
without it) the old directory is moved aside first and the path is briefly missing.

Temporary names embed the host and PID of their writer
(``.NAME.tmp-PID-HOST-XXXXXXXX``); a stage starting on an output removes the
temporaries of that output whose writer on this host is gone (killed with SIGKILL, or
the machine lost power).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import socket
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import KmervaeError

#: attempts at swapping a directory in while other writers publish the same path
_PUBLISH_ATTEMPTS = 100
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


@dataclass(frozen=True)
class Kind:
    """A kind of output: what it is called and how a finished one is recognised."""

    what: str
    directory: bool
    recognise: Callable[[Path], bool]


def _zarr_format(path: Path) -> str | None:
    try:
        meta = json.loads((path / "zarr.json").read_text())
        return meta.get("attributes", {}).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def zarr_group(fmt: str) -> Kind:
    """A zarr v3 group whose ``format`` attribute is ``fmt`` (k-mer and embedding stores)."""
    return Kind(f"{fmt} store", True, lambda p: p.is_dir() and _zarr_format(p) == fmt)


def _temporary_of(entry: str, names: frozenset[str]) -> bool:
    return entry.startswith(".") and entry.partition(".tmp-")[0][1:] in names


def files_directory(what: str, names: tuple[str, ...]) -> Kind:
    """A directory holding only files named in ``names`` (or their temporaries)."""
    allowed = frozenset(names)

    def recognise(path: Path) -> bool:
        if not path.is_dir():
            return False
        entries = os.listdir(path)
        return all(e in allowed or _temporary_of(e, allowed) for e in entries)

    return Kind(what, True, recognise)


FILE = Kind("file", False, lambda p: p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _host() -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in socket.gethostname())[:64] or "host"


#: temporaries this process named; what is left of them when it is interrupted is unfinished
_OWN_TEMPORARIES: set[Path] = set()


def temporary_sibling(path: str | os.PathLike) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{_host()}-{uuid.uuid4().hex[:8]}")
    _OWN_TEMPORARIES.add(tmp)
    return tmp


def remove_own_temporaries() -> None:
    """Remove every temporary this process named that still exists (when a signal stops it
    where no context manager could clean up, e.g. inside a writer's constructor)."""
    for tmp in list(_OWN_TEMPORARIES):  # kept: a second call removes what a late write recreated
        with contextlib.suppress(OSError):
            _remove(tmp)


def _writer_gone(tail: str) -> bool:
    """Whether the writer of a temporary ``.NAME.tmp-<tail>`` is known to have ended."""
    pid, _, rest = tail.partition("-")
    host = rest.rpartition("-")[0] or None  # None: a name from before hosts were recorded
    if not pid.isdigit() or (host is not None and host != _host()):
        return False  # not ours, or written on another host: its PID says nothing here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive under another user
    return False


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``path`` left by writers that are gone; return them."""
    path = Path(path)
    if os.name == "nt":  # os.kill would terminate the process instead of probing it
        return []
    prefix = f".{path.name}.tmp-"
    try:
        entries = [e for e in os.listdir(path.parent) if e.startswith(prefix)]
    except OSError:
        return []
    stale = [path.parent / e for e in entries if _writer_gone(e[len(prefix) :])]
    for entry in stale:
        with contextlib.suppress(OSError):
            _remove(entry)
    return stale


def _is_cwd_or_ancestor(path: Path) -> bool:
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        return False
    resolved = path.resolve()
    return resolved == cwd or resolved in cwd.parents


def check_replaceable(path: str | os.PathLike, kind: Kind) -> None:
    """Refuse (KmervaeError) unless ``path`` is free for an output of ``kind``."""
    path = Path(path)
    if _is_cwd_or_ancestor(path):
        raise KmervaeError(f"{path}: is the working directory or one of its parents; choose another output")
    if path.name in ("", ".", ".."):
        raise KmervaeError(f"{path}: not a name for an output; choose a path such as OUT.zarr")
    if path.is_symlink() or not path.exists():
        return  # a link is replaced, its target never touched
    if kind.directory and path.is_dir() and not any(os.scandir(path)):
        return
    if kind.recognise(path):
        return
    if path.is_dir() and not kind.directory:
        found = "a directory, not a file"
    elif not path.is_dir() and not path.is_file():
        found = "not a regular file or directory"
    else:
        found = f"{'a directory' if path.is_dir() else 'a file'} that is not a {kind.what}"
    raise KmervaeError(
        f"{path}: exists and is {found}; refusing to replace it (remove it or choose another output path)"
    )


def prepare_output(path: str | os.PathLike, kind: Kind) -> Path:
    """Check that ``path`` may receive an output of ``kind``, create its parent, and remove
    temporaries of it left by killed writers; one line naming the path when it cannot be written."""
    path = Path(path)
    check_replaceable(path, kind)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise KmervaeError(f"{path}: cannot write here: {parent} is not a directory") from None
    except OSError as exc:
        raise KmervaeError(f"{path}: cannot create its directory {parent} ({exc.strerror})") from None
    if not parent.is_dir():
        raise KmervaeError(f"{path}: cannot write here: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise KmervaeError(f"{path}: cannot write here: {parent} is not writable")
    remove_stale_temporaries(path)
    return path


def _swap_function():
    """``swap(a, b)``: exchange two paths atomically, or None where the OS has no such call."""
    if not (sys.platform.startswith("linux") or sys.platform == "darwin"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except (OSError, TypeError):
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        call = libc.renameat2
        call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        at_fdcwd, rename_exchange = -100, 2

        def swap(a, b):
            return call(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)

    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        call = libc.renamex_np
        call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        rename_swap = 2

        def swap(a, b):
            return call(os.fsencode(a), os.fsencode(b), rename_swap)

    else:
        return None

    def checked(a, b) -> None:
        if swap(a, b) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(a), None, str(b))

    return checked


_swap = _swap_function()


def _replace_aside(tmp: Path, path: Path) -> bool:
    """Where paths cannot be exchanged: move the old directory aside, then ``tmp`` in (the
    path is missing in between). False when another writer got in the way: try again."""
    old = temporary_sibling(path)
    try:
        os.replace(path, old)
    except FileNotFoundError:
        return False
    try:
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            _remove(old)  # another writer's output took the path meanwhile
            return False
        with contextlib.suppress(OSError):
            os.replace(old, path)
        raise
    _remove(old)
    return True


def _publish_directory(tmp: Path, path: Path) -> None:
    swap = _swap
    for _ in range(_PUBLISH_ATTEMPTS):
        if not os.path.lexists(path):
            try:
                os.rename(tmp, path)  # replaces nothing but an empty directory
                return
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                    raise
                continue  # another writer published first: swap with its output
        if swap is None:
            if _replace_aside(tmp, path):
                return
            continue
        try:
            swap(tmp, path)
        except FileNotFoundError:
            if not os.path.lexists(tmp):
                raise
            continue  # another writer's swap-out is in progress
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            swap = None  # this file system cannot exchange (NFS, some FUSE)
            continue
        _remove(tmp)  # now the previous output
        return
    raise KmervaeError(f"{path}: could not publish the output: other processes keep replacing it")


def publish(tmp: str | os.PathLike, path: str | os.PathLike, kind: Kind | None = None) -> None:
    """Move a finished temporary file or directory onto ``path``, replacing what was there
    (only when it is an output of ``kind``). ``tmp`` is left to the caller on failure."""
    tmp, path = Path(tmp), Path(path)
    if kind is not None:
        check_replaceable(path, kind)
    if tmp.is_dir() and not tmp.is_symlink():
        _publish_directory(tmp, path)
    else:
        os.replace(tmp, path)
    _OWN_TEMPORARIES.discard(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, kind: Kind = FILE):
    """Yield a temporary path to write; rename it onto ``path`` if the block succeeds.

    >>> with atomic_path("out.tsv") as tmp:
    ...     tmp.write_text("a\\tb\\n")
    """
    path = prepare_output(path, kind)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        publish(tmp, path, kind)
    except BaseException:
        _remove(tmp)
        raise
