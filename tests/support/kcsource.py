"""The package's source files, parsed once per test process (imported as `kcsource`).

Several tests scan every module's syntax tree (imports, ages, hard stops, the unit of work);
parsing the 200-odd files took about a CPU-second for each scan. They share one parse here.
A tree from :func:`tree` is shared: walk it, never change it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path


def tree(path: Path) -> ast.Module:
    """The syntax tree of the Python file at ``path`` (parsed again only when it changed)."""
    stat = path.stat()
    return _parse(path.resolve(), stat.st_mtime_ns, stat.st_size)


@cache
def _parse(path: Path, _mtime_ns: int, _size: int) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def top_level_imports(path: Path) -> set[str]:
    """The first part of every absolute module name the file at ``path`` imports, anywhere in
    it (``import a.b`` and ``from a.b import c`` give ``a``)."""
    found = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found
