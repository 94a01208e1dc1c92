"""Model configuration: the key table of :mod:`kmervae.vae.config`, under its public name.

``kmervae.config.load(path, overrides)``, ``resolve``, ``validate``, ``config_hash`` and
``dump`` are what commands, the workflow and tests use; the table and its documentation
live in :mod:`kmervae.vae.config`.
"""

from .vae.config import (  # noqa: F401
    DEFAULTS,
    KEYS,
    TABLE,
    canonical,
    config_hash,
    dump,
    load,
    parse_override,
    read_ks,
    resolve,
    validate,
)
