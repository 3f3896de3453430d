"""The `lam` click group: the one error handler of every command, and the quiet, status-line wrapper each runs in.

The command modules (lam_platform/cli/data.py, training.py, ...) register their commands on `main`;
lam_platform/cli/main.py imports them all and is the entry point.
"""

from __future__ import annotations

import json
import sys
import warnings

import click

# No status line: a server logs requests, and the demo and the simulated loop print their own steps.
LONG_RUNNING = {"serve", "demo", "simulate-loop"}


class LamCommand(click.Command):
    """A `lam` subcommand: library noise is quieted when it runs, never for --help (which imports nothing)."""

    def invoke(self, ctx):
        import feast  # noqa: F401  (its import installs warning filters of its own; ours must come after)

        from lam_platform.core import progress

        # Ray Data and Feast warn about their own deprecated internals; nothing a user of `lam` can change.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(ray|feast)(\.|$)")
        progress.set_quiet(bool(ctx.params.get("as_json")))  # --json: stdout is one object, stderr stays quiet
        if self.name in LONG_RUNNING:
            return super().invoke(ctx)
        with progress.status(f"lam {self.name}"):
            return super().invoke(ctx)


class LamGroup(click.Group):
    """One error handler for every command. A user's mistake (a bad option, a bad lam.yaml, missing input, a
    refused step) prints one line naming the input and the fix and exits 2; anything else is a bug and prints
    one line too, exit 1. With --json the line is `{"error": ..., "hint": ...}`; with --debug (or LAM_DEBUG=1)
    the traceback instead."""

    command_class = LamCommand

    def invoke(self, ctx):
        from lam_platform.core.errors import UserError

        # The subcommand and its own arguments, read before click consumes them.
        args = (*getattr(ctx, "_protected_args", ()), *ctx.args)
        wants_json, name = "--json" in args, (args[0] if args else "")
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.ClickException as err:  # a usage mistake: an unknown option, a missing or bad value
            _fail(err.format_message(), f"see `lam {name} --help`", wants_json, 2)
        except (UserError, FileNotFoundError) as err:
            if ctx.params.get("debug"):
                raise
            _fail(str(err), getattr(err, "hint", None) or f"see `lam {name} --help`", wants_json, 2)
        except Exception as err:
            if ctx.params.get("debug"):
                raise
            _fail(
                f"{type(err).__name__}: {err}",
                "not a mistake of yours as far as lam can tell: rerun with "
                "`lam --debug` (or LAM_DEBUG=1) for the traceback and report it",
                wants_json,
                1,
            )


def _fail(message: str, hint: str, as_json: bool, code: int) -> None:
    """Print one error line (JSON on stdout for --json, text on stderr otherwise) and exit with `code`."""
    from lam_platform.core.errors import one_line

    if as_json:
        click.echo(json.dumps({"error": one_line(message), "hint": hint}))
    else:
        click.echo(f"Error: {one_line(message)} ({hint})", err=True)
    sys.exit(code)


@click.group(cls=LamGroup)
@click.version_option(package_name="lam-platform", prog_name="lam")
@click.option("--debug", is_flag=True, envvar="LAM_DEBUG", help="Show tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """LAM platform: 4W1H events -> Feast -> Ray-trained Large Action Model -> online scores -> call list."""
