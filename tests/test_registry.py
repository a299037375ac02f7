"""The model registry and downloads, end to end against a local stand-in for the Hub.

The real ``huggingface_hub`` client talks HTTP to ``tests/hubserver.py`` on 127.0.0.1;
nothing is mocked. Every test gets its own HF_HOME, fxnet cache and config directories.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub  # noqa: F401  imported before any test sets HF_* variables
import pytest
import typer
from huggingface_hub import constants as hf_constants
from typer.testing import CliRunner

from fxnet import constants
from fxnet.checkpoint import read_header, save_model
from fxnet.cli import models_cmd
from fxnet.errors import CheckpointError, DownloadError, FxnetError, ModelNotFoundError, UsageError
from fxnet.knobs import KnobSpec
from fxnet.models.simple import FIR
from fxnet.registry import (
    HubFile,
    entry_status,
    file_sha256,
    list_models,
    load_registry,
    parse_hf_spec,
    pull,
    resolve_model,
)
from hubserver import HubServer  # tests/ is on sys.path (pytest rootdir-relative import)

REPO = "fxnet-test/fir"
FILE = "fir.safetensors"


@dataclass
class Env:
    hub: HubServer
    tmp: Path
    config: Path
    cache: Path

    @property
    def repo_cache(self) -> Path:
        return self.cache / "hub" / f"models--{REPO.replace('/', '--')}"

    def write_index(self, models: dict[str, dict], name: str = "pretrained.toml") -> Path:
        """Write a user pretrained.toml with these [models.NAME] tables."""
        lines = ["[models]"]
        for model, keys in models.items():
            lines.append(f"\n[models.{model}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
        path = self.config / name
        path.write_text("\n".join(lines) + "\n")
        return path

    def cached_files(self) -> set[str]:
        """Every file and symlink under the repository's cache folder, relative."""
        return {
            str(p.relative_to(self.repo_cache))
            for p in self.repo_cache.rglob("*")
            if p.is_file() or p.is_symlink()
        }


def _checkpoint(tmp: Path, name: str, **kwargs) -> bytes:
    path = save_model(FIR(sample_rate=44100, **kwargs), tmp / "build" / f"{name}.safetensors", name=name)
    return path.read_bytes()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, bytes]:
    """Real fxnet model files: two revisions of one model and one with a knob."""
    tmp = tmp_path_factory.mktemp("ckpt")
    knob = KnobSpec("tone", minimum=-12.0, maximum=12.0, unit="dB", default=0.5, description="spectral tilt")
    knob_path = save_model(
        FIR(sample_rate=44100, taps=8, knobs=[knob]),
        tmp / "fir-knob.safetensors",
        name="fir-knob",
        description="An 8-tap FIR with a tone knob",
        training={"steps": 1200, "loss": 0.0125, "data": "unit test"},
    )
    return {
        "main": _checkpoint(tmp, "fir", taps=8),
        "v2": _checkpoint(tmp, "fir", taps=8, latency=3),
        "knob": knob_path.read_bytes(),
    }


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkpoints: dict[str, bytes]):
    config, cache = tmp_path / "config", tmp_path / "cache"
    config.mkdir()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv(constants.CONFIG_DIR_ENV, str(config))
    monkeypatch.setenv(constants.CACHE_DIR_ENV, str(cache))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    # The client reads HF_HUB_OFFLINE once, at import: give it the value a fresh process would.
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    with HubServer() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.add_file(REPO, FILE, checkpoints["main"])
        hub.add_file(REPO, FILE, checkpoints["v2"], revision="v2")
        hub.add_file(REPO, "knob/fir-knob.safetensors", checkpoints["knob"])
        yield Env(hub=hub, tmp=tmp_path, config=config, cache=cache)


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a process started with HF_HUB_OFFLINE=1 sees."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)


# --- downloads ---------------------------------------------------------------------------


def test_registry_name_downloads_and_verifies(env: Env, checkpoints):
    env.write_index({"fir-test": {"repo_id": REPO, "filename": FILE, "sha256": _sha(checkpoints["main"])}})
    path = resolve_model("fir-test")
    commit = env.hub.commit(REPO)
    assert path == env.repo_cache / "snapshots" / commit / FILE
    assert path.read_bytes() == checkpoints["main"]
    assert file_sha256(path) == _sha(checkpoints["main"])
    assert [(r.method, r.path) for r in env.hub.requests] == [
        ("HEAD", f"/{REPO}/resolve/main/{FILE}"),
        ("GET", f"/{REPO}/resolve/main/{FILE}"),
    ]
    assert read_header(path).model_config["taps"] == 8


