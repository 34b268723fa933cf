"""The request path compiled to C by mypyc, used only while it matches its sources.

``scripts/setup`` and the image build compile ``HOT_MODULES`` (see
``passerelle.compile_hot_path``), and build ``C_MODULES`` from their C sources, into
``_compiled/``, with a manifest of each source's SHA-256. On the first import of one of them,
the finder installed here checks the manifest: the build must be for this interpreter and every
source unchanged since it, or all the built modules run from source. It is all or nothing
because compiled modules call each other directly, past the import system.
``PASSERELLE_COMPILED=0`` runs them from source on purpose.

Imports stay lazy: ``passerelle config apply`` imports the engine package and never runs a
hot module, so it must not pay for hashing them.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # `typing` itself would cost `config apply` a few milliseconds
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from pathlib import Path

# The modules a request runs through, compiled together (one shared library).
HOT_MODULES = (
    "passerelle.engine.http.codec",
    "passerelle.engine.http.plain_head",
    "passerelle.engine.http.lane",
    "passerelle.engine.http.proxy",
    "passerelle.engine.http.upstream",
    "passerelle.engine.http.wire",
    "passerelle.engine.http.rules",
    "passerelle.engine.http.sockio",
    "passerelle.engine.runtime.pools",
    "passerelle.engine.balance.scheduling",
    "passerelle.engine.balance.persistence",
    "passerelle.engine.relay.spliced",
    "passerelle.engine.stats.deferred",
)
# Modules written in C for the build, each in place of the Python module of the same name, which
# runs whenever the build does not.
C_MODULES = ("passerelle.engine.runtime.nonblocking_io",)
BUILT_MODULES = (*HOT_MODULES, *C_MODULES)
# Modules outside the build whose ``Final`` constants the build carries as literals: a change to
# them outdates it as much as a change to a hot module.
INLINED_MODULES = ("passerelle.engine.stats.counters",)
PACKAGE = "passerelle.engine"
SWITCH = "PASSERELLE_COMPILED"
ENGINE_ROOT = os.path.dirname(os.path.abspath(__file__))
COMPILED_DIR = os.path.join(ENGINE_ROOT, "_compiled")
MANIFEST = "manifest.json"


def source_path(module: str, engine_root: str = ENGINE_ROOT) -> str:
    """The source file of ``module`` (a name under passerelle.engine) that the build is from."""
    relative = module.removeprefix(PACKAGE + ".").replace(".", os.sep)
    return os.path.join(engine_root, relative + (".c" if module in C_MODULES else ".py"))


def source_digest(path: str | Path) -> str:
    import hashlib

    with open(path, "rb") as source:
        return hashlib.sha256(source.read()).hexdigest()


def extension_suffix() -> str:
    """The file ending of an extension module built for this interpreter."""
    import importlib.machinery

    return importlib.machinery.EXTENSION_SUFFIXES[0]


def usable_build(
    compiled_dir: str = COMPILED_DIR, engine_root: str = ENGINE_ROOT
) -> tuple[dict[str, str], str]:
    """The compiled files to load by module name, or none with the reason why."""
    import json

    try:
        with open(os.path.join(compiled_dir, MANIFEST), encoding="utf-8") as file:
            manifest = json.load(file)
    except FileNotFoundError:
        return {}, "not built (scripts/setup builds it)"
    except (OSError, ValueError) as exc:
        return {}, f"unreadable manifest: {exc}"
    if manifest.get("suffix") != extension_suffix():
        return (
            {},
            f"built for {manifest.get('suffix')}, this interpreter takes {extension_suffix()}",
        )
    files: dict[str, str] = {}
    modules: dict[str, dict[str, str]] = manifest.get("modules", {})
    inlined: dict[str, str] = manifest.get("inlined", {})
    if set(modules) != set(BUILT_MODULES) or set(inlined) != set(INLINED_MODULES):
        return {}, "built for another set of modules"
    digests = {module: entry["sha256"] for module, entry in modules.items()} | inlined
    for module, digest in digests.items():
        try:
            fresh = source_digest(source_path(module, engine_root)) == digest
        except OSError:
            fresh = False
        if not fresh:
            return {}, f"{module} changed since it was compiled (scripts/setup compiles it again)"
    for module, entry in modules.items():
        files[module] = os.path.join(compiled_dir, entry["file"])
    for module, file in manifest.get("runtime", {}).items():
        files[module] = os.path.join(compiled_dir, file)
    return files, "compiled"


class CompiledFinder:
    """A meta path finder that answers for the hot modules once, with the build or with nothing."""

    def __init__(self, compiled_dir: str = COMPILED_DIR, engine_root: str = ENGINE_ROOT) -> None:
        self.compiled_dir = compiled_dir
        self.engine_root = engine_root
        self.files: dict[str, str] | None = None  # checked on first use
        self.state = "not checked yet"

    def check(self) -> dict[str, str]:
        """The files to load by module name (none: run from source, see ``state``)."""
        if self.files is None:
            self.files, self.state = usable_build(self.compiled_dir, self.engine_root)
        return self.files

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> ModuleSpec | None:
        if self.files is None and fullname not in BUILT_MODULES:
            return None  # nothing checked until a built module is imported
        file = self.check().get(fullname)
        if file is None:
            return None
        from importlib.machinery import ExtensionFileLoader
        from importlib.util import spec_from_file_location

        return spec_from_file_location(fullname, file, loader=ExtensionFileLoader(fullname, file))


def _switched_off() -> bool:
    return os.environ.get(SWITCH, "1") == "0"


def _installed() -> CompiledFinder | None:
    for finder in sys.meta_path:
        if isinstance(finder, CompiledFinder):
            return finder
    return None


def install() -> CompiledFinder | None:
    """Put the finder first on the import path, unless PASSERELLE_COMPILED=0 asks for sources."""
    if _switched_off():
        return None
    finder = _installed()
    if finder is None:
        finder = CompiledFinder()
        sys.meta_path.insert(0, finder)
    return finder


def describe() -> str:
    """How the hot modules run in this process: compiled, or from source and why."""
    if _switched_off():
        return f"from source ({SWITCH}=0)"
    finder = _installed()
    if finder is None:
        return "from source"
    return "compiled" if finder.check() else f"from source: {finder.state}"
