"""A user's own datasets, architectures, localizers and detection signals: modules imported in every process.

The registries (sweep.data.DATASETS, sweep.models.MODELS, sweep.localizers.LOCALIZERS, analyses.signals) are
filled by importing modules, and each Ray worker is a process of its own: what the user's script registered in
the driver does not exist there. So a plug-in is named, not registered: `--plugin SPEC` (a module name or a
path to a `.py` file), a grid file's `plugins = [...]`, or an entry point of an installed package in one of
ENTRY_POINT_GROUPS. The driver imports them before it reads the grid (a grid may name what they register), puts
the resolved specs in `Options.plugins`, and every trial and analysis task imports the same specs first
(`activate`), before anything looks a name up.

A spec as the workers receive it is a module name or an absolute `.py` path. On a private local cluster every
worker sees the driver's files and installed packages. On a joined cluster (--address) the `.py` files and the
folders of local (not installed) modules travel in Ray's runtime environment (`py_modules`, see `shipped`);
there a worker without the file at its path imports it by its name, which Ray put on its PYTHONPATH. Installed
packages (entry points) are not shipped: on a multi-node cluster they must be installed on every node.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

from sweep.errors import UserError

ENTRY_POINT_GROUPS = ("memloc_sweep.datasets", "memloc_sweep.models", "memloc_sweep.localizers",
                      "memloc_sweep.signals")
OWN_PACKAGES = ("sweep", "analyses")  # every worker imports these already: a module in them is never shipped
ACCEPTED = "give an importable module name (my_package.plugin) or a path to a .py file"

_loaded: dict[str, ModuleType] = {}  # spec -> its module, per process: importing twice would register twice


def is_path(spec: str) -> bool:
    """Whether a spec names a file (`mine.py`, `./x/mine.py`) rather than a module (`my_package.plugin`)."""
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def resolve(specs: Iterable[str], base: str | Path | None = None, flag: str = "--plugin") -> tuple[str, ...]:
    """Specs as every process takes them: `.py` paths made absolute against `base` (the driver's working
    directory unless given; a grid file's folder for its own `plugins`) and checked to exist, module names
    checked for form; duplicates kept once. UserError names the spec and what is accepted."""
    out: list[str] = []
    for raw in specs:
        spec = str(raw).strip()
        if not spec:
            raise UserError(f"{flag} is empty; {ACCEPTED}")
        if is_path(spec):
            if not spec.endswith(".py"):
                raise UserError(f"{flag} {spec}: not a .py file; {ACCEPTED}")
            path = Path(base or os.getcwd(), spec).expanduser().resolve()
            if not path.is_file():
                raise UserError(f"{flag} {spec}: no such file ({path}); {ACCEPTED}")
            spec = str(path)
        elif not all(part.isidentifier() for part in spec.split(".")):
            raise UserError(f"{flag} {spec}: not a module name; {ACCEPTED}")
        if spec not in out:
            out.append(spec)
    return tuple(out)


def activate(specs: Sequence[str], flag: str = "--plugin") -> list[ModuleType]:
    """Import each resolved spec once in this process (a second call returns the same modules), so that what
    they register is there. Any failure is one UserError: `<flag> <spec>: <what went wrong>`."""
    return [_activate(spec, flag) for spec in specs]


def _activate(spec: str, flag: str) -> ModuleType:
    if spec in _loaded:
        return _loaded[spec]
    try:
        module = _import_path(spec, flag) if spec.endswith(".py") else _import_name(spec, flag)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raised, as one line
        raise UserError(f"{flag} {spec}: importing it raised {_first_line(exc)}") from exc
    _loaded[spec] = module
    return module


def _import_name(name: str, flag: str) -> ModuleType:
    """A module by name; the working directory is searched last, as `python -m` would (the console script and
    `python run_sweep.py` leave it off sys.path)."""
    try:
        found = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a parent package is missing
        found = None
    if found is None and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
        importlib.invalidate_caches()
        try:
            found = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            found = None
        if found is None:  # not there either: the search path stays as it was
            sys.path.remove(os.getcwd())
    if found is None:
        raise UserError(f"{flag} {name}: no module named {name!r} (not installed, not in the working directory); "
                        f"{ACCEPTED}")
    return importlib.import_module(name)


def _import_path(path: str, flag: str) -> ModuleType:
    """A `.py` file under its stem's name, its folder searched last for its own imports (as running it would).
    Where the file is not at this path (a node of a joined cluster), the copy Ray shipped, found by name."""
    file = Path(path)
    name = file.stem
    if not file.is_file():
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            raise UserError(f"{flag} {path}: no such file on this node, and no shipped copy named {name!r} "
                            "(was it given to the driver of this sweep?)") from exc
    present = sys.modules.get(name)
    if present is not None:
        if getattr(present, "__file__", None) and Path(present.__file__).resolve() == file.resolve():
            return present
        raise UserError(f"{flag} {path}: a module named {name!r} is imported already (from "
                        f"{getattr(present, '__file__', None) or 'built-in'}); rename the file")
    found = importlib.util.spec_from_file_location(name, file)
    if found is None or found.loader is None:
        raise UserError(f"{flag} {path}: cannot be imported as a Python module; {ACCEPTED}")
    folder = str(file.parent)
    added = folder not in sys.path
    if added:
        sys.path.append(folder)
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module  # before running it: dataclasses and pickling look their module up by name
    # no __pycache__ beside the user's file: every worker of every node would write it, and bad input that is
    # refused must leave the user's folders as they were
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        found.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        if added:
            sys.path.remove(folder)
        raise
    finally:
        sys.dont_write_bytecode = writes
    return module


def entry_point_modules(groups: Sequence[str] = ENTRY_POINT_GROUPS) -> tuple[str, ...]:
    """Load every entry point of the installed packages in `groups` (importing its module registers what it
    holds) and return their module names, for the workers to import the same. A failing one is one UserError
    naming the entry point and its package."""
    modules: list[str] = []
    for group in groups:
        for point in importlib.metadata.entry_points(group=group):
            owner = f" of package {point.dist.name}" if point.dist is not None else ""
            try:
                point.load()
            except Exception as exc:  # noqa: BLE001 - a broken installed plug-in, as one line
                raise UserError(f"entry point {point.name} = {point.value!r} in group {group}{owner}: loading it "
                                f"raised {_first_line(exc)}; fix or uninstall that package") from exc
            if point.module not in modules:
                modules.append(point.module)
    return tuple(modules)


def prepare(specs: Iterable[str], flag: str = "--plugin") -> tuple[str, ...]:
    """The driver's step, before the grid is read: resolve and import the given specs, then the installed entry
    points; returns every spec the workers must import, in that order."""
    given = resolve(specs, flag=flag)
    activate(given, flag)
    return tuple(dict.fromkeys([*given, *entry_point_modules()]))


def _installed(path: Path) -> bool:
    """Whether a file lies in the interpreter's library folders (stdlib, site-packages): those of the nodes'
    own installation, never shipped."""
    roots = {sysconfig.get_path(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(root and path.is_relative_to(Path(root).resolve()) for root in roots)


def shipped(specs: Sequence[str]) -> list[str]:
    """What Ray's runtime environment carries to a joined cluster's nodes (`py_modules`): each `.py` plug-in, and
    the top-level package folder (or single file) of each plug-in module that is not installed. Call it after
    `activate` (the modules are looked up where the driver imported them)."""
    out: list[str] = []
    for spec in specs:
        if spec.endswith(".py"):
            out.append(spec)
            continue
        top = sys.modules.get(spec.split(".")[0])
        if top is None or top.__name__ in OWN_PACKAGES:
            continue
        paths = list(getattr(top, "__path__", []) or [])
        where = paths[0] if len(paths) == 1 else getattr(top, "__file__", None)
        if where and not _installed(Path(where).resolve()):
            out.append(str(Path(where).resolve()))
    return list(dict.fromkeys(out))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
