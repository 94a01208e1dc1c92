"""kmervae: multi-scale canonical k-mer profiles of contigs, a VAE over them, and its embeddings."""

import os as _os

from .version import __version__  # noqa: F401


def __getattr__(name: str):
    """``kmervae.neighbours`` (a DataFrame of an index's neighbours), imported on first use."""
    if name == "neighbours":
        from .index import neighbours

        return neighbours
    raise AttributeError(f"module 'kmervae' has no attribute {name!r}")


def _writable(directory: str) -> bool:
    """Whether ``directory`` exists writable, or could be created under a writable ancestor."""
    path = _os.path.abspath(directory)
    while not _os.path.isdir(path):
        if _os.path.lexists(path) or _os.path.dirname(path) == path:
            return False
        path = _os.path.dirname(path)
    return _os.access(path, _os.W_OK | _os.X_OK)


def _numba_cache_dir() -> None:
    """Point numba's cache of compiled kernels at a writable place before numba is imported.

    numba caches next to the sources (``__pycache__``) or else in the user's cache directory;
    when neither is writable (an installed package and a read-only or missing HOME) every
    ``cache=True`` kernel fails with "cannot cache function". Then the cache goes to a
    per-user directory under the system's temporary directory.
    """
    if _os.environ.get("NUMBA_CACHE_DIR"):
        return
    if _writable(_os.path.join(_os.path.dirname(__file__), "__pycache__")):
        return
    xdg = _os.environ.get("XDG_CACHE_HOME") or _os.path.join(_os.path.expanduser("~"), ".cache")
    if _writable(_os.path.join(xdg, "numba")):
        return
    import tempfile

    user = getattr(_os, "getuid", lambda: "user")()
    _os.environ["NUMBA_CACHE_DIR"] = _os.path.join(tempfile.gettempdir(), f"kmervae-numba-{user}")


_numba_cache_dir()
