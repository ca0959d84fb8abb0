"""The gwalign command line as a click command, for sphinx-click (docs/cli.md).

Typer builds its commands on its own copy of click's classes, which sphinx-click does not accept.
This module rebuilds the same tree (group, commands, arguments, options, help texts, defaults)
from :func:`typer.main.get_command` with click's own classes. Only the documentation uses it.
"""

from __future__ import annotations

import pathlib
import typing

import click
import typer

from gwalign.cli import app

_TYPES = {str: click.STRING, int: click.INT, float: click.FLOAT, bool: click.BOOL,
          pathlib.Path: click.Path(path_type=pathlib.Path)}


def _type(param) -> click.ParamType:
    annotation = param.type_descriptor.annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (list, typing.List) and args:
        annotation = args[0]
    kind = _TYPES.get(annotation, click.STRING)
    if kind is click.INT and (getattr(param, "min", None) is not None or getattr(param, "max", None) is not None):
        return click.IntRange(param.min, param.max)
    return kind


def _help(param) -> tuple[str | None, bool]:
    """The help text without rich's escapes, and whether it states its default itself."""
    text = getattr(param, "help", None)
    if text is None:
        return None, False
    text = text.replace("\\[", "[")
    return text, "[default:" in text


def _param(param) -> click.Parameter:
    text, states_default = _help(param)
    if param.param_type_name == "argument":
        argument = click.Argument([param.name], required=param.required, nargs=param.nargs, type=_type(param))
        argument.help = text   # sphinx-click prints an argument's help when it has one
        return argument
    declarations = list(param.opts)
    if param.secondary_opts:
        declarations[0] = f"{declarations[0]}/{param.secondary_opts[0]}"
    default = str(param.default) if isinstance(param.default, pathlib.PurePath) else param.default
    return click.Option([*declarations, param.name], help=text, default=default, required=param.required,
                        multiple=param.multiple, is_flag=param.is_flag or None,
                        type=None if param.is_flag else _type(param), hidden=param.hidden,
                        show_default=not states_default and param.default is not None and not param.is_flag)


def _command(command) -> click.Command:
    common = dict(name=command.name, help=command.help, short_help=command.short_help, epilog=command.epilog,
                  params=[_param(p) for p in command.params], hidden=command.hidden)
    if hasattr(command, "commands"):
        return click.Group(commands={name: _command(sub) for name, sub in command.commands.items()}, **common)
    return click.Command(**common)


#: ``gwalign`` and its subcommands (run, example, check, evaluate) as one click group.
command = _command(typer.main.get_command(app))
