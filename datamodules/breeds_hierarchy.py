"""BREEDS superclasses built from the ImageNet class hierarchy, exactly as the ``robustness`` library builds them.

Reproduces ``ClassHierarchy`` and ``BreedsDatasetGenerator.get_superclasses(split=None, balanced=True)`` of
``robustness/tools/breeds_helpers.py`` (MadryLab/robustness), so a user's hierarchy files give the same datasets as
the reference code, ``make_living17`` included. The three files are read as text and JSON only:

- ``class_hierarchy.txt``: one ``parent child`` edge per line (whitespace separated),
- ``dataset_class_info.json``: ``[[imagenet_index, wnid, name], ...]``, the dataset classes (the leaves),
- ``node_names.txt``: ``wnid<TAB>name`` per line.

The steps, with the reference's exact semantics:

1. The graph keeps only the edges into dataset classes and their ancestors (backward search from every dataset
   class that appears in an edge).
2. A node's level is its *longest* path from the root (``n00001740``, "entity").
3. Superclasses are the nodes at ``level`` within 20 steps below ``ancestor``, in sorted wnid order; a node's
   subclasses are the dataset classes reachable from it, the search stopping at the first dataset class on each
   path; nodes with fewer than ``n_subclasses`` subclasses are dropped.
4. One ``numpy.random.RandomState(random_seed)`` then picks, superclass after superclass, ``rng.choice(sorted
   subclasses, n_subclasses, replace=False)``: legacy numpy takes the first ``n`` of a permutation, so the
   subclasses come back in that permuted order, and a superclass with exactly ``n`` subclasses still draws.

Files that the reference would crash on (a malformed line, a missing root, a cycle) raise ``ConfigError`` instead.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import ConfigError

#: the files BREEDS reads from ``info_dir`` (robustness' REQUIRED_FILES)
REQUIRED_FILES: tuple[str, ...] = ("dataset_class_info.json", "class_hierarchy.txt", "node_names.txt")
ROOT_WNID = "n00001740"  # entity
LIVING_THING_WNID = "n00004258"
#: traversal depth below ``ancestor`` (robustness' ``traverse`` default)
TRAVERSE_DEPTH = 20


@dataclass(frozen=True)
class Subclass:
    """One dataset (ImageNet) class inside a superclass."""

    wnid: str
    name: str
    imagenet_index: int


@dataclass(frozen=True)
class Superclass:
    """A BREEDS superclass: a hierarchy node and its chosen subclasses, in the reference's order."""

    wnid: str
    name: str
    subclasses: tuple[Subclass, ...]


def short_name(name: str) -> str:
    """The first of WordNet's comma-separated synonyms ("snake, serpent, ophidian" -> "snake")."""
    return name.split(",")[0].strip()


@dataclass
class ClassHierarchy:
    """The hierarchy restricted to the dataset classes and their ancestors, with each node's level."""

    leaf_index: dict[str, int]  # wnid -> dataset class index
    leaf_name: dict[str, str]
    node_name: dict[str, str]
    children: dict[str, list[str]]
    level: dict[str, int]

    def name(self, wnid: str) -> str:
        """Node name from node_names.txt, else the wnid itself (as the reference does)."""
        return self.node_name.get(wnid, wnid)

    def leaves_reachable(self, wnid: str) -> set[str]:
        """Dataset classes below ``wnid``; a path stops at its first dataset class. Includes ``wnid`` if a leaf."""
        leaves: set[str] = set()
        todo = [wnid]
        seen = set(todo)
        while todo:
            node = todo.pop()
            for child in self.children.get(node, ()):
                if child in self.leaf_index:
                    leaves.add(child)
                elif child not in seen:
                    seen.add(child)
                    todo.append(child)
        if wnid in self.leaf_index:
            leaves.add(wnid)
        return leaves

    def nodes_at_level(self, level: int, ancestor: str | None = None) -> set[str]:
        """Nodes whose level is ``level``, restricted to at most ``TRAVERSE_DEPTH`` steps below ``ancestor``."""
        nodes = {node for node, node_level in self.level.items() if node_level == level}
        if ancestor is None:
            return nodes
        if ancestor not in self.children and ancestor not in self.level:
            raise ConfigError(f"BREEDS hierarchy: ancestor {ancestor} is not above any dataset class")
        return nodes & _within_depth(self.children, ancestor, TRAVERSE_DEPTH)


def read_hierarchy(info_dir: str | Path, root: str = ROOT_WNID) -> ClassHierarchy:
    """Read the three BREEDS files of ``info_dir`` (text and JSON only) into a ``ClassHierarchy``."""
    info_dir = Path(info_dir)
    missing = [str(info_dir / name) for name in REQUIRED_FILES if not (info_dir / name).is_file()]
    if missing:
        raise ConfigError(f"BREEDS hierarchy files missing: {', '.join(missing)}")
    leaves = _read_class_info(info_dir / "dataset_class_info.json")
    edges = _read_edges(info_dir / "class_hierarchy.txt")
    node_name = _read_node_names(info_dir / "node_names.txt")
    children = _relevant_graph(list(leaves), edges)
    return ClassHierarchy(
        leaf_index={wnid: index for wnid, (index, _) in leaves.items()},
        leaf_name={wnid: name for wnid, (_, name) in leaves.items()},
        node_name=node_name,
        children=children,
        level=_longest_path_levels(children, root),
    )


