"""``arma`` console script / ``python -m arma_core``.

The library's own subcommands are ``demo`` and ``erf``. Other installed packages add theirs
through the ``arma_nets.commands`` entry-point group (``name = "module:function"``, the function
taking the argument list and returning an exit code): the paper's experiments
(``arma_experiments``, the ``experiments`` extra) add ``video`` and the others that way, so the
library never imports them.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "arma_nets.commands"

_BUILTIN = {
    "demo": ("arma_core.demo:main", "solve random stable AR systems on every backend and time them"),
    "erf": ("arma_core.erf_cli:main", "effective receptive fields of linear ARMA networks (Figure 3)"),
}


def _commands() -> dict[str, tuple[str, str]]:
    """Subcommand name -> (``module:function``, one-line description)."""
    found = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in found:
            module = ep.value.split(":")[0]
            found[ep.name] = (ep.value, f"(from {module.split('.')[0]}) see arma {ep.name} --help")
    return found


def _usage(commands) -> str:
    lines = ["usage: arma COMMAND [options]   (arma COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in commands.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(commands))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in commands:
        print(f"arma: unknown command {name!r}\n\n{_usage(commands)}", file=sys.stderr)
        return 2
    target = commands[name][0]
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # the experiments ship in this distribution, their dependencies in an extra
        print(
            f"arma {name}: {exc}; install the experiments' dependencies with pip install 'arma-nets[experiments]'",
            file=sys.stderr,
        )
        return 2
    return int(getattr(module, function)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
