"""Every command's --help works (argparse formats help text with %, so one stray % breaks it)."""
import pytest

from llmcourse.cli.main import COMMANDS, build_parser, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: python -m llmcourse " + command in capsys.readouterr().out


def test_every_command_is_built():
    parser = build_parser()
    names = set(parser._subparsers._group_actions[0].choices)
    assert names == set(COMMANDS)


def _options(parser, prefix=""):
    """{'train': ['--lora', ...], 'data inspect': [...]}: every command's option strings, subcommands included."""
    import argparse

    out = {prefix: sorted(s for a in parser._actions for s in a.option_strings)}
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                out.update(_options(sub, (prefix + " " + name).strip()))
    return out


def test_every_command_keeps_the_options_it_had_before_the_package_was_layered():
    """tests/fixtures/cli_options_before_layers.json was written from the CLI at a2e7410, before issue 17's move.
    Each option is still there; the only new spellings are --snake_case twins of --kebab-case options (from
    HfArgumentParser), and options added by later features are named here."""
    import json
    from pathlib import Path

    before = json.loads((Path(__file__).parent / "fixtures" / "cli_options_before_layers.json").read_text())
    now = _options(build_parser())
    added_since = {"train": {"--compile", "--system-prompt", "--system_prompt"},  # issue 18: compiled training;
                   "bench": {"--compile"},  # issue 26: the bot's own system prompt
                   "runs": {"--force"}}  # issue 27: deleting a run that is still training
    for command, options in before.items():
        assert set(options) <= set(now[command]), (command, set(options) - set(now[command]))
        extra = set(now[command]) - set(options) - added_since.get(command, set())
        assert {o.replace("_", "-") for o in extra} <= set(options), (command, extra)