def get_superclasses(
    hierarchy: ClassHierarchy,
    level: int,
    n_subclasses: int,
    ancestor: str | None = None,
    random_seed: int = 2,
) -> list[Superclass]:
    """``BreedsDatasetGenerator.get_superclasses(level, n_subclasses, split=None, ancestor, balanced=True)``."""
    rng = np.random.RandomState(random_seed)
    candidates = sorted(hierarchy.nodes_at_level(level, ancestor))
    if not candidates:
        raise ConfigError(f"BREEDS hierarchy: no node at level {level} below {ancestor or 'the root'}")
    superclasses = []
    for wnid in candidates:
        leaves = sorted(hierarchy.leaves_reachable(wnid))
        if len(leaves) < n_subclasses:
            continue
        chosen = [str(leaf) for leaf in rng.choice(leaves, n_subclasses, replace=False)]
        subclasses = tuple(Subclass(leaf, hierarchy.leaf_name[leaf], hierarchy.leaf_index[leaf]) for leaf in chosen)
        superclasses.append(Superclass(wnid, hierarchy.name(wnid), subclasses))
    return superclasses


def make_living17(info_dir: str | Path) -> list[Superclass]:
    """BREEDS Living-17: 17 superclasses of living things at level 5, four subclasses each (``make_living17``)."""
    return get_superclasses(
        read_hierarchy(info_dir), level=5, n_subclasses=4, ancestor=LIVING_THING_WNID, random_seed=2
    )


# ------------------------------------------------------------------------------------------------ file reading
def _read_class_info(path: Path) -> dict[str, tuple[int, str]]:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"BREEDS hierarchy: {path} is not valid JSON ({error})") from error
    leaves: dict[str, tuple[int, str]] = {}
    for entry in entries if isinstance(entries, list) else [entries]:
        well_formed = isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], int)
        if not well_formed or not all(isinstance(value, str) for value in entry[1:]):
            raise ConfigError(f"BREEDS hierarchy: {path} must be a list of [index, wnid, name], found {entry!r}")
        leaves[entry[1]] = (entry[0], entry[2])
    return leaves


def _read_edges(path: Path) -> list[tuple[str, str]]:
    edges = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ConfigError(f"BREEDS hierarchy: {path} line {number} must be 'parent child', got {line!r}")
        edges.append((fields[0], fields[1]))
    return edges


def _read_node_names(path: Path) -> dict[str, str]:
    names = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.strip().split("\t")
        if fields == [""]:
            continue
        if len(fields) < 2:
            raise ConfigError(f"BREEDS hierarchy: {path} line {number} must be 'wnid<TAB>name', got {line!r}")
        names[fields[0]] = fields[1]
    return names


# ------------------------------------------------------------------------------------------------ graph steps
def _relevant_graph(leaves: list[str], edges: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Children lists keeping only edges into dataset classes that appear in an edge, and into their ancestors."""
    parents: dict[str, list[str]] = {}
    in_graph: set[str] = set()
    for parent, child in edges:
        parents.setdefault(child, []).append(parent)
        in_graph.update((parent, child))
    relevant = {leaf for leaf in leaves if leaf in in_graph}
    todo = deque(relevant)
    while todo:
        for parent in parents.get(todo.popleft(), ()):
            if parent not in relevant:
                relevant.add(parent)
                todo.append(parent)
    children: dict[str, list[str]] = {}
    for parent, child in edges:
        if child in relevant:
            kids = children.setdefault(parent, [])
            if child not in kids:
                kids.append(child)
    return children


def _longest_path_levels(children: dict[str, list[str]], root: str) -> dict[str, int]:
    """Level = longest path from ``root`` (the reference keeps the maximum depth over every path)."""
    if root not in children:
        raise ConfigError(f"BREEDS hierarchy: the root {root} has no child above a dataset class")
    order: list[str] = []  # reverse post-order = topological order of the nodes below root
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[tuple[str, int]] = [(root, 0)]
    while stack:
        node, position = stack.pop()
        if position == 0:
            if state.get(node) == 2:
                continue
            state[node] = 1
        kids = children.get(node, [])
        if position < len(kids):
            stack.append((node, position + 1))
            child = kids[position]
            if state.get(child) == 1:
                raise ConfigError(f"BREEDS hierarchy: cycle through {child}; class_hierarchy.txt must be a DAG")
            if state.get(child) != 2:
                stack.append((child, 0))
        else:
            state[node] = 2
            order.append(node)
    level = dict.fromkeys(order, 0)
    for node in reversed(order):
        for child in children.get(node, ()):
            level[child] = max(level[child], level[node] + 1)
    return level


def _within_depth(children: dict[str, list[str]], start: str, depth: int) -> set[str]:
    """``start`` and every node reachable from it in at most ``depth`` steps."""
    reached = {start}
    frontier = [start]
    for _ in range(depth):
        frontier = [child for node in frontier for child in children.get(node, ()) if child not in reached]
        reached.update(frontier)
        if not frontier:
            break
    return reached
