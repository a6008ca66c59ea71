"""The layering contract of pyproject.toml (`[tool.importlinter]`), checked with import-linter, and no import cycle."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    proc = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 1 kept, 0 broken" in proc.stdout, proc.stdout


def _graph() -> dict[str, set[str]]:
    pkg = ROOT / "kernel_ssl_jax"
    mods = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f for f in pkg.rglob("*.py")}
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        base_pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        for n in ast.walk(ast.parse(f.read_text())):
            targets = []
            if isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                b = n.module or ""
                if n.level:
                    parts = base_pkg.split(".")[: len(base_pkg.split(".")) - n.level + 1]
                    b = ".".join(parts + ([b] if b else []))
                targets = [b] + [f"{b}.{a.name}" for a in n.names]
            edges[m] |= {t for t in targets if t in mods and t != m and mods[t].name != "__init__.py"}
    return edges


def test_no_import_cycle_anywhere_in_the_package():
    edges = _graph()

    def reaches(a, b):
        seen, todo = {a}, [a]
        while todo:
            for t in edges[todo.pop()]:
                if t == b:
                    return True
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a)})
    assert not cycles, cycles
