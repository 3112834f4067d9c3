"""The package's layout: stages depend one way, no import circle, Qt only in the monitor window.

Read from the source with ``ast`` (module-level and function-level imports alike), so a lazy
import inside a function counts as much as one at the top.
"""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import rtdecode

PACKAGE = Path(rtdecode.__file__).resolve().parent

# Who may import whom, by subpackage (top-level modules count as their own name). The pipeline
# runs acquisition -> features -> decoding -> outputs; offline, training, simulator, monitor and
# cli sit on top of it. A stage never imports one downstream of it.
ALLOWED = {
    "streams": set(),
    "config": set(),
    "common": {"streams"},
    "acquisition": {"common"},
    "features": {"common", "config"},
    "decoding": {"common", "config", "streams", "acquisition", "features", "outputs"},
    "outputs": {"common", "streams", "decoding.status"},
    "offline": {
        "common",
        "config",
        "streams",
        "acquisition",
        "features",
        "decoding",
        "stimulation",
        "phase",
    },
    "training": {"common", "config", "decoding", "offline"},
    "simulator": {"common", "config", "streams"},
    "monitor": {"common", "streams", "acquisition", "decoding"},
    "stimulation": {"common", "config", "streams", "outputs", "phase"},
    "phase": {"common", "config"},
    "models": set(),
    "cli": {
        "stimulation",
        "phase",
        "common",
        "config",
        "streams",
        "acquisition",
        "decoding",
        "outputs",
        "offline",
        "training",
        "simulator",
        "monitor",
        "models",
    },
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out[".".join(["rtdecode", *parts])] = path
    return out


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


MODULES = _modules()
GRAPH = {
    name: {m for m in _imports(path) if m in MODULES and m != name}
    for name, path in MODULES.items()
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_only_the_stages_below_it(module):
    stage = _stage(module)
    if stage in ("", "__main__"):
        return
    allowed = ALLOWED[stage] | {stage}
    bad = []
    for target in GRAPH[module]:
        t_stage = _stage(target)
        qualified = ".".join(target.split(".")[1:3])
        if t_stage in ("", "__init__") or t_stage in allowed or qualified in allowed:
            continue
        bad.append(target)
    assert not bad, f"{module} imports {bad}; {stage} may import {sorted(allowed)}"


def test_no_import_circle():
    # Tarjan's strongly connected components over module -> module imports
    index, low, on_stack, stack, circles = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    # a package's __init__ importing its own modules is not a circle of concerns
    circles = [c for c in circles if not all(m.count(".") <= 1 for m in c)]
    assert not circles, f"import circles: {circles}"


def test_only_the_monitor_window_imports_qt():
    qt = {"PySide6", "pyqtgraph", "PyQt5", "PyQt6"}
    users = sorted(
        name for name, path in MODULES.items() if any(m.split(".")[0] in qt for m in _imports(path))
    )
    assert users == ["rtdecode.monitor.window"]


def test_outputs_do_not_import_the_smoother_nor_evaluation_training():
    by_module = defaultdict(set, GRAPH)
    assert not any(
        t.startswith("rtdecode.decoding.smoother")
        for m in MODULES
        if m.startswith("rtdecode.outputs")
        for t in by_module[m]
    )
    assert not any(
        t.startswith("rtdecode.training") for t in by_module["rtdecode.offline.evaluation"]
    )


def test_maintainer_scripts_are_not_installed():
    assert not (PACKAGE / "bundled.py").exists()
    assert not any("scripts" in _imports(p) for p in MODULES.values())
