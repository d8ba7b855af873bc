"""simulation/parser_messages.py: where a parser mistake is, and the nearest valid names."""

from __future__ import annotations

from simulation.parser_messages import config_files, find_key, located_message, suggestion


def test_config_files_are_read_from_every_form_of_the_option():
    assert config_files(["fit", "--config", "a.yaml", "-c", "b.yaml", "--config=c.yaml", "--x", "1"]) == \
        ["a.yaml", "b.yaml", "c.yaml"]


def test_find_key_names_the_entry_of_a_list():
    tree = {"loop": {"generatons": 3}, "classifiers": [{"arch": "lenet"}, {"arch": "vgg19", "max_epoch": 2}]}
    assert find_key(tree, "max_epoch") == ["classifiers[1].max_epoch"]
    assert find_key(tree, "loop.generatons") == ["loop.generatons"]
    assert find_key(tree, "generatons") == ["loop.generatons"]
    assert find_key(tree, "nowhere") == [] and find_key(None, "x") == []


def test_suggestion_offers_only_close_names():
    assert suggestion("max_epoch", ["max_epochs", "lr", "arch"]) == ": did you mean `max_epochs`?"
    assert suggestion("zzz", ["max_epochs", "lr"]) == ""


def test_a_class_path_in_a_config_file_names_that_file(tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text("model:\n  class_path: lightning_modules.dcgan.ConditionalDCGANN\n")
    message = ('Parser key "model": Problem with given class_path \'lightning_modules.dcgan.ConditionalDCGANN\': '
               "module 'lightning_modules.dcgan' has no attribute 'ConditionalDCGANN'")
    assert located_message(message, ["fit", "--config", str(config)]) == (
        f"{config}: model: `lightning_modules.dcgan` has no class `ConditionalDCGANN`: did you mean "
        "`lightning_modules.dcgan.ConditionalDCGAN`?")


def test_other_messages_pass_through_unchanged():
    assert located_message('Parser key "loop.generations": Expected a <class \'int\'>', ["fit"]) == \
        'Parser key "loop.generations": Expected a <class \'int\'>'
