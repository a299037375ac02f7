"""fxnet's entry point: the typer app and the error-to-exit-code mapping.

Exit codes: 0 ok, 1 usage error, 2 processing error (any file failed), 130 interrupted.
Errors print as one line on stderr; set FXNET_DEBUG=1 for a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from fxnet import __version__

app = typer.Typer(
    name="fxnet",
    help="Learned, knob-conditioned audio effects and distortion removal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fxnet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """fxnet: apply learned effects (apply), remove distortion (remove), capture gear
    (profile), measure quality (eval), and manage models (models)."""


_registered = False


def _register() -> None:
    global _registered
    if _registered:  # main() may run many times in one process (tests, embedding)
        return
    _registered = True
    from fxnet.cli import apply_cmd, eval_cmd, models_cmd, profile_cmd, remove_cmd

    app.command("apply", help=apply_cmd.HELP, no_args_is_help=True)(apply_cmd.apply)
    app.command("remove", help=remove_cmd.HELP, no_args_is_help=True)(remove_cmd.remove)
    app.command("profile", help=profile_cmd.HELP, no_args_is_help=True)(profile_cmd.profile)
    app.command("eval", help=eval_cmd.HELP, no_args_is_help=True)(eval_cmd.eval_command)
    app.add_typer(models_cmd.app, name="models")


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"fxnet: error: {message}\n")
    sys.exit(code)


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage-type errors, abort errors) for the click typer runs on.

    Recent typer versions vendor their own click, older ones use the click package.
    """
    import click

    usage: list[type] = [click.exceptions.ClickException]
    abort: list[type] = [click.exceptions.Abort]
    try:
        from typer.exceptions import Abort, TyperException

        usage.append(TyperException)
        abort.append(Abort)
    except ImportError:  # pragma: no cover - older typer
        pass
    return tuple(usage), tuple(abort)


def main(argv: list[str] | None = None) -> None:
    from fxnet.constants import debug_enabled
    from fxnet.errors import FxnetError

    _register()
    usage_errors, abort_errors = _click_errors()
    try:
        rv = app(args=argv, prog_name="fxnet", standalone_mode=False)
    except FxnetError as e:
        if debug_enabled():
            raise
        _fail(str(e), e.exit_code)
    except abort_errors + (KeyboardInterrupt,):
        sys.stderr.write("fxnet: interrupted\n")
        sys.exit(130)
    except usage_errors as e:
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _fail(e.format_message() + hint, 1)
    except Exception as e:  # noqa: BLE001 - the last line of defence of a CLI
        if debug_enabled():
            raise
        _fail(f"internal error: {type(e).__name__}: {e} (set FXNET_DEBUG=1 for a traceback)", 2)
    code = rv if isinstance(rv, int) else 0
    if code == 130:  # typer turns KeyboardInterrupt into Exit(130)
        sys.stderr.write("fxnet: interrupted\n")
    sys.exit(code)


if __name__ == "__main__":
    main()
