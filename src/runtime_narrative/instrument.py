"""Stages from code that was not written for them.

``@narrative_class`` turns the public methods of a class into stages,
``@narrative_stage`` one function or method, ``instrument_module`` a whole
module, and ``auto_instrument`` every module of the application as it is
imported. ``@no_stage`` keeps a function out of all of them.

Unlike ``runtime_narrative_stage``, an instrumented function called while no
story is open simply runs: instrumentation is meant for code that is also
used outside stories, so the check costs one ContextVar read and nothing else.

Every wrapper is made with ``functools.wraps`` (name, docstring, signature,
``__wrapped__``) and carries a mark, so nothing is ever wrapped twice.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import inspect
import logging
import os
import site
import sys
import sysconfig
import threading
import types
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Optional, TypeVar, Union, overload

from .decorators import wrap_in
from .stage import Stage

__all__ = [
    "InstrumentingFinder",
    "auto_instrument",
    "instrument_module",
    "narrative_class",
    "narrative_stage",
    "no_stage",
    "stage_name_for",
]

logger = logging.getLogger("runtime_narrative")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
C = TypeVar("C", bound=type)

#: Set on every wrapper this module makes: the stage name it runs as.
STAGE_MARK = "__runtime_narrative_stage__"
#: Set by ``@no_stage``.
NO_STAGE_MARK = "__runtime_narrative_no_stage__"


# -- marks ---------------------------------------------------------------------


def no_stage(function: T) -> T:
    """Keep ``function`` out of every kind of instrumentation.

    Works on functions, methods, and ``classmethod``/``staticmethod`` objects
    in either decorator order.

    .. versionadded:: 0.1.0
    """
    target: Any = function
    if isinstance(target, (classmethod, staticmethod)):
        target = target.__func__
    setattr(target, NO_STAGE_MARK, True)
    return function


def _is_marked(function: object) -> bool:
    return bool(
        getattr(function, STAGE_MARK, None) or getattr(function, NO_STAGE_MARK, False)
    )


def stage_name_for(function_name: str) -> str:
    """The default stage name of a function: ``validate_order`` → ``Validate Order``.

    Each underscore-separated word gets a capital first letter; the rest of
    the word is kept (``load_CSV`` → ``Load CSV``).
    """
    words = [word[:1].upper() + word[1:] for word in function_name.split("_") if word]
    return " ".join(words) or function_name


def _as_stage(function: F, name: str) -> F:
    module = getattr(function, "__module__", None)
    wrapper = wrap_in(
        function, lambda: Stage(name, module=module), skip_outside_story=True
    )
    setattr(wrapper, STAGE_MARK, name)
    return wrapper


# -- narrative_stage -------------------------------------------------------------


@overload
def narrative_stage(name: F) -> F: ...
@overload
def narrative_stage(name: Optional[str] = None) -> Callable[[F], F]: ...


def narrative_stage(name: Any = None) -> Any:
    """Run each call of a function or method as a stage, when a story is open.

    ``@narrative_stage("Generate PDF Report")`` names the stage; bare
    ``@narrative_stage`` (or ``@narrative_stage()``) title-cases the
    function's name. Outside a story the function runs as if undecorated.
    A function already instrumented is returned unchanged. It may be placed
    above or below ``@classmethod``/``@staticmethod``.

    .. versionadded:: 0.1.0
    """
    if callable(name):
        return narrative_stage()(name)
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"a stage needs a non-empty name; got {name!r}")

    def decorate(function: F) -> F:
        if isinstance(function, (classmethod, staticmethod)):
            rebind: Any = type(function)
            return rebind(decorate(function.__func__))  # type: ignore[no-any-return]
        if getattr(function, STAGE_MARK, None):
            return function
        return _as_stage(function, name or stage_name_for(function.__name__))

    return decorate


# -- narrative_class -------------------------------------------------------------


@overload
def narrative_class(cls: C) -> C: ...
@overload
def narrative_class(
    cls: None = None,
    *,
    instrument_classmethods: bool = False,
    instrument_staticmethods: bool = False,
) -> Callable[[C], C]: ...


def narrative_class(
    cls: Optional[C] = None,
    *,
    instrument_classmethods: bool = False,
    instrument_staticmethods: bool = False,
) -> Union[C, Callable[[C], C]]:
    """Make every public method defined on the class a stage ``ClassName.method``.

    Only what the class itself defines (its ``__dict__``) is touched; skipped
    are names starting with ``_``, ``@no_stage`` methods, methods already
    instrumented (an explicit ``@narrative_stage`` keeps its name),
    properties and other descriptors, and inherited methods. Class and
    static methods are instrumented only when asked for, and stay bound as
    they were. Async methods, generators and async generators are wrapped as
    what they are.

    .. versionadded:: 0.1.0
    """

    def decorate(klass: C) -> C:
        for attr_name, value in list(vars(klass).items()):
            replacement = _instrumented_member(
                klass.__name__,
                attr_name,
                value,
                instrument_classmethods=instrument_classmethods,
                instrument_staticmethods=instrument_staticmethods,
            )
            if replacement is not None:
                setattr(klass, attr_name, replacement)
        return klass

    if cls is None:
        return decorate
    return decorate(cls)


def _instrumented_member(
    class_name: str,
    attr_name: str,
    value: object,
    *,
    instrument_classmethods: bool,
    instrument_staticmethods: bool,
) -> Optional[object]:
    """The instrumented replacement of one class attribute, or None to keep it."""
    if attr_name.startswith("_"):
        return None
    stage_name = f"{class_name}.{attr_name}"
    if isinstance(value, classmethod):
        if not instrument_classmethods or _is_marked(value.__func__):
            return None
        return classmethod(_as_stage(value.__func__, stage_name))
    if isinstance(value, staticmethod):
        if not instrument_staticmethods or _is_marked(value.__func__):
            return None
        return staticmethod(_as_stage(value.__func__, stage_name))
    if not inspect.isfunction(value) or _is_marked(value):
        return None
    return _as_stage(value, stage_name)


# -- instrument_module -----------------------------------------------------------


def instrument_module(module: types.ModuleType) -> types.ModuleType:
    """Instrument a module in place and return it.

    Classes defined in it get ``@narrative_class``; functions defined in it
    are wrapped as stages named like ``@narrative_stage`` names them
    (``load_rows`` → ``Load Rows``). Names starting with ``_``, ``@no_stage``
    functions and everything the module imported from elsewhere are left
    alone. Instrumenting a module again changes nothing.

    .. versionadded:: 0.1.0
    """
    instrument_namespace(vars(module))
    return module


def instrument_namespace(
    namespace: dict[str, Any], names: Optional[Iterable[str]] = None
) -> None:
    """Instrument the functions and classes a module's namespace defines.

    ``names`` limits the work to those names (the import hook passes the
    one just defined).
    """
    module_name = namespace.get("__name__")
    if not isinstance(module_name, str):
        return
    for name in list(namespace) if names is None else names:
        if name.startswith("_") or name not in namespace:
            continue
        value = namespace[name]
        if getattr(value, "__module__", None) != module_name:
            continue  # imported from elsewhere, or a plain value
        if inspect.isclass(value):
            _instrument_class_quietly(value)
        elif inspect.isfunction(value) and not _is_marked(value):
            namespace[name] = _as_stage(value, stage_name_for(value.__name__))


def _instrument_class_quietly(cls: type) -> None:
    try:
        narrative_class(cls)
    except (TypeError, AttributeError):
        # A class whose metaclass refuses new attributes (some enums,
        # extension types) keeps working, only without stages.
        logger.warning("could not instrument class %s", cls.__qualname__, exc_info=True)


# -- auto_instrument: the import hook ------------------------------------------------


def _excluded_prefixes() -> tuple[str, ...]:
    """Directories whose modules are never instrumented."""
    paths: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            paths.add(path)
    try:
        paths.update(site.getsitepackages())
    except AttributeError:  # some embedded interpreters have no site dirs
        pass
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if isinstance(user_site, str):
        paths.add(user_site)
    paths.add(os.path.dirname(os.path.abspath(__file__)))
    return tuple(_normalize(path) for path in paths)


def _normalize(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _is_under(path: str, prefixes: Sequence[str]) -> bool:
    return any(
        path == prefix or path.startswith(prefix.rstrip(os.sep) + os.sep)
        for prefix in prefixes
    )


class InstrumentingFinder(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that instruments application modules.

    It finds nothing itself: it asks the finders after it, and when the
    module found is Python source under one of ``app_roots`` (and not in the
    standard library, site-packages or this package), it gives the spec a
    loader that instruments the module once it has run. Namespace packages,
    extension modules and everything outside the roots pass through as they
    were found.
    """

    def __init__(self, app_roots: Iterable[Union[str, os.PathLike[str]]]) -> None:
        self.app_roots = tuple(_normalize(os.fspath(root)) for root in app_roots)
        self._excluded = _excluded_prefixes()
        self._searching = threading.local()

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]],
        target: Optional[types.ModuleType] = None,
    ) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname == "runtime_narrative" or fullname.startswith("runtime_narrative."):
            return None
        searching: set[str] = getattr(self._searching, "names", set())
        if fullname in searching:  # another finder is asking the import system
            return None
        searching.add(fullname)
        self._searching.names = searching
        try:
            spec = self._find_with_others(fullname, path, target)
        finally:
            searching.discard(fullname)
        if spec is not None and self._wants(spec):
            spec.loader = InstrumentingLoader(spec.loader)
        return spec

    def _find_with_others(
        self,
        fullname: str,
        path: Optional[Sequence[str]],
        target: Optional[types.ModuleType],
    ) -> Optional[importlib.machinery.ModuleSpec]:
        for finder in list(sys.meta_path):
            if isinstance(finder, InstrumentingFinder):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec: Optional[importlib.machinery.ModuleSpec] = find_spec(
                fullname, path, target
            )
            if spec is not None:
                return spec
        return None

    def _wants(self, spec: importlib.machinery.ModuleSpec) -> bool:
        origin = spec.origin
        loader = spec.loader
        if not spec.has_location or origin is None or loader is None:
            return False  # namespace packages, built-ins, frozen modules
        if isinstance(loader, InstrumentingLoader):
            return False
        if not origin.endswith(".py") or not hasattr(loader, "exec_module"):
            return False
        path = _normalize(origin)
        return _is_under(path, self.app_roots) and not _is_under(path, self._excluded)

    def invalidate_caches(self) -> None:
        """Nothing is cached here; the finders asked keep their own caches."""

    def __repr__(self) -> str:
        return f"<InstrumentingFinder app_roots={list(self.app_roots)!r}>"


