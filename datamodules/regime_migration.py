"""The data regime's previous layout: five keys over two sections, before ``data.regime`` held them.

The previous release wrote ``data.synthetic_share``, ``data.oversample``, ``data.stack_policy``,
``data.stack_capacity`` and ``loop.stack_generations``. A run directory it wrote keeps that layout in its
``config.yaml`` and a fingerprint of it in ``state.json``, so:

* ``to_current_layout`` migrates such a config on read (a saved run resumes; the report groups old and new runs);
* ``to_previous_layout`` renders a current config the old way, and the run's identity (its fingerprint) is taken
  over that rendering whenever the old layout can say the same thing, so the same experiment keeps its identity;
* ``PREVIOUS_KEYS`` names each old key's new place, for the parser's one-line refusal of an old config.
"""

from __future__ import annotations

import copy

#: each key of the previous layout -> its key in ``data.regime`` (in the order the previous release dumped them)
PREVIOUS_DATA_KEYS = {"synthetic_share": "synthetic_share", "oversample": "oversample", "stack_policy": "policy",
                      "stack_capacity": "capacity"}
PREVIOUS_LOOP_KEYS = {"stack_generations": "window"}
#: old dotted key -> new dotted key
PREVIOUS_KEYS = {**{f"data.{old}": f"data.regime.{new}" for old, new in PREVIOUS_DATA_KEYS.items()},
                 **{f"loop.{old}": f"data.regime.{new}" for old, new in PREVIOUS_LOOP_KEYS.items()}}
#: the regimes the previous layout could express (``data.stack_policy``'s values)
PREVIOUS_POLICIES = ("fifo", "replace", "accumulate", "subsample")
#: keys added since the previous release, with the value at which a config means what the previous release computed
#: (resume-neutral keys are dumped as null for the identity): left out of the previous layout at that value, so the
#: same experiment keeps its identity; at another value the old layout cannot express the config
ADDED_SINCE_PREVIOUS = {("data", "view_store"): None, ("data", "view_store_dir"): None,
                        ("data", "regime", "fresh_real_per_generation"): None,
                        ("model", "init_args", "cache_latents"): False, ("loop", "classifier_parallelism"): None}
#: resume-neutral keys (dumped as null) added since the release that introduced ``data.regime``: their null line is
#: left out of every identity, so a run that release started keeps its fingerprint (its text had no such line)
NEUTRAL_SINCE_REGIME = {("loop", "classifier_parallelism")}


def _without_added_keys(config: dict) -> dict | None:
    """``config`` without the keys added since the previous release (None when one holds another value)."""
    config = copy.deepcopy(config)
    for path, neutral in ADDED_SINCE_PREVIOUS.items():
        parent = config
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or path[-1] not in parent:
            continue
        if parent[path[-1]] != neutral:
            return None
        del parent[path[-1]]
    return config


def _section(config: dict, name: str) -> dict | None:
    value = config.get(name)
    return value if isinstance(value, dict) else None


def has_previous_keys(config: object) -> bool:
    """Whether a loaded config (a mapping) holds any key of the previous layout."""
    if not isinstance(config, dict):
        return False
    data, loop = _section(config, "data") or {}, _section(config, "loop") or {}
    return any(key in data for key in PREVIOUS_DATA_KEYS) or any(key in loop for key in PREVIOUS_LOOP_KEYS)


def to_current_layout(config: dict) -> dict:
    """A copy of ``config`` with the previous layout's keys moved into ``data.regime`` (placed where
    ``data.stack_policy`` stood, or after ``data.source``); a config without them is returned as it is."""
    if not has_previous_keys(config):
        return config
    config = copy.deepcopy(config)
    data, loop = _section(config, "data"), _section(config, "loop") or {}
    regime = dict(data.get("regime") or {}) if data is not None else {}
    for old, new in PREVIOUS_LOOP_KEYS.items():
        if old in loop:
            regime[new] = loop.pop(old)
    rebuilt: dict = {}
    for key, value in (data or {}).items():
        if key in PREVIOUS_DATA_KEYS:
            regime[PREVIOUS_DATA_KEYS[key]] = value
            rebuilt.setdefault("regime", regime)
        elif key != "regime":
            rebuilt[key] = value
    rebuilt.setdefault("regime", regime)
    rebuilt["regime"] = {key: regime[key] for key in ("policy", "window", "synthetic_share", "capacity", "oversample")
                         if key in regime}
    config["data"] = rebuilt
    return config


def to_previous_layout(config: dict) -> dict | None:
    """``config`` (a complete dump, every regime key present) as the previous release dumped the same experiment:
    the regime's keys back in ``data`` after ``data.source`` and ``loop.stack_generations`` after
    ``loop.samples_per_generation``; None when the old layout cannot express it (no complete regime section, or a
    policy it did not have)."""
    config = _without_added_keys(config)
    if config is None:
        return None
    data, loop = _section(config, "data"), _section(config, "loop")
    regime = data.get("regime") if data is not None else None
    needed = {*PREVIOUS_DATA_KEYS.values(), *PREVIOUS_LOOP_KEYS.values()}
    if loop is None or not isinstance(regime, dict) or not needed <= set(regime) \
            or regime["policy"] not in PREVIOUS_POLICIES:
        return None
    old_data: dict = {}
    for key, value in data.items():
        if key == "regime":
            continue
        old_data[key] = value
        if key == "source":
            old_data.update({old: regime[new] for old, new in PREVIOUS_DATA_KEYS.items()})
    if "source" not in data:
        old_data = {**{old: regime[new] for old, new in PREVIOUS_DATA_KEYS.items()}, **old_data}
    old_loop: dict = {}
    for key, value in loop.items():
        old_loop[key] = value
        if key == "samples_per_generation":
            old_loop.update({old: regime[new] for old, new in PREVIOUS_LOOP_KEYS.items()})
    return {**{k: (old_data if k == "data" else old_loop if k == "loop" else v) for k, v in config.items()}}


def _split_header(text: str) -> tuple[str, str]:
    """(the leading comment lines, the rest) of a dumped config."""
    lines = text.splitlines(keepends=True)
    count = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    return "".join(lines[:count]), "".join(lines[count:])


def _without_neutral_lines(config_text: str) -> str:
    """``config_text`` without the ``  <key>: null`` line of each key of ``NEUTRAL_SINCE_REGIME`` in its section."""
    section, kept = None, []
    for line in config_text.splitlines(keepends=True):
        if line[:1] not in (" ", "#", "\n", "-") and line.rstrip().endswith(":"):
            section = line.rstrip()[:-1]
        if any(section == where and line.rstrip() == f"  {key}: null" for where, key in NEUTRAL_SINCE_REGIME):
            continue
        kept.append(line)
    return "".join(kept)


def identity_text(config_text: str) -> str:
    """The text a run's identity is taken over: ``config_text`` (a dumped config) in the previous layout when that
    layout can express it (the same experiment keeps the fingerprint runs of the previous release recorded), else
    the text itself. Dumped as jsonargparse dumps (``yaml.safe_dump``, keys in order), the header kept."""
    import yaml

    config_text = _without_neutral_lines(config_text)
    header, body = _split_header(config_text)
    try:
        config = yaml.safe_load(body)
    except yaml.YAMLError:
        return config_text
    previous = to_previous_layout(config) if isinstance(config, dict) else None
    if previous is None:
        return config_text
    return header + yaml.safe_dump(previous, default_flow_style=False, allow_unicode=True, sort_keys=False)
