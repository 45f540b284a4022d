"""Every third-party module flywheel imports is a declared dependency: an import that works only
because another package happens to pull it in breaks the day that package drops it."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_norm(re.split(r"[=<>\[ ;]", d)[0]) for d in project["dependencies"]}
    imported: dict[str, str] = {}
    for path in sorted((ROOT / "src" / "flywheel").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                imported.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    dists = packages_distributions()
    missing = {
        module: where
        for module, where in imported.items()
        if module not in sys.stdlib_module_names
        and module not in ("flywheel", "__future__")
        and not {_norm(d) for d in dists.get(module, [module])} & declared
    }
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_stages_meet_only_through_their_front_doors() -> None:
    """A stage imports another stage's names from its package (``flywheel.evaluation``), never from
    a private module (``flywheel.evaluation._scorers``): what a stage exports is its contract, the
    rest may change. The CLI, a thin layer over every stage, is the one exception for now."""
    bypasses = []
    root = ROOT / "src" / "flywheel"
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        own = rel[0] if len(rel) > 1 else None
        if own == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                parts = node.module.split(".")
                if parts[0] == "flywheel" and len(parts) > 2 and parts[1] != own and parts[2].startswith("_"):
                    bypasses.append(f"{'/'.join(rel)}: from {node.module} import …")
    assert not bypasses, "\n".join(bypasses)