class InstrumentingLoader(importlib.abc.Loader):
    """Runs a module with its own loader, then instruments it.

    ``get_code`` (what ``runpy`` uses to run a module as ``__main__``)
    returns code that instruments each function and class right after its
    definition, since such a module is run and never imported. Every other
    attribute is the original loader's.
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(
        self, spec: importlib.machinery.ModuleSpec
    ) -> Optional[types.ModuleType]:
        create: Optional[Callable[..., Optional[types.ModuleType]]] = getattr(
            self.loader, "create_module", None
        )
        return create(spec) if create is not None else None

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        instrument_module(module)

    def get_code(self, fullname: str) -> Optional[types.CodeType]:
        get_source = getattr(self.loader, "get_source", None)
        source = get_source(fullname) if get_source is not None else None
        if source is None:
            code: Optional[types.CodeType] = self.loader.get_code(fullname)
            return code
        return compile_instrumented(source, self.loader.get_filename(fullname))

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet: a copy being built
            raise AttributeError(name)
        return getattr(self.loader, name)


def auto_instrument(
    app_roots: Optional[Iterable[Union[str, os.PathLike[str]]]] = None,
) -> InstrumentingFinder:
    """Instrument the application's modules as they are imported.

    Puts an :class:`InstrumentingFinder` first on ``sys.meta_path`` and
    returns it; ``sys.meta_path.remove(finder)`` stops it. Modules whose
    source file is under one of ``app_roots`` (default: the current
    directory) are run with ``instrument_module`` applied; the standard
    library, site-packages and runtime_narrative itself never are. Modules
    imported before the call are not touched: pass them to
    ``instrument_module``. ``importlib.reload`` instruments the reloaded
    module again.

    .. versionadded:: 0.1.0
    """
    roots: list[Union[str, os.PathLike[str]]]
    if app_roots is None:
        roots = [os.getcwd()]
    elif isinstance(app_roots, (str, os.PathLike)):
        roots = [app_roots]
    else:
        roots = list(app_roots)
    finder = InstrumentingFinder(roots)
    sys.meta_path.insert(0, finder)
    return finder


# -- modules run as __main__ ---------------------------------------------------------

#: The name compiled code calls to instrument a definition; resolved through
#: ``__import__`` so the module's namespace gains no new name.
_HOOK_MODULE = __name__


def compile_instrumented(source: Union[str, bytes], filename: str) -> types.CodeType:
    """Compile module source so each top-level function and class is
    instrumented as soon as it is defined.

    Line numbers are the source's own. Definitions inside ``if``, ``try``,
    ``with`` and loops at module level count as top-level; those inside
    functions and classes do not.
    """
    tree = ast.parse(source, filename)
    tree.body = _with_hooks(tree.body)
    ast.fix_missing_locations(tree)
    return compile(tree, filename, "exec", dont_inherit=True)


def _with_hooks(body: list[ast.stmt]) -> list[ast.stmt]:
    result: list[ast.stmt] = []
    for statement in body:
        for field in ("body", "orelse", "finalbody"):
            block = getattr(statement, field, None)
            if block and not isinstance(
                statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            ):
                setattr(statement, field, _with_hooks(block))
        for handler in getattr(statement, "handlers", ()):
            handler.body = _with_hooks(handler.body)
        result.append(statement)
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            result.append(_hook_call(statement.name, statement))
    return result


def _hook_call(name: str, at: ast.stmt) -> ast.stmt:
    # __import__("runtime_narrative.instrument", None, None, ["_"])
    #     .instrument_namespace(globals(), [name])
    importer = ast.Call(
        func=ast.Name(id="__import__", ctx=ast.Load()),
        args=[
            ast.Constant(_HOOK_MODULE),
            ast.Constant(None),
            ast.Constant(None),
            ast.List(elts=[ast.Constant("_")], ctx=ast.Load()),
        ],
        keywords=[],
    )
    call = ast.Call(
        func=ast.Attribute(value=importer, attr="instrument_namespace", ctx=ast.Load()),
        args=[
            ast.Call(func=ast.Name(id="globals", ctx=ast.Load()), args=[], keywords=[]),
            ast.List(elts=[ast.Constant(name)], ctx=ast.Load()),
        ],
        keywords=[],
    )
    statement = ast.Expr(value=call)
    return ast.copy_location(statement, at)
