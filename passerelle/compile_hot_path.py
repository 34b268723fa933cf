"""Compiles the request path (``passerelle.engine.compiled.HOT_MODULES``) to C with mypyc,
and builds the C modules that stand in for Python ones (``C_MODULES``).

    python -m passerelle.compile_hot_path [--force]

The result lands in ``engine/_compiled/`` with a manifest of the sources it was built from;
the engine loads it only while every source still matches (see ``passerelle.engine.compiled``).
A build whose sources, interpreter and mypy version are unchanged is kept: the command then
returns at once, so ``scripts/setup`` can run it every time.

The engine's folder is installed as ``passerelle.engine``, and mypyc names modules after the
folders they sit in: the build runs in a scratch tree where ``passerelle/engine`` links to it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from passerelle.engine import compiled
from passerelle.engine.compiled import (
    BUILT_MODULES,
    C_MODULES,
    HOT_MODULES,
    MANIFEST,
    extension_suffix,
    source_digest,
)

# One shared library for the group; its name is the module the compiled modules import.
GROUP = "passerelle_hot_path"
# mypy checks the hot modules (whose errors stop the build) and reads what they import only for
# types: gevent has no type information, and the rest of the engine is not held to mypy.
MYPY_FLAGS = ("--ignore-missing-imports", "--follow-imports=silent", "--python-version=3.11")
BUILD_SCRIPT = """
import sys
from setuptools import Extension, setup
from mypyc.build import mypycify

c_modules = [Extension(name, [source], extra_compile_args=["-O2"]) for name, source in {c}]
setup(
    name="{group}",
    ext_modules=[
        *mypycify(sys.argv[3:], group_name="{group}", opt_level="3", debug_level="0"),
        *c_modules,
    ],
    script_args=["build_ext", "--build-lib", sys.argv[1], "--build-temp", sys.argv[2]],
)
"""


def _made_by() -> dict[str, str]:
    """What made a build besides its sources: the mypy and the interpreter (headers included)."""
    return {"mypy": metadata.version("mypy"), "python": sys.version}


def _is_current(out: Path, engine_root: Path) -> bool:
    """True when ``out`` holds a build the engine would load, made by this mypy and Python.

    Two builds of CPython 3.11 share a file suffix, so the engine would load either; but one
    built against another interpreter's headers is rebuilt here, where it costs only time.
    """
    files, _ = compiled.usable_build(str(out), str(engine_root))
    if not files or not all(os.path.exists(file) for file in files.values()):
        return False
    manifest = json.loads((out / MANIFEST).read_text())
    return all(manifest.get(key) == value for key, value in _made_by().items())


def build(engine_root: Path, force: bool = False) -> Path:
    """Compile the hot modules of ``engine_root`` into its _compiled folder; returns it."""
    out = engine_root / "_compiled"
    if not force and _is_current(out, engine_root):
        return out
    suffix = extension_suffix()
    # Taken before compiling: a source edited meanwhile then makes the build stale, not current.
    digests = {
        module: source_digest(compiled.source_path(module, str(engine_root)))
        for module in (*BUILT_MODULES, *compiled.INLINED_MODULES)
    }
    with tempfile.TemporaryDirectory(prefix="passerelle-compile-") as scratch:
        tree = Path(scratch)
        (tree / "passerelle").mkdir()
        (tree / "passerelle" / "__init__.py").write_text("")
        (tree / "passerelle" / "engine").symlink_to(engine_root.resolve())
        paths = [str(Path(*m.split(".")).with_suffix(".py")) for m in HOT_MODULES]
        c_sources = [(m, str(Path(*m.split(".")).with_suffix(".c"))) for m in C_MODULES]
        script = BUILD_SCRIPT.format(group=GROUP, c=repr(c_sources))
        command = [sys.executable, "-c", script, "lib", "temp", *MYPY_FLAGS, *paths]
        result = subprocess.run(command, cwd=tree, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"mypyc failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        staged = tree / "staged"
        staged.mkdir()
        modules: dict[str, dict[str, str]] = {}
        for module in BUILT_MODULES:
            name = module.rsplit(".", 1)[1] + suffix
            shutil.copy2(tree / "lib" / Path(*module.split(".")[:-1]) / name, staged / name)
            modules[module] = {"file": name, "sha256": digests[module]}
        runtime = f"{GROUP}__mypyc"
        shutil.copy2(tree / "lib" / (runtime + suffix), staged / (runtime + suffix))
        manifest = {
            "suffix": suffix,
            **_made_by(),
            "modules": modules,
            "inlined": {module: digests[module] for module in compiled.INLINED_MODULES},
            "runtime": {runtime: runtime + suffix},
        }
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        # Replace the old build whole: a half-replaced one would mix two builds.
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(staged, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="build even if the build is current")
    args = parser.parse_args(argv)
    engine_root = Path(compiled.ENGINE_ROOT)
    os.environ.setdefault("MYPY_FORCE_COLOR", "0")
    out = build(engine_root, force=args.force)
    print(f"compiled {len(HOT_MODULES)} modules and built {len(C_MODULES)} into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
