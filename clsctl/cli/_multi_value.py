"""Command classes that rewrite the command line before click parses it.

:class:`ClsctlCommand` (every command) accepts the old spellings of renamed flags (:data:`RENAMED_FLAGS`,
``--save-path`` -> ``--out``): hidden aliases, not shown in ``--help``.

Options that take several values after one flag (``--keys loss accuracy/top1``), as argparse's ``nargs="+"``:
click options take one value per occurrence; :class:`MultiValueCommand` rewrites ``--opt a b c`` into
``--opt a --opt b --opt c`` for every list-valued option before click parses, so both spellings work. As with
argparse, the values run until the next token that starts with ``-``: put positional arguments before such an
option, or end its values with ``--``.
"""

from collections.abc import Sequence
from typing import Any

from typer.core import TyperCommand


def expand_multi_values(args: Sequence[str], options: set[str]) -> list[str]:
    """Repeat a multi-value option's flag before each of the values that follow it.

    Args:
        args: Command-line tokens after the command name.
        options: Flags (``--keys``, ``-k``) of list-valued options.
    """
    out: list[str] = []
    current: str | None = None
    taken = 0
    for index, token in enumerate(args):
        if token == "--":
            if current is not None:  # ends the option's values; positional arguments follow
                current = None
                continue
            out += list(args[index:])
            return out
        if token.startswith("-") and not _is_number(token):
            current = token if token in options else None
            taken = 0
            if current is None:
                out.append(token)
            continue
        if current is not None:
            out += [current, token]
            taken += 1
        else:
            out.append(token)
    if current is not None and taken == 0:
        out.append(current)  # a flag without values: let click report the missing value
    return out


RENAMED_FLAGS: dict[str, str] = {
    "--save-path": "--out",  # vis-cam, vis-scheduler
    "--out-dir": "--out",  # analyze-results
    "--output-dir": "--out",  # browse-dataset
    "--out-path": "--out",  # verify-dataset
}
"""Old flag spellings, still accepted (hidden) by commands that have the new flag and not the old one."""


def rename_flags(args: Sequence[str], renamed: dict[str, str]) -> list[str]:
    """Replace old flag spellings (also in ``--old=value`` form) up to a ``--`` that ends the options."""
    out: list[str] = []
    for index, token in enumerate(args):
        if token == "--":
            return out + list(args[index:])
        flag, sep, value = token.partition("=")
        out.append(renamed[flag] + sep + value if flag in renamed else token)
    return out


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


class ClsctlCommand(TyperCommand):
    """A Typer command that accepts the old spellings of renamed flags (:data:`RENAMED_FLAGS`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        own = {flag for param in self.params for flag in getattr(param, "opts", ())}
        renamed = {old: new for old, new in RENAMED_FLAGS.items() if old not in own and new in own}
        return super().parse_args(ctx, rename_flags(args, renamed) if renamed else list(args))


class MultiValueCommand(ClsctlCommand):
    """A Typer command whose list-valued options accept several values after one flag."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # Duck-typed: Typer vendors its own click, whose classes are private.
        flags = {flag for param in self.params
                 if getattr(param, "param_type_name", "") == "option" and getattr(param, "multiple", False)
                 for flag in param.opts}
        return super().parse_args(ctx, expand_multi_values(args, flags))
