"""The ``.pyi`` stubs beside the compiled kernels against the modules themselves: the same public
names, the same kind (method or property) of each class member, and the same parameters (names
and defaults) for every function and method."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

KERNELS = (
    "rtdecode.acquisition._acquire",
    "rtdecode.acquisition._ringbuffer",
    "rtdecode.features._decimate",
    "rtdecode.features._bandpower",
    "rtdecode.features._quality",
    "rtdecode.offline._records",
)

_NO_DEFAULT = object()


def _stub(module: ModuleType) -> ast.Module:
    path = Path(module.__file__).parent / f"{module.__name__.rpartition('.')[2]}.pyi"
    return ast.parse(path.read_text(), filename=str(path))


def _stub_names(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """Public classes, functions and constants declared in a stub body."""
    names: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            names.update((t.id, node) for t in node.targets if isinstance(t, ast.Name))
    return {name: node for name, node in names.items() if not name.startswith("_")}


def _module_names(module: ModuleType) -> dict[str, object]:
    """Public names the module defines (not the modules and functions it imports)."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(obj)
        and getattr(obj, "__module__", module.__name__) == module.__name__
    }


def _is_property(node: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


def _stub_parameters(node: ast.FunctionDef, method: bool) -> list[tuple[str, object]]:
    args = node.args.posonlyargs + node.args.args
    defaults = [_NO_DEFAULT] * (len(args) - len(node.args.defaults))
    defaults += [ast.literal_eval(d) for d in node.args.defaults]
    params = [(a.arg, d) for a, d in zip(args, defaults)]
    return params[1:] if method else params


def _parameters(func: object, method: bool) -> list[tuple[str, object]]:
    params = [
        (p.name, _NO_DEFAULT if p.default is inspect.Parameter.empty else p.default)
        for p in inspect.signature(func).parameters.values()
    ]
    return params[1:] if method else params


@pytest.mark.parametrize("name", KERNELS)
def test_stub_declares_what_the_module_defines(name):
    module = importlib.import_module(name)
    stub, defined = _stub_names(_stub(module).body), _module_names(module)
    assert set(stub) == set(defined)
    for member, node in stub.items():
        obj = defined[member]
        if isinstance(node, ast.FunctionDef):
            assert ast.get_docstring(node), f"{member} has no docstring in the stub"
            assert _stub_parameters(node, method=False) == _parameters(obj, method=False), member
        elif isinstance(node, ast.ClassDef):
            assert ast.get_docstring(node), f"{member} has no docstring in the stub"
            _check_class(obj, node)


def _check_class(cls: type, node: ast.ClassDef) -> None:
    declared = {
        n.name: n
        for n in node.body
        if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")
    }
    base = set(vars(cls.__mro__[1])) if len(cls.__mro__) > 2 else set()  # OverrunError's
    members = {
        name: value
        for name, value in vars(cls).items()
        if not name.startswith("_") and name not in base
    }
    assert set(declared) == set(members), cls.__name__
    for name, fn in declared.items():
        value = members[name]
        where = f"{cls.__name__}.{name}"
        assert ast.get_docstring(fn), f"{where} has no docstring in the stub"
        if _is_property(fn):
            assert inspect.isgetsetdescriptor(value) or isinstance(value, property), where
        else:
            assert callable(value), where
            assert _stub_parameters(fn, method=True) == _parameters(value, method=True), where
