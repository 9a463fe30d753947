"""The package's import graph has no cycle: every `from .x import`, at module level or inside a
function, points one way (the data model and helpers at the bottom, the CLI at the top); and no
module or function is longer than issue 15's limits."""
import ast
from pathlib import Path

import dfscan

PACKAGE = Path(dfscan.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(root.rglob("*.py"))}


def _target(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a relative `from` import names."""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + (node.module.split(".") if node.module else []))


def import_edges(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports, anywhere in its body (functions included)."""
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("dfscan")):
                base = _target(name, is_package, node) if node.level else node.module
                # `from .pkg import sub` imports the submodule; `from .mod import thing` the module
                subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
                targets += subs if len(subs) == len(node.names) else [base, *subs]
            elif isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names if alias.name.startswith("dfscan")]
            edges[name] |= {t for t in targets if t in known and t != name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    edges = import_edges(modules())
    assert len(edges) > 20 and edges["dfscan.reports.writers"], "the walk found the package's modules and their imports"
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


def test_the_walk_sees_a_cycle_made_inside_a_function(tmp_path):
    pkg = tmp_path / "dfscan"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import thing\n")
    (pkg / "b.py").write_text("def f():\n    from .sub.c import other\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("def g():\n    from .. import a\n")
    known = {".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__"): p
             for p in pkg.rglob("*.py")}
    assert find_cycle(import_edges(known)) == ["dfscan.a", "dfscan.b", "dfscan.sub.c", "dfscan.a"]


# Issue 15: no module over ~450 lines, no function over ~60, so that each still reads as one job.
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60  # from `def` to the last line, docstring included


def too_long(known: dict[str, Path], max_module: int = MAX_MODULE_LINES,
             max_function: int = MAX_FUNCTION_LINES) -> list[str]:
    """'module: N lines' and 'module.function: N lines' for each one over its limit."""
    found = []
    for name, path in known.items():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > max_module:
            found.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > max_function:
                    found.append(f"{name}.{node.name} (line {node.lineno}): {length} lines")
    return found


def test_no_module_or_function_is_too_long():
    known = modules()
    assert len(known) > 20
    assert too_long(known) == []


def test_the_length_check_sees_a_long_module_and_a_long_method(tmp_path):
    def write(name: str, lines: list[str], total: int) -> Path:
        path = tmp_path / f"{name}.py"
        path.write_text("\n".join(lines + ["# filler"] * (total - len(lines))) + "\n")
        return path

    body = [f"    x{i} = {i}" for i in range(59)]
    known = {"ok": write("ok", ["def f():", *body], 450),  # 60 and 450 lines: at the limits
             "long": write("long", ["class C:", "    def g(self):", *("    " + b for b in body), "        return 1"],
                           451)}
    assert too_long(known) == ["long: 451 lines", "long.g (line 2): 61 lines"]


def test_setup_cfg_lists_every_subpackage_once():
    """setuptools' own reading of setup.cfg names each package on disk (a package left out is
    missing from the wheel; a malformed list breaks `pip install` on a clean machine)."""
    from setuptools.config.setupcfg import read_configuration

    root = PACKAGE.parent
    listed = read_configuration(str(root / "setup.cfg"))["options"]["packages"]
    on_disk = {module_name(p) for p in PACKAGE.rglob("__init__.py")} | {"dfscan.models"}
    assert sorted(listed) == sorted(on_disk)


# The layers of the package, bottom first (docs/architecture.md): a module imports from its own layer
# or the layers below, never from a layer above; a new package or top-level module must be placed here.
LAYERS = (
    ("base: shared helpers and the data model", {"common", "results"}),
    ("the stages and their records", {"decode", "classifier", "verdicts", "sources", "queue", "store", "reports"}),
    ("the scan path", {"scanning"}),
    ("the library's entry", {"api"}),
    ("commands over scans", {"labelled", "train", "watch"}),
    ("interfaces", {"cli", "gui", "__main__"}),
)


def family(module: str) -> str:
    """`dfscan.scanning.pipeline` -> `scanning`; `dfscan.results` -> `results`; the package root -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_imports(edges: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """Each import that goes from a lower layer to a higher one, and each family placed in no layer."""
    rank = {name: i for i, (_, names) in enumerate(layers) for name in names}
    found = []
    for importer, targets in sorted(edges.items()):
        src = family(importer)
        if src and src not in rank:
            found.append(f"{importer}: its family {src!r} is in no layer")
            continue
        for target in sorted(targets):
            dst = family(target)
            if src and dst and rank.get(dst, -1) > rank[src]:
                found.append(f"{importer} -> {target} ({layers[rank[src]][0]} -> {layers[rank[dst]][0]})")
    return found


def test_imports_go_down_the_layers():
    assert upward_imports(import_edges(modules())) == []


def test_the_layer_check_sees_an_upward_import_and_an_unplaced_family():
    edges = {"dfscan.common.errors": {"dfscan.scanning.pipeline"}, "dfscan.scanning.pipeline": {"dfscan.common.errors"},
             "dfscan.newthing.x": set()}
    assert upward_imports(edges) == [
        "dfscan.common.errors -> dfscan.scanning.pipeline (base: shared helpers and the data model -> the scan path)",
        "dfscan.newthing.x: its family 'newthing' is in no layer"]
