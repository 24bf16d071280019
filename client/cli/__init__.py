"""``docket``: the command line for delegation members, heads, the mediator and auditors.

Every subcommand is a thin wrapper over :class:`client.api.DocketClient`: parse
arguments, call one library coroutine, print the result for people (default) or as one
JSON object (``--json``).  Exit codes (see :mod:`client.errors`): 0 ok, 1 verification
failure or alarm, 2 usage error, 3 network or server error, 4 local state or key store
error.  Any failure prints one line on stderr and never a traceback.

The home directory is ``--home``, else ``$DOCKET_HOME``, else ``$XDG_DATA_HOME/docket``,
else ``~/.local/share/docket``.  The passphrase comes from ``DOCKET_PASSPHRASE`` or a
prompt.


One module per command group registers its subcommands and handlers
(:mod:`~client.cli.identity`, :mod:`~client.cli.drafts`, :mod:`~client.cli.log`,
:mod:`~client.cli.admin`, :mod:`~client.cli.audit`, :mod:`~client.cli.demo`);
:mod:`~client.cli.app` builds the parser from them and runs a command,
:mod:`~client.cli.output` holds everything that prints for people, and
:mod:`~client.cli.files` saves what other parties sent.
"""

from __future__ import annotations

from client.cli.app import ID_OPTIONS, build_parser, join_id_values, main, run
from client.cli.context import Context, Handler, default_home, sync_or_warn
from client.cli.files import safe_file_name, save_new_file
from client.cli.output import _progress_bar, fmt_time, short, terminal_safe
from client.errors import ALARMS

__all__ = [
    "ALARMS",
    "ID_OPTIONS",
    "Context",
    "Handler",
    "_progress_bar",
    "build_parser",
    "default_home",
    "fmt_time",
    "join_id_values",
    "main",
    "run",
    "safe_file_name",
    "save_new_file",
    "short",
    "sync_or_warn",
    "terminal_safe",
]