def test_cache_hit_makes_no_request(env: Env, checkpoints):
    env.write_index({"fir-test": {"repo_id": REPO, "filename": FILE, "sha256": _sha(checkpoints["main"])}})
    first = resolve_model("fir-test")
    env.hub.reset_counts()
    second = resolve_model("fir-test")
    assert second == first
    assert env.hub.count() == 0
    assert second.read_bytes() == checkpoints["main"]


def test_pinned_revision_returns_that_revision(env: Env, checkpoints):
    env.write_index(
        {
            "fir-main": {"repo_id": REPO, "filename": FILE, "sha256": _sha(checkpoints["main"])},
            "fir-v2": {"repo_id": REPO, "filename": FILE, "revision": "v2", "sha256": _sha(checkpoints["v2"])},
        }
    )
    v2 = resolve_model("fir-v2")
    main = resolve_model("fir-main")
    assert checkpoints["v2"] != checkpoints["main"]
    assert v2.read_bytes() == checkpoints["v2"]
    assert main.read_bytes() == checkpoints["main"]
    assert v2.parent.name == env.hub.commit(REPO, "v2")
    assert main.parent.name == env.hub.commit(REPO, "main")
    assert read_header(v2).model_config["latency"] == 3
    assert env.hub.count("GET") == 2


def test_hf_spec_forms(env: Env, checkpoints):
    assert resolve_model(f"hf://{REPO}/{FILE}@v2").read_bytes() == checkpoints["v2"]
    assert resolve_model(f"hf://{REPO}/{FILE}").read_bytes() == checkpoints["main"]
    commit = env.hub.commit(REPO, "v2")
    assert resolve_model(f"hf://{REPO}/{FILE}@{commit}").read_bytes() == checkpoints["v2"]
    nested = resolve_model(f"hf://{REPO}/knob/fir-knob.safetensors")
    assert nested.read_bytes() == checkpoints["knob"]
    assert nested.relative_to(env.repo_cache).parts[-2:] == ("knob", "fir-knob.safetensors")
    # A commit id already cached short-circuits the client: no request at all.
    env.hub.reset_counts()
    assert resolve_model(f"hf://{REPO}/{FILE}@{commit}").read_bytes() == checkpoints["v2"]
    assert env.hub.count() == 0


def test_parse_hf_spec():
    assert parse_hf_spec("hf://a/b/c.safetensors") == HubFile("a/b", "c.safetensors", "main")
    assert parse_hf_spec("hf://a/b/d/c.safetensors@v1.0") == HubFile("a/b", "d/c.safetensors", "v1.0")
    assert parse_hf_spec("hf://a/b/x@y.safetensors@main") == HubFile("a/b", "x@y.safetensors", "main")
    for bad in ("hf://a/b", "hf://a//c.safetensors", "hf://a/b/c.safetensors@", "hf://a/b/../c"):
        with pytest.raises(UsageError) as e:
            parse_hf_spec(bad)
        assert str(e.value) == (
            f"bad model spec '{bad}': expected hf://ORG/REPO/PATH/IN/REPO.safetensors[@REVISION]"
        )


