"""``fxnet models``: list the pretrained models, show one model's card, download one.

Each command parses its arguments, makes one call into ``fxnet.registry`` (and
``fxnet.checkpoint`` for ``info``) and renders the result. Errors are fxnet errors; the
main app prints them as one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fxnet.knobs import KnobSpec
    from fxnet.registry import RegistryEntry

app = typer.Typer(
    name="models",
    help="List, inspect and download pretrained models.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ModelSpec = Annotated[
    str,
    typer.Argument(help="A registry name (see 'fxnet models list'), a model file, or hf://ORG/REPO/FILE[@REVISION]."),
]


@app.command("list")
def list_command(as_json: JsonFlag = False) -> None:
    """List the models in the registry and whether each is bundled, cached or remote."""
    from fxnet.registry import list_models

    rows = list_models()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        from fxnet.constants import config_dir

        typer.echo(f"No pretrained models registered; add [models.NAME] tables to {config_dir() / 'pretrained.toml'}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("Name", "Task", "Knobs", "Size", "Status", "Description")
    for row in rows:
        knobs, size = ", ".join(row["knobs"]), human_bytes(row["size_bytes"])
        table.add_row(row["name"], row["task"], knobs, size, row["status"], row["description"])
    Console().print(table)


@app.command("info")
def info_command(model: ModelSpec, as_json: JsonFlag = False) -> None:
    """Show a model's task, architecture, geometry, knobs and training summary."""
    from fxnet.checkpoint import read_header
    from fxnet.registry import load_registry, resolve_model

    path = resolve_model(model)
    info = read_header(path)
    entry = None
    if not model.startswith("hf://") and path != Path(model).expanduser():
        entry = load_registry().get(model)
    card: dict[str, Any] = {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "num_parameters": info.num_parameters,
        "registry": None if entry is None else _entry_card(entry),
        "metadata": info.meta,
    }
    if as_json:
        typer.echo(json.dumps(card, indent=2))
        return
    _render_card(card, info.knobs)


@app.command("pull")
def pull_command(model: ModelSpec) -> None:
    """Download a model into the local cache (if needed) and print its path."""
    from fxnet.registry import pull

    typer.echo(str(pull(model)))


# --- rendering ----------------------------------------------------------------------------


def human_bytes(size: int | None) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units); None -> ``"?"``."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _entry_card(entry: RegistryEntry) -> dict[str, Any]:
    keys = ("name", "repo_id", "filename", "revision", "sha256", "license", "recipe")
    return {key: getattr(entry, key) for key in keys}


def _render_card(card: dict[str, Any], knobs: list[KnobSpec]) -> None:
    from rich.console import Console
    from rich.table import Table

    meta = card["metadata"]
    model = meta["model"]
    geometry = meta.get("geometry", {})
    console = Console()
    description = meta.get("description") or "(no description)"
    console.print(f"[bold]{meta.get('name', '')}[/bold]: {description}", highlight=False)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    facts.add_row("file", f"{card['path']} ({human_bytes(card['size_bytes'])})")
    facts.add_row("task", meta.get("task", "apply"))
    facts.add_row("architecture", str(model["arch"]))
    facts.add_row("sample rate", f"{model.get('sample_rate', geometry.get('sample_rate', '?'))} Hz")
    facts.add_row(
        "geometry",
        ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in geometry.items() if k != "sample_rate") + " (samples)",
    )
    facts.add_row("parameters", f"{card['num_parameters']:,}")
    if card["registry"]:
        reg = card["registry"]
        facts.add_row("source", f"{reg['repo_id']}/{reg['filename']}@{reg['revision']}")
        if reg["license"]:
            facts.add_row("license", reg["license"])
    console.print(facts, highlight=False)

    if knobs:
        table = Table("Knob", "Range", "Default", "Description", title="Knobs", title_justify="left")
        for k in knobs:
            span = f"{k.minimum:g}..{k.maximum:g}{' ' + k.unit if k.unit else ''}"
            if k.scale == "log":
                span += " (log)"
            if k.steps:
                span += f", {k.steps} steps"
            physical = f"{k.to_physical(k.default):g}{' ' + k.unit if k.unit else ''}"
            table.add_row(k.name, span, f"{physical} ({k.default:.2f})", k.description)
        console.print(table, highlight=False)
    else:
        console.print("Knobs: none", highlight=False)

    training = meta.get("training") or {}
    if training:
        summary = Table.grid(padding=(0, 2))
        summary.add_column(style="bold")
        summary.add_column(overflow="fold")
        for key, value in training.items():
            summary.add_row(str(key), _short(value))
        console.print("Training:", highlight=False)
        console.print(summary, highlight=False)
    else:
        console.print("Training: none recorded", highlight=False)


def _short(value: Any, limit: int = 70) -> str:
    text = f"{value:g}" if isinstance(value, float) else value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
