"""The parser's one-line errors, told where the mistake is and what was probably meant.

jsonargparse says *what* is wrong ("option 'max_epoch' is not accepted", a 600-character union text for a wrong
class path) but not in which file or entry; ``located_message`` adds the config file, the entry (``classifiers[0]``)
and the nearest valid names (difflib), and turns ``cli.py fit`` without a config into a pointer at ``--config``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from datamodules.regime_migration import PREVIOUS_KEYS
from records.layout import RunLayout
from simulation.config import ClassifierConfig

EXAMPLE_CONFIG = "configs/quickstart.yaml"
#: list-valued sections whose entries are dataclasses: section -> its entry's fields
ENTRY_FIELDS = {"classifiers": [f.name for f in dataclasses.fields(ClassifierConfig)]}


def config_files(argv: list[str]) -> list[str]:
    """The ``--config`` files of a command line, in order."""
    files = []
    for index, arg in enumerate(argv):
        if arg in ("--config", "-c") and index + 1 < len(argv):
            files.append(argv[index + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def _text(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _load(path: str) -> object:
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None


def suggestion(name: str, valid: list[str]) -> str:
    """``: did you mean `x`?`` for the closest valid names (nothing when none is close)."""
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    return f": did you mean {' or '.join(f'`{c}`' for c in close)}?" if close else ""


def find_key(tree: object, key: str, where: str = "") -> list[str]:
    """Every place (``classifiers[0].max_epoch``, ``loop.generatons``) where ``key`` is a mapping key in ``tree``;
    ``key`` may be dotted (``loop.generatons``)."""
    found = []
    if isinstance(tree, dict):
        head, _, rest = key.partition(".")
        if rest and isinstance(tree.get(head), (dict, list)):
            found += [place for place in find_key(tree[head], rest, f"{where}{head}.")
                      if place.endswith(rest.rsplit(".", 1)[-1])]
        if key in tree:
            found.append(f"{where}{key}")
        for name, value in tree.items():
            if isinstance(value, (dict, list)):
                found += find_key(value, key, f"{where}{name}.")
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found += find_key(value, key, f"{where.rstrip('.')}[{index}].")
    return sorted(set(found), key=found.index)


def _valid_keys(parser, refused: Mapping[str, str] | None = None) -> list[str]:
    """The parser's keys less the ``refused`` ones (the trainer keys the loop owns: suggesting one would only lead to
    the next refusal; a name close to one is told why it is refused instead)."""
    try:
        keys = list(parser.get_defaults().keys()) if parser is not None else []
    except Exception:  # a parser whose defaults cannot be built (a plug-in refusing its defaults) suggests nothing
        return []
    return [key for key in keys if not any(key == r or key.startswith(f"{r}.") for r in refused or {})]


def _siblings(place: str, valid: list[str]) -> list[str]:
    """The valid names beside ``place`` (``classifiers[0].max_epoch`` -> the classifier's fields)."""
    parent, _, _ = place.rpartition(".")
    entry = re.fullmatch(r"(\w+)\[\d+\]", parent)
    if entry and entry[1] in ENTRY_FIELDS:
        return ENTRY_FIELDS[entry[1]]
    prefix = f"{parent}." if parent else ""
    return sorted({key[len(prefix):].split(".")[0] for key in valid if key.startswith(prefix)})


def _misplaced(places: list[str], valid: list[str]) -> list[str]:
    """The ``places`` where the name is not valid among its siblings: jsonargparse reports only the last part of the
    key, so a name it rejects elsewhere may be a valid field here (a filter's ``lr`` beside a classifier's)."""
    return [place for place in places if place.rsplit(".", 1)[-1] not in _siblings(place, valid)]


def _close_to(name: str, valid: list[str]) -> str:
    """:func:`suggestion` among ``valid`` less ``name`` itself (a rejected name is never offered back)."""
    return suggestion(name, [v for v in valid if v != name])


def _refused_hint(key: str, refused: Mapping[str, str] | None, valid: list[str]) -> str:
    """For a misspelt refused key (``trainer.max_epoch``): the key it is closest to is not used either, and why
    (nothing when a valid key is closer: ``trainer.min_epoch`` is told about ``trainer.min_epochs``)."""
    parent = key.rpartition(".")[0]
    beside = [k for k in [*valid, *(refused or {})] if k.rpartition(".")[0] == parent]  # in the same section
    close = difflib.get_close_matches(key, beside, n=1, cutoff=0.6)
    return f": `{close[0]}` is not used either: {refused[close[0]]}" if close and close[0] in (refused or {}) else ""


def _unknown_key(key: str, argv: list[str], parser, source_hint: str | None,
                 refused: Mapping[str, str] | None = None) -> str:
    """An option no section accepts, located in the config files (or the command line) that give it."""
    valid = _valid_keys(parser, refused)
    for path in config_files(argv):
        places = _misplaced(find_key(_load(path), key), valid)
        if places:
            place = places[0]
            name = place.rsplit(".", 1)[-1]
            entry = place.rpartition(".")[0]
            what = f"{entry}: unknown field `{name}`" if entry else f"unknown key `{name}`"
            return f"{path}: {what}{_refused_hint(place, refused, valid) or _close_to(name, _siblings(place, valid))}"
    for index, arg in enumerate(argv):  # a field inside a value given on the command line (--classifiers '[...]')
        if not arg.startswith("--"):
            continue
        option = arg[2:].split("=", 1)[0]
        if "." not in key and option.endswith(f".{key}") and option not in valid:  # --data.source.init_args.arch
            return (f"the command line: unknown option `--{option}`"
                    f"{_refused_hint(option, refused, valid) or _close_to(key, _siblings(option, valid))}")
        if "=" in arg or index + 1 == len(argv):
            continue
        try:
            value = yaml.safe_load(argv[index + 1])
        except yaml.YAMLError:
            continue
        places = _misplaced(find_key({option: value}, key), valid) if isinstance(value, (dict, list)) else []
        if places:
            place = places[0]
            name = place.rsplit(".", 1)[-1]
            return (f"the command line ({arg}): {place.rpartition('.')[0]}: unknown field `{name}`"
                    f"{_close_to(name, _siblings(place, valid))}")
    where = source_hint or "the command line"
    suggested = _refused_hint(key, refused, valid) or (_close_to(key, valid) if "." in key else
                                                _close_to(key, _siblings(key, valid)))
    return f"{where}: unknown option `--{key}`{suggested}"


def _class_path_problem(key: str, class_path: str, argv: list[str]) -> str:
    """A class path that does not import: the nearest class of its module, or the nearest module."""
    module_name, _, class_name = class_path.rpartition(".")
    where = next((path for path in config_files(argv) if class_path in _text(path)),
                 "the command line") if class_path not in argv else "the command line"
    try:
        module = importlib.import_module(module_name)
    except Exception:  # a missing module (or one that fails to import): suggest the nearest module of its package
        package_name, _, leaf = module_name.rpartition(".")
        try:
            import pkgutil

            package = importlib.import_module(package_name)
            names = [m.name for m in pkgutil.iter_modules(getattr(package, "__path__", []))]
        except Exception:
            names = []
        close = difflib.get_close_matches(leaf, names, n=1, cutoff=0.6)
        hint = f": did you mean `{package_name}.{close[0]}.{class_name}`?" if close else \
            " (python cli.py fit --help lists the classes)"
        return f"{where}: {key}: no module `{module_name}` for class path `{class_path}`{hint}"
    classes = [name for name, value in vars(module).items() if inspect.isclass(value) and not name.startswith("_")]
    close = difflib.get_close_matches(class_name, classes, n=1, cutoff=0.6)
    hint = f": did you mean `{module_name}.{close[0]}`?" if close else \
        f" (it defines {', '.join(sorted(classes)[:8])})"
    return f"{where}: {key}: `{module_name}` has no class `{class_name}`{hint}"


def _yaml_problem(argv: list[str]) -> str | None:
    """The first config file that is not valid YAML, with the line and column of the mistake."""
    for path in config_files(argv):
        try:
            yaml.safe_load(Path(path).read_text())
        except OSError:
            continue
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            return (f"{path} is not valid YAML{at}: {problem} (check the indentation: a key's value either follows "
                    "the colon or is indented below it, with spaces only)")
    return None


def _is_saved_run_config(path: str) -> bool:
    """``<run_dir>/config.yaml`` beside the run's state: migrated on read, never refused for its layout."""
    layout = RunLayout(Path(path).parent)
    return Path(path) == layout.config_path and layout.state_path.is_file()


def _has_dotted(tree: object, key: str) -> bool:
    """Whether ``tree`` holds the dotted ``key`` exactly (``data.stack_policy``: a ``stack_policy`` in ``data``)."""
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def previous_layout_message(argv: list[str]) -> str | None:
    """One line for a config file or command line that uses the data regime's previous keys (``data.stack_policy``,
    ``loop.stack_generations``, ...), naming each one's new key; None when neither does."""
    for path in config_files(argv):
        if _is_saved_run_config(path):
            continue
        tree = _load(path)
        old = [key for key in PREVIOUS_KEYS if _has_dotted(tree, key)]
        if old:
            return _previous_layout_line(path, old)
    given = {arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--")}
    old = [key for key in PREVIOUS_KEYS if key in given]
    return _previous_layout_line("the command line", old) if old else None


def _previous_layout_line(where: str, old: list[str]) -> str:
    moves = ", ".join(f"{key} -> {PREVIOUS_KEYS[key]}" for key in old)
    return (f"{where}: the data regime is one section now, data.regime: {moves} (e.g. data: {{regime: {{policy: fifo, "
            "window: 3, synthetic_share: 0.5}}; docs/configuration.md, Data regime)")


def located_message(message: str, argv: list[str], parser=None, refused: Mapping[str, str] | None = None) -> str:
    """The parser's one-line ``message`` with where the mistake is and the nearest valid names, never one of the
    ``refused`` keys (key -> why, e.g. ``trainer.max_epochs``, which the loop sets itself)."""
    if argv[:1] == ["fit"] and not config_files(argv) and "are required" in message:
        return (f"fit needs an experiment config: python cli.py fit --config {EXAMPLE_CONFIG} (a small run on a "
                "laptop CPU; configs/ holds one file per experiment of the paper)")
    if message.startswith("Problems parsing config"):
        return _yaml_problem(argv) or message
    match = re.search(r"class_path '([^']+)'", message)
    key = re.search(r'Parser key "([^"]+)"', message)
    if match and ("has no attribute" in message or "No module named" in message):
        return _class_path_problem(key[1] if key else "class_path", match[1], argv)
    given = re.search(r"Given value: (.*)$", message)
    if key and given and key[1] == "seed_everything":
        return (f"seed_everything: `{given[1]}` is not a whole number: give the seed as an integer, e.g. "
                "--seed_everything 0 (or seed_everything: 0 in the config file)")
    unknown = re.search(r"does not accept option '([^']+)'", message) or re.search(r"Option '([^']+)' is not accepted",
                                                                                  message)
    if unknown:
        return previous_layout_message(argv) or _unknown_key(unknown[1], argv, parser, None, refused)
    unrecognized = re.search(r"unrecognized arguments: --([\w.]+)", message)
    if unrecognized:
        return previous_layout_message(argv) or _unknown_key(unrecognized[1], argv, parser, "the command line", refused)
    return message