def test_hf_token_is_sent(env: Env, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fxnettesttoken")
    resolve_model(f"hf://{REPO}/{FILE}")
    assert [r.method for r in env.hub.requests] == ["HEAD", "GET"]
    assert [r.headers.get("authorization") for r in env.hub.requests] == ["Bearer hf_fxnettesttoken"] * 2


# --- offline, server down ---------------------------------------------------------------------


def test_offline_with_warm_cache(env: Env, checkpoints, monkeypatch):
    env.write_index({"fir-test": {"repo_id": REPO, "filename": FILE, "sha256": _sha(checkpoints["main"])}})
    online = resolve_model("fir-test")
    spec_online = resolve_model(f"hf://{REPO}/{FILE}@v2")
    env.hub.reset_counts()
    _go_offline(monkeypatch)
    assert resolve_model("fir-test") == online
    assert resolve_model(f"hf://{REPO}/{FILE}@v2") == spec_online
    assert spec_online.read_bytes() == checkpoints["v2"]
    assert env.hub.count() == 0


def test_offline_with_empty_cache(env: Env, checkpoints, monkeypatch):
    env.write_index({"fir-test": {"repo_id": REPO, "filename": FILE, "sha256": _sha(checkpoints["main"])}})
    _go_offline(monkeypatch)
    with pytest.raises(DownloadError) as e:
        resolve_model("fir-test")
    assert str(e.value) == (
        f"fir-test: {REPO}/{FILE}@main is not cached and offline mode is on (HF_HUB_OFFLINE); "
        "run 'fxnet models pull fir-test' once with network access"
    )
    assert env.hub.count() == 0
    assert e.value.exit_code == 2


def test_offline_env_alone_is_honoured(env: Env, monkeypatch):
    """HF_HUB_OFFLINE set after the client was imported still means no network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="not cached and offline mode is on"):
        resolve_model(f"hf://{REPO}/{FILE}")
    assert env.hub.count() == 0


def test_server_down_with_warm_cache(env: Env, checkpoints):
    env.write_index({"fir-test": {"repo_id": REPO, "filename": FILE, "sha256": _sha(checkpoints["main"])}})
    by_name = resolve_model("fir-test")
    by_spec = resolve_model(f"hf://{REPO}/{FILE}@v2")
    env.hub.stop()
    assert resolve_model("fir-test") == by_name
    assert resolve_model(f"hf://{REPO}/{FILE}@v2") == by_spec
    assert by_spec.read_bytes() == checkpoints["v2"]


def test_endpoint_is_read_at_call_time(env: Env, checkpoints, monkeypatch):
    """Two servers in one process: HF_ENDPOINT changed after import is obeyed."""
    with HubServer() as other:
        other.add_file("other/repo", FILE, checkpoints["knob"])
        monkeypatch.setenv("HF_ENDPOINT", other.url)
        assert resolve_model(f"hf://other/repo/{FILE}").read_bytes() == checkpoints["knob"]
        assert other.count("GET") == 1
    assert env.hub.count() == 0


# --- failures ------------------------------------------------------------------------------


def test_missing_file_revision_and_repo(env: Env):
    env.write_index(
        {
            "no-file": {"repo_id": REPO, "filename": "nope.safetensors"},
            "no-rev": {"repo_id": REPO, "filename": FILE, "revision": "v9"},
            "no-repo": {"repo_id": "fxnet-test/ghost", "filename": FILE},
        }
    )
    url = env.hub.url
    expected = {
        "no-file": f"no-file: file 'nope.safetensors' not found in {REPO} at revision 'main' on {url}",
        "no-rev": f"no-rev: revision 'v9' not found in {REPO} on {url}",
        "no-repo": f"no-repo: repository fxnet-test/ghost not found on {url} (a private one needs HF_TOKEN)",
    }
    for name, message in expected.items():
        with pytest.raises(ModelNotFoundError) as e:
            resolve_model(name)
        assert str(e.value) == message
        assert "\n" not in str(e.value)
    assert env.hub.count("GET") == 0


def test_endpoint_that_is_not_a_hub(env: Env, checkpoints, monkeypatch):
    with HubServer(hub_headers=False) as plain:
        plain.add_file(REPO, FILE, checkpoints["main"])
        monkeypatch.setenv("HF_ENDPOINT", plain.url)
        with pytest.raises(DownloadError) as e:
            resolve_model(f"hf://{REPO}/{FILE}")
    assert str(e.value) == (
        f"hf://{REPO}/{FILE}: {plain.url} does not answer like a Hugging Face Hub (no X-Repo-Commit/ETag "
        "headers) and the file is not cached; check HF_ENDPOINT"
    )


def test_unreachable_hub_message(monkeypatch):
    """The client's answer when the Hub cannot be reached (after ~23 s of retries) maps to one line."""
    httpx2 = pytest.importorskip("httpx2")  # the HTTP stack of huggingface_hub 2.x
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    from huggingface_hub.errors import LocalEntryNotFoundError

    from fxnet.registry import _hub_error

    try:
        try:
            raise httpx2.ConnectError("[Errno 111] Connection refused")
        except httpx2.ConnectError as cause:
            raise LocalEntryNotFoundError("An error happened while trying to locate the file") from cause
    except LocalEntryNotFoundError as exc:
        error = _hub_error(exc, HubFile("o/r", "f.safetensors"), spec="m", offline=False)
    assert isinstance(error, DownloadError)
    assert str(error) == (
        f"m: cannot reach the Hub at {hf_constants.ENDPOINT} and o/r/f.safetensors@main is not cached; "
        "check the network connection (and HF_ENDPOINT)"
    )
    assert _hub_error(KeyError("bug"), HubFile("o/r", "f"), spec="m", offline=False) is None


def test_checksum_mismatch_is_not_kept(env: Env, checkpoints):
    wrong = "0" * 64
    env.write_index({"fir-bad": {"repo_id": REPO, "filename": FILE, "sha256": wrong}})
    for attempt in (1, 2):
        with pytest.raises(DownloadError) as e:
            resolve_model("fir-bad")
        assert str(e.value) == (
            f"fir-bad: checksum mismatch for {REPO}/{FILE}@main (sha256 {_sha(checkpoints['main'])}, "
            f"expected {wrong}); the download was deleted. The file on the Hub differs from the one "
            "the index names: check its 'revision' and 'sha256'"
        )
        assert env.hub.count("GET") == attempt  # nothing cached: downloaded again
        assert env.cached_files() == {"refs/main"}
        assert list((env.repo_cache / "blobs").iterdir()) == []


def test_corrupted_cached_copy_is_fetched_again(env: Env, checkpoints):
    env.write_index({"fir-test": {"repo_id": REPO, "filename": FILE, "sha256": _sha(checkpoints["main"])}})
    path = resolve_model("fir-test")
    blob = Path(os.path.realpath(path))
    blob.chmod(0o644)
    blob.write_bytes(b"garbage")
    env.hub.reset_counts()
    again = resolve_model("fir-test")
    assert again == path
    assert again.read_bytes() == checkpoints["main"]
    assert env.hub.count("GET") == 1


def test_corrupted_cached_copy_offline(env: Env, checkpoints, monkeypatch):
    env.write_index({"fir-test": {"repo_id": REPO, "filename": FILE, "sha256": _sha(checkpoints["main"])}})
    path = resolve_model("fir-test")
    blob = Path(os.path.realpath(path))
    blob.chmod(0o644)
    blob.write_bytes(b"garbage")
    _go_offline(monkeypatch)
    with pytest.raises(DownloadError) as e:
        resolve_model("fir-test")
    assert str(e.value) == (
        f"fir-test: the cached copy failed its checksum (sha256 {_sha(b'garbage')}, expected "
        f"{_sha(checkpoints['main'])}) and was deleted; offline mode is on (HF_HUB_OFFLINE), so it "
        "cannot be fetched again: run 'fxnet models pull fir-test' online"
    )
    assert not path.exists() and not blob.exists()


def test_unknown_name_lists_known_names(env: Env):
    env.write_index(
        {
            "zeta": {"repo_id": REPO, "filename": FILE},
            "alpha": {"repo_id": REPO, "filename": FILE},
        }
    )
    known = ", ".join(sorted(load_registry()))
    assert {"alpha", "zeta"} <= set(load_registry())
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model("fuzz")
    assert str(e.value) == (
        f"unknown model 'fuzz': not a file and not in the registry; known models: {known} "
        "(see 'fxnet models list')"
    )
    assert e.value.exit_code == 2


def test_paths(env: Env, tmp_path, checkpoints):
    model = tmp_path / "mine.safetensors"
    model.write_bytes(checkpoints["main"])
    assert resolve_model(str(model)) == model
    for spec in ("models/nope.safetensors", "nope.safetensors"):
        with pytest.raises(ModelNotFoundError) as e:
            resolve_model(spec)
        assert str(e.value) == f"{spec}: no such model file"
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model(str(tmp_path))
    assert str(e.value) == f"{tmp_path}: is a directory, not a model file"
    assert env.hub.count() == 0


# --- the index ---------------------------------------------------------------------------


def test_bad_user_toml(env: Env):
    path = env.config / "pretrained.toml"
    path.write_text("[models.x\nrepo_id = 1\n")
    with pytest.raises(UsageError) as e:
        load_registry()
    assert str(e.value).startswith(f"{path}: not valid TOML (")
    assert str(e.value).endswith("); fix or remove this file")
    assert e.value.exit_code == 1
    with pytest.raises(UsageError):
        resolve_model("x")


@pytest.mark.parametrize(
    "table, message",
    [
        ({"repo_id": REPO}, "missing required key 'filename'"),
        ({"repo_id": REPO, "filename": FILE, "sha265": "x"}, "unknown key(s) sha265; known keys: task, "
         "description, repo_id, filename, revision, sha256, license, bundled, recipe, knobs, size_bytes"),
        ({"repo_id": REPO, "filename": FILE, "task": "mangle"}, "'task' must be \"apply\" or \"remove\", got 'mangle'"),
        ({"repo_id": REPO, "filename": FILE, "sha256": "abc"}, "'sha256' must be 64 hexadecimal digits"),
        ({"repo_id": REPO, "filename": FILE, "size_bytes": "big"}, "'size_bytes' must be a int, got 'big'"),
        ({"repo_id": REPO, "filename": "../x"}, "'filename' must be a relative path inside the repository, got '../x'"),
    ],
)
def test_bad_user_entry(env: Env, table, message):
    path = env.write_index({"m": table})
    with pytest.raises(UsageError) as e:
        load_registry()
    assert str(e.value) == f"{path}: [models.m]: {message}"


def test_user_index_overrides_package(env: Env, monkeypatch):
    package = env.tmp / "pkg"
    package.mkdir()
    (package / "pretrained.toml").write_text(
        '[models.a]\nrepo_id = "o/a"\nfilename = "a.safetensors"\n'
        '[models.b]\nrepo_id = "o/b"\nfilename = "b.safetensors"\ndescription = "package b"\n'
    )
    monkeypatch.setattr(constants, "PACKAGE_DIR", package)
    user = env.write_index({"b": {"repo_id": "me/b", "filename": "b2.safetensors"}})
    registry = load_registry()
    assert sorted(registry) == ["a", "b"]
    assert (registry["a"].repo_id, registry["a"].source) == ("o/a", package / "pretrained.toml")
    assert (registry["b"].repo_id, registry["b"].filename, registry["b"].description) == ("me/b", "b2.safetensors", "")
    assert registry["b"].source == user


def test_shipped_index_parses():
    root = Path(__file__).resolve().parent.parent
    from fxnet.registry import _read_index

    entries = _read_index(root / "pretrained.toml")
    for entry in entries.values():
        assert entry.sha256 is not None, f"{entry.name}: shipped entries must pin a sha256"


def test_bundled_model(env: Env, checkpoints, monkeypatch):
    weights = env.tmp / "weights"
    weights.mkdir()
    (weights / FILE).write_bytes(checkpoints["main"])
    monkeypatch.setattr(constants, "WEIGHTS_DIR", weights)
    env.write_index(
        {
            "fir-bundled": {"repo_id": REPO, "filename": FILE, "bundled": True, "sha256": _sha(checkpoints["main"])},
            "fir-corrupt": {"repo_id": REPO, "filename": FILE, "bundled": True, "sha256": _sha(b"x")},
        }
    )
    assert resolve_model("fir-bundled") == weights / FILE
    assert pull("fir-bundled") == weights / FILE
    assert entry_status(load_registry()["fir-bundled"]) == {
        "status": "bundled",
        "path": str(weights / FILE),
        "size_bytes": len(checkpoints["main"]),
    }
    with pytest.raises(CheckpointError) as e:
        resolve_model("fir-corrupt")
    assert str(e.value) == (
        f"{weights / FILE}: bundled copy of model 'fir-corrupt' is corrupt "
        f"(sha256 {_sha(checkpoints['main'])}, expected {_sha(b'x')}); reinstall fxnet"
    )
    assert env.hub.count() == 0


def test_list_models_and_status(env: Env, checkpoints):
    env.write_index(
        {
            "fir-test": {
                "repo_id": REPO, "filename": FILE, "sha256": _sha(checkpoints["main"]),
                "task": "remove", "knobs": ["tone"], "size_bytes": 999, "license": "MIT",
                "description": "test model",
            }
        }
    )
    [before] = [row for row in list_models() if row["name"] == "fir-test"]
    assert (before["status"], before["path"], before["size_bytes"]) == ("remote", None, 999)
    path = pull("fir-test")
    [after] = [row for row in list_models() if row["name"] == "fir-test"]
    assert after == {
        "name": "fir-test", "task": "remove", "description": "test model", "knobs": ["tone"],
        "repo_id": REPO, "filename": FILE, "revision": "main", "sha256": _sha(checkpoints["main"]),
        "license": "MIT", "recipe": "", "bundled": False,
        "status": "cached", "path": str(path), "size_bytes": len(checkpoints["main"]),
    }


def test_no_hub_import_at_import_time():
    import subprocess
    import sys

    code = (
        "import sys, fxnet.registry, fxnet.cli.models_cmd; "
        "print('huggingface_hub' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


# --- the CLI ---------------------------------------------------------------------------------


def run_cli(*args: str) -> tuple[int, str, str]:
    """Mount `fxnet models` on a bare app and map fxnet errors like the main app does."""
    root = typer.Typer()
    root.add_typer(models_cmd.app)

    @root.callback()
    def _root() -> None:
        pass

    result = CliRunner(env={"COLUMNS": "200"}).invoke(root, list(args))
    if isinstance(result.exception, FxnetError):
        return result.exception.exit_code, result.stdout, str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_cli_list(env: Env, checkpoints):
    env.write_index({"fir-test": {"repo_id": REPO, "filename": FILE, "knobs": ["tone"], "size_bytes": 1500}})
    code, out, _ = run_cli("models", "list", "--json")
    assert code == 0
    assert json.loads(out) == list_models()
    code, out, _ = run_cli("models", "list")
    assert code == 0
    [line] = [line for line in out.splitlines() if "fir-test" in line]
    assert [cell.strip() for cell in line.split("│")[1:6]] == ["fir-test", "apply", "tone", "1.5 kB", "remote"]


def test_cli_pull_prints_path(env: Env, checkpoints):
    env.write_index({"fir-test": {"repo_id": REPO, "filename": FILE, "sha256": _sha(checkpoints["main"])}})
    code, out, _ = run_cli("models", "pull", "fir-test")
    assert code == 0
    commit = env.hub.commit(REPO)
    assert out == f"{env.repo_cache / 'snapshots' / commit / FILE}\n"
    code, _, err = run_cli("models", "pull", "nothing")
    assert code == 2
    assert err.startswith("unknown model 'nothing': not a file and not in the registry; known models: ")


def test_cli_info(env: Env, checkpoints):
    env.write_index(
        {"fir-knob": {"repo_id": REPO, "filename": "knob/fir-knob.safetensors", "license": "CC-BY-4.0"}}
    )
    code, out, _ = run_cli("models", "info", "fir-knob")
    assert code == 0, out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines[0] == "fir-knob: An 8-tap FIR with a tone knob"
    assert "task apply" in lines
    assert "architecture fir" in lines
    assert "sample rate 44100 Hz" in lines
    assert (
        "geometry channels 1, left context 7, right context 0, latency 0, chunk 65536, multiple 1, "
        "overlap 0 (samples)" in lines
    )
    assert "parameters 16" in lines  # 8 base taps + 1 knob x 8 taps
    assert f"source {REPO}/knob/fir-knob.safetensors@main" in lines
    assert "license CC-BY-4.0" in lines
    assert "│ tone │ -12..12 dB │ 0 dB (0.50) │ spectral tilt │" in lines
    assert "steps 1200" in lines and "loss 0.0125" in lines and "data unit test" in lines

    code, out, _ = run_cli("models", "info", "--json", f"hf://{REPO}/knob/fir-knob.safetensors")
    card = json.loads(out)
    assert card["metadata"] == read_header(card["path"]).meta
    assert (card["num_parameters"], card["size_bytes"], card["registry"]) == (16, len(checkpoints["knob"]), None)

    local = env.tmp / "plain.safetensors"
    local.write_bytes(checkpoints["main"])
    code, out, _ = run_cli("models", "info", "--json", str(local))
    card = json.loads(out)
    assert (card["path"], card["num_parameters"], card["metadata"]["model"]["taps"]) == (str(local), 8, 8)

    code, _, err = run_cli("models", "info", "missing.safetensors")
    assert (code, err) == (2, "missing.safetensors: no such model file")
