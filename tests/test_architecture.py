"""The code's shape, checked: the layer contract (import-linter, pyproject.toml), no import cycle
between modules, no module over 600 lines, and every DVC stage depending on exactly the packages
its stage script imports (directly or through them), so an edit reruns only the stages it can change.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600


@pytest.fixture(scope="module")
def graph():
    sys.path.insert(0, str(ROOT))
    return grimp.build_graph("lsrs")


def test_layer_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_no_import_cycle(graph):
    """Module-level cycles (function-level imports count too): every chain back to a module is a cycle."""
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                cycles.append(" -> ".join(graph.find_shortest_chain(importer=imported, imported=module) + (imported,)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "lsrs").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def script_imports(script: Path) -> set[str]:
    """The lsrs modules a stage script imports anywhere in it (its imports are inside main, lazily)."""
    out = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "lsrs"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lsrs":
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def package_deps(graph, modules: set[str]) -> set[str]:
    """The paths (lsrs/<package> folders, top-level lsrs/*.py files) of `modules` and everything they import."""
    known = {m for m in modules if m in graph.modules}
    closure = set(known)
    for m in known:
        closure |= graph.find_upstream_modules(m)
    paths = {"lsrs/__init__.py"}
    for m in closure:
        parts = m.split(".")
        if len(parts) == 1:
            continue
        top = ROOT / "lsrs" / parts[1]
        paths.add(f"lsrs/{parts[1]}" if top.is_dir() else f"lsrs/{parts[1]}.py")
    return paths


def stages(dvc_yaml: dict):
    for name, stage in dvc_yaml["stages"].items():
        yield name, stage.get("do", stage)


def test_stage_deps_are_the_packages_the_stage_imports(graph):
    """dvc.yaml lists, for each stage, stages/_stage.py, its own script and the import closure of that
    script in lsrs/ at package granularity (lsrs/<package> folders and top-level modules), no more."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    stage_lib = script_imports(ROOT / "stages" / "_stage.py")
    wrong = {}
    for name, stage in stages(dvc):
        script = next(d for d in stage["deps"] if d.startswith("stages/") and d != "stages/_stage.py")
        want = package_deps(graph, script_imports(ROOT / script) | stage_lib)
        have = {d for d in stage["deps"] if d.startswith("lsrs")}
        if have != want:
            wrong[name] = {"missing": sorted(want - have), "extra": sorted(have - want)}
    assert not wrong, wrong
    assert all("lsrs" not in stage["deps"] for _, stage in stages(dvc))  # never the whole package


def write_deps(path: Path = ROOT / "dvc.yaml") -> None:
    """Rewrite every stage's lsrs deps in dvc.yaml to the import closure of its script (keeps the rest)."""
    import re

    graph = grimp.build_graph("lsrs")
    dvc, lines, out, stage = yaml.safe_load(path.read_text()), path.read_text().splitlines(keepends=True), [], None
    lib = script_imports(ROOT / "stages" / "_stage.py")
    for line in lines:
        head = re.match(r"^  ([A-Za-z_]+):\s*$", line)
        if head and head.group(1) in dvc["stages"]:
            stage, written = dvc["stages"][head.group(1)], False
            stage = stage.get("do", stage)
        if stage is not None and re.match(r"^\s+- lsrs(/\S*)?\s*$", line):
            if not written:
                script = next(d for d in stage["deps"] if d.startswith("stages/") and d != "stages/_stage.py")
                indent = line[:line.index("-")]
                out += [f"{indent}- {d}\n" for d in sorted(package_deps(graph, script_imports(ROOT / script) | lib))]
                written = True
            continue
        out.append(line)
    path.write_text("".join(out))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-deps"]:
        sys.exit("usage: python tests/test_architecture.py --write-deps")
    sys.path.insert(0, str(ROOT))
    write_deps()
