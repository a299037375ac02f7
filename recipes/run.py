"""Train a bundled model from its committed recipe: `python recipes/run.py NAME [-o OUT]`.

Runs `fxnet profile` with the recipe's arguments (printing the exact command line) and
writes the model to OUT (default: recipes/out/NAME.safetensors). To ship it, copy it to
fxnet/weights/ and put its sha256 and size into pretrained.toml (`--install` does both).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("name")
    ap.add_argument("-o", "--output")
    ap.add_argument("--install", action="store_true", help="copy into fxnet/weights and update pretrained.toml")
    ap.add_argument("extra", nargs="*", help="extra fxnet profile arguments (e.g. --seconds 60)")
    args = ap.parse_args()
    out = train(args.name, args.output, args.extra)
    if args.install:
        install(args.name, out)


def train(name: str, output: str | None = None, extra: list[str] = ()) -> Path:
    """Run recipe ``name`` (after the recipes it ``requires``, when their outputs are
    missing); returns the model file. ``{out}`` in a recipe's args is recipes/out."""
    recipe = tomllib.loads((HERE / f"{name}.toml").read_text())
    for needed in recipe.get("requires", []):
        if not (HERE / "out" / f"{needed}.safetensors").is_file():
            train(needed)
    out = Path(output or HERE / "out" / f"{name}.safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    recipe_args = [a.replace("{out}", str(HERE / "out")) for a in recipe["args"]]
    cmd = [sys.executable, "-m", "fxnet", "profile", *recipe_args, *extra, "-o", str(out), "--force"]
    print("+", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return out


def install(name: str, model: Path) -> None:
    """Copy the model into the package under the recipe's name and description (the
    weights and the training summary are kept as they are) and update the registry."""
    from fxnet.checkpoint import load_model, save_model

    recipe = tomllib.loads((HERE / f"{name}.toml").read_text())
    target = ROOT / "fxnet" / "weights" / f"{name}.safetensors"
    net, info = load_model(model)
    save_model(net, target, task=info.task, name=recipe["name"], description=recipe["description"],
               training=info.meta.get("training"))
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    index = ROOT / "pretrained.toml"
    text = index.read_text()
    block = re.compile(rf"(\[models\.{re.escape(name)}\].*?)(?=\n\[|\Z)", re.S)
    entry = block.search(text)
    if not entry:
        raise SystemExit(f"pretrained.toml has no [models.{name}] entry to update")
    body = re.sub(r'sha256\s*=\s*"[^"]*"', f'sha256 = "{digest}"', entry.group(1))
    body = re.sub(r"size_bytes\s*=\s*\d+", f"size_bytes = {target.stat().st_size}", body)
    index.write_text(text.replace(entry.group(1), body))
    print(f"installed {target} (sha256 {digest})")


if __name__ == "__main__":
    main()
