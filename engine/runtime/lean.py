"""Start-up without plugin discovery, for the engine's processes.

gevent (at every monkey patch) and pydantic (at the first model class) look for plugins by
reading the metadata of every installed distribution through ``importlib.metadata``. The engine
uses no plugin of either, and ``importlib.metadata`` with what it imports (``email``,
``zipfile``, ``csv``...) stays resident: about 2.5 MB in the supervisor and again in each
worker forked from it. Call ``skip_plugin_discovery`` before ``monkey.patch_all()`` and before
the first pydantic model is defined.
"""

from __future__ import annotations

import sys
import types

# pydantic imports this module (and through it importlib.metadata) only to call get_plugins().
_PYDANTIC_LOADER = "pydantic.plugin._loader"


def skip_plugin_discovery() -> None:
    import gevent.events

    # Subscribers registered in this process are still told; only the metadata scan goes.
    gevent.events.notify_and_call_entry_points = gevent.events.notify  # type: ignore[assignment]
    if _PYDANTIC_LOADER not in sys.modules:
        loader = types.ModuleType(_PYDANTIC_LOADER)
        loader.get_plugins = _no_plugins  # type: ignore[attr-defined]
        sys.modules[_PYDANTIC_LOADER] = loader


def _no_plugins() -> tuple[()]:
    return ()
