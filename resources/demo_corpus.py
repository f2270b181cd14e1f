"""A real text corpus every Python machine has offline: the docstrings of the standard library and
the installed packages, with the top-level package as the category.

Source files are parsed with `ast`, never imported, so collecting runs no third-party code.
"""

from __future__ import annotations

import ast
import hashlib
import sysconfig
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MIN_DOCSTRING_CHARS = 40
MAX_DOCSTRING_CHARS = 2000
SKIPPED_PARTS = {"tests", "test", "idlelib", "__pycache__", "site-packages", "dist-packages", "lib2to3", "turtledemo"}


@dataclass(frozen=True)
class Docstring:
    id: str
    package: str
    module: str
    name: str
    kind: str
    text: str


def library_roots() -> list[tuple[str, Path]]:
    """(origin, folder) pairs: the standard library and site-packages of this interpreter."""
    paths = sysconfig.get_paths()
    roots = [("stdlib", Path(paths["stdlib"]))]
    purelib = Path(paths["purelib"])
    if purelib.is_dir():
        roots.append(("site-packages", purelib))
    return roots


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _docstrings_of(tree: ast.Module) -> Iterator[tuple[str, str, str]]:
    """(qualified name, kind, docstring) of the module, its classes and functions, nested."""
    module_doc = ast.get_docstring(tree)
    if module_doc:
        yield "", "module", module_doc
    stack: list[tuple[str, ast.AST]] = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                doc = ast.get_docstring(child)
                if doc:
                    yield name, "class" if isinstance(child, ast.ClassDef) else "function", doc
                if isinstance(child, ast.ClassDef):
                    stack.append((f"{name}.", child))


def iter_docstrings(roots: list[tuple[str, Path]] | None = None) -> Iterator[Docstring]:
    """Every usable docstring below the roots, in a stable order."""
    seen: set[str] = set()
    for _, root in roots or library_roots():
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root)
            if SKIPPED_PARTS.intersection(relative.parts[:-1]) or relative.parts[0].endswith(".dist-info"):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    tree = ast.parse(path.read_bytes())
            except (SyntaxError, ValueError, OSError, UnicodeDecodeError):
                continue
            module = _module_name(root, path)
            if not module or module.startswith("_"):
                continue
            for name, kind, doc in _docstrings_of(tree):
                text = " ".join(doc.split())[:MAX_DOCSTRING_CHARS]
                if len(text) < MIN_DOCSTRING_CHARS:
                    continue
                qualified = f"{module}.{name}" if name else module
                digest = hashlib.sha1(qualified.encode()).hexdigest()[:16]
                if digest in seen:
                    continue
                seen.add(digest)
                yield Docstring(digest, module.split(".")[0], module, qualified, kind, text)


def collect(limit: int | None = None) -> list[Docstring]:
    """All docstrings, or an even sample of `limit` of them (by id hash: every package keeps its share)."""
    docs = sorted(iter_docstrings(), key=lambda doc: doc.id)
    return docs if limit is None else docs[:limit]
