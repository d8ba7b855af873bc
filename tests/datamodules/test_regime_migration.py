"""The data regime's previous layout: configs of the previous release migrated on read, and the identity rendering
that keeps a previous run's fingerprint."""

import json
from pathlib import Path

import yaml

from datamodules.regime_migration import (
    PREVIOUS_KEYS,
    has_previous_keys,
    identity_text,
    to_current_layout,
    to_previous_layout,
)

#: config texts (and their fingerprints) that the previous release dumped, recorded with it before the change
PREVIOUS_RELEASE = json.loads((Path(__file__).parents[1] / "fixtures" / "previous_release_configs.json").read_text())


def test_every_previous_key_has_its_place_in_the_regime_section():
    assert PREVIOUS_KEYS == {"data.synthetic_share": "data.regime.synthetic_share",
                             "data.oversample": "data.regime.oversample", "data.stack_policy": "data.regime.policy",
                             "data.stack_capacity": "data.regime.capacity",
                             "loop.stack_generations": "data.regime.window"}


def test_a_previous_config_moves_its_keys_into_the_regime_section():
    old = {"data": {"source": {"x": 1}, "synthetic_share": 0.25, "oversample": True, "stack_policy": "replace",
                    "stack_capacity": 500, "batch_size": 8},
           "loop": {"generations": 2, "stack_generations": 4, "generator_epochs": 1}}
    new = to_current_layout(old)
    assert new == {"data": {"source": {"x": 1}, "regime": {"policy": "replace", "window": 4, "synthetic_share": 0.25,
                                                           "capacity": 500, "oversample": True}, "batch_size": 8},
                   "loop": {"generations": 2, "generator_epochs": 1}}
    assert list(new["data"]) == ["source", "regime", "batch_size"]  # where the old keys stood
    assert "stack_policy" in old["data"]  # the input is left as it was
    assert not has_previous_keys(new) and has_previous_keys(old)


def test_a_partial_previous_config_keeps_only_what_it_gave():
    assert to_current_layout({"loop": {"stack_generations": 1}}) == {"loop": {}, "data": {"regime": {"window": 1}}}
    current = {"data": {"regime": {"policy": "fifo"}}, "loop": {"generations": 1}}
    assert to_current_layout(current) is current


def test_the_identity_rendering_gives_back_the_previous_release_text_exactly():
    """A current dump of each recorded experiment, rendered for the identity, is byte for byte the text the previous
    release dumped (and so hashes to the fingerprint its runs recorded)."""
    for key, recorded in PREVIOUS_RELEASE.items():
        header, _, body = recorded["text"].partition("\n")
        current = to_current_layout(yaml.safe_load(body))
        current_text = f"{header}\n" + yaml.safe_dump(current, default_flow_style=False, allow_unicode=True,
                                                      sort_keys=False)
        assert "regime:" in current_text and "stack_policy" not in current_text
        assert identity_text(current_text) == recorded["text"], key


def test_a_regime_the_previous_layout_cannot_express_is_its_own_identity():
    text = "data:\n  regime:\n    policy: fresh\n    window: 3\n    synthetic_share: 0.5\n    capacity: null\n" \
           "    oversample: false\nloop:\n  generations: 1\n"
    assert to_previous_layout(yaml.safe_load(text)) is None and identity_text(text) == text
    assert identity_text("seed_everything: 0\nsandbox: {}\n") == "seed_everything: 0\nsandbox: {}\n"


def test_keys_added_since_the_previous_release_keep_the_identity_only_at_their_neutral_value():
    """A run of the previous release resumes although today's dump has keys it never wrote: at the value that
    computes what it computed they are left out of the previous layout; at another value the layout cannot say it."""
    from datamodules.regime_migration import to_previous_layout

    current = {"model": {"class_path": "x.SD", "init_args": {"cache_latents": False}},
               "data": {"source": {}, "regime": {"policy": "fifo", "window": 3, "synthetic_share": 0.5,
                                                 "capacity": None, "oversample": False,
                                                 "fresh_real_per_generation": None},
                        "batch_size": 8, "view_store": None, "view_store_dir": None},
               "loop": {"samples_per_generation": 10}}
    previous = to_previous_layout(current)
    assert previous["model"] == {"class_path": "x.SD", "init_args": {}}
    assert list(previous["data"]) == ["source", "synthetic_share", "oversample", "stack_policy", "stack_capacity",
                                      "batch_size"]
    assert previous["loop"] == {"samples_per_generation": 10, "stack_generations": 3}
    cached = {**current, "model": {"class_path": "x.SD", "init_args": {"cache_latents": True}}}
    assert to_previous_layout(cached) is None  # the latent cache is new: a previous run resumes with it off


def test_a_neutral_key_added_since_the_regime_section_leaves_every_identity_as_it_was():
    """A run of the release that introduced ``data.regime`` (a regime the previous layout cannot express, whose
    identity is its own text) resumes: today's dump adds ``loop.classifier_parallelism: null``, which is left out;
    at another value (never dumped: the key is resume-neutral) the line would stay."""
    recorded = ("# header\ndata:\n  regime:\n    policy: fresh\n    window: 1\n    synthetic_share: 0.5\n"
                "    capacity: null\n    oversample: false\nloop:\n  generations: 1\n  classifier_lr: null\n")
    today = recorded.replace("  classifier_lr: null\n", "  classifier_lr: null\n  classifier_parallelism: null\n")
    assert identity_text(recorded) == recorded
    assert identity_text(today) == recorded
    assert identity_text(today.replace("parallelism: null", "parallelism: devices")) != recorded
    nested = today.replace("loop:\n", "data2:\n  classifier_parallelism: null\nloop:\n")  # another section's key stays
    assert "data2:\n  classifier_parallelism: null" in identity_text(nested)
