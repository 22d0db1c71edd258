"""Every command's --help works (argparse formats help text with %, so one stray % breaks it)."""
import pytest

from llmcourse.cli import COMMANDS, build_parser, main


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
