"""``arma`` console script / ``python -m arma_core``: ``erf``, ``video`` and ``demo`` subcommands."""
from __future__ import annotations

import sys

_COMMANDS = {
    "demo": ("arma_core.demo", "solve random stable AR systems on every backend and time them"),
    "erf": ("arma_core.erf_cli", "effective receptive fields of linear ARMA networks (Figure 3)"),
    "video": ("arma_core.nn.video.cli", "ConvLSTM vs ARMA-LSTM on Moving-MNIST (Table 3)"),
}


def _usage() -> str:
    lines = ["usage: arma COMMAND [options]   (arma COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<6} {text}" for name, (_, text) in _COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in _COMMANDS:
        print(f"arma: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    import importlib

    module = importlib.import_module(_COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
