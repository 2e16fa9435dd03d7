"""Options that take several values after one flag (``--keys loss accuracy/top1``), as argparse's ``nargs="+"``.

Click options take one value per occurrence; :class:`MultiValueCommand` rewrites ``--opt a b c`` into
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


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


class MultiValueCommand(TyperCommand):
    """A Typer command whose list-valued options accept several values after one flag."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # Duck-typed: Typer vendors its own click, whose classes are private.
        flags = {flag for param in self.params
                 if getattr(param, "param_type_name", "") == "option" and getattr(param, "multiple", False)
                 for flag in param.opts}
        return super().parse_args(ctx, expand_multi_values(args, flags))
