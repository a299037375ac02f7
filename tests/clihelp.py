"""Running the fxnet CLI in-process from tests (tests/ is on sys.path, as for hubserver)."""

from __future__ import annotations

import pytest

from fxnet.cli.app import main


def run(argv, capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exc.value.code, out, err
