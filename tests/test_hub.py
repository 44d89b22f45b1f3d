"""Bundles on the Hugging Face Hub, offline: ``push`` and ``hf:ORG/NAME`` bundles run their real code paths
against a stubbed ``huggingface_hub.HfApi`` / ``snapshot_download`` that keep the "Hub" in a local folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub
import pytest
import yaml
from huggingface_hub import ModelCard
from typer.testing import CliRunner

from routerforge import hub
from routerforge.cli import app
from routerforge.errors import RouterforgeError
from routerforge.serving.config import load_router_config
from routerforge.serving.service import RouterService


class FakeHub:
    """The Hub as a folder: ``create_commit`` writes each operation's file under ``root/ORG/NAME``."""

    def __init__(self, root: Path):
        self.root, self.repos, self.commits, self.downloads = root, {}, [], []

    def api(self, token=None):
        fake = self

        class FakeApi:
            def create_repo(self, repo_id, *, repo_type=None, private=None, exist_ok=False, **_):
                assert exist_ok and repo_type == "model"
                fake.repos[repo_id] = {"private": private}
                return f"https://huggingface.co/{repo_id}"

            def create_commit(self, repo_id, operations, *, commit_message, repo_type=None, revision=None, **_):
                assert repo_id in fake.repos, "the repository is created first"
                target = fake.root / repo_id
                for op in operations:
                    dest = target / op.path_in_repo
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    source = op.path_or_fileobj
                    dest.write_bytes(source if isinstance(source, bytes) else Path(source).read_bytes())
                fake.commits.append({"repo_id": repo_id, "message": commit_message, "revision": revision,
                                     "files": sorted(op.path_in_repo for op in operations)})  # fmt: skip
                return huggingface_hub.CommitInfo(
                    commit_url=f"https://huggingface.co/{repo_id}/commit/abc123",
                    commit_message=commit_message,
                    commit_description="",
                    oid="abc123",
                )

        return FakeApi()

    def snapshot_download(self, repo_id, *, revision=None, repo_type=None, **_):
        self.downloads.append((repo_id, revision))
        if not (self.root / repo_id).is_dir():
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        return str(self.root / repo_id)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", fake.api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    return fake


@pytest.fixture
def exported(tiny_bundle, tmp_path) -> Path:
    """A copy of the tiny bundle with an (unread) ONNX file and a training log beside it."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "model.onnx").write_bytes(b"not read by these tests")
    (bundle / "logs").mkdir(exist_ok=True)
    (bundle / "logs" / "events.out").write_text("training log")
    return bundle


def router_yaml(directory: Path, bundle: str | None = None) -> Path:
    config = {
        "backends": [{"name": "b", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}],
        "default_model": "m",
        **({"bundle": bundle} if bundle else {}),
    }
    path = directory / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_push_uploads_the_bundle_and_a_card_with_hub_metadata_in_one_commit(fake_hub, exported):
    url = hub.push(exported, "acme/router-tiny", private=True)
    assert url == "https://huggingface.co/acme/router-tiny/commit/abc123"
    assert fake_hub.repos == {"acme/router-tiny": {"private": True}}
    [commit] = fake_hub.commits
    assert "README.md" in commit["files"] and "routerforge.json" in commit["files"] and "model.onnx" in commit["files"]
    assert not any(f.startswith("logs/") for f in commit["files"])  # training byproducts stay home
    assert "category" in commit["message"]
    card = ModelCard.load(fake_hub.root / "acme/router-tiny" / "README.md")
    metadata = card.data.to_dict()
    assert metadata["library_name"] == "routerforge" and "routerforge" in metadata["tags"]  # what the Hub indexes
    assert "acme/router-tiny" in card.text  # the card is named after the repository


def test_push_uses_the_bundles_own_card_when_there_is_one(fake_hub, exported):
    card = ModelCard("---\nlicense: apache-2.0\nbase_model: prajjwal1/bert-tiny\n---\n# the exported card\n")
    (exported / "README.md").write_text(str(card))
    hub.push(exported, "acme/router-tiny")
    pushed = ModelCard.load(fake_hub.root / "acme/router-tiny" / "README.md")
    assert pushed.data.license == "apache-2.0" and "the exported card" in pushed.text


def test_push_refuses_what_could_not_be_served_or_named(fake_hub, exported, tmp_path):
    (exported / "model.onnx").unlink()
    with pytest.raises(RouterforgeError, match="no ONNX export"):
        hub.push(exported, "acme/router-tiny")
    for bad in ("router-tiny", "acme/../x", "acme/router tiny", "https://huggingface.co/acme/x"):
        with pytest.raises(RouterforgeError, match="not a Hub model id"):
            hub.push(exported, bad)
    with pytest.raises(RouterforgeError, match="not a routerforge model directory"):
        hub.push(tmp_path, "acme/x")
    assert fake_hub.commits == [] and fake_hub.repos == {}


def test_an_hf_bundle_is_downloaded_and_served(fake_hub, exported, tmp_path):
    hub.push(exported, "acme/router-tiny")
    service = RouterService.load("hf:acme/router-tiny@v2", router_yaml(tmp_path), backend="torch")
    assert fake_hub.downloads == [("acme/router-tiny", "v2")]
    assert service.bundle_path == fake_hub.root / "acme/router-tiny"
    assert set(service.router.heads) == {"category", "pii", "jailbreak", "intent"}
    [signals] = service.router.classify_batch(["What is the integral of x^2?"])
    assert signals.category is not None and signals.jailbreak is not None


def test_a_config_naming_an_hf_bundle_downloads_it_again_on_reload(fake_hub, exported, tmp_path):
    hub.push(exported, "acme/router-tiny")
    path = router_yaml(tmp_path, bundle="hf:acme/router-tiny")
    assert load_router_config(path).bundle == "hf:acme/router-tiny"  # not made relative to the config file
    service = RouterService.load(None, path, backend="torch")
    service.reload()
    assert fake_hub.downloads == [("acme/router-tiny", None), ("acme/router-tiny", None)]


def test_an_hf_bundle_missing_offline_is_a_clear_error(fake_hub, tmp_path):
    with pytest.raises(RouterforgeError, match="not in the local Hub cache") as info:
        RouterService.load("hf:acme/never-pushed", router_yaml(tmp_path), backend="torch")
    assert "HF_HUB_OFFLINE" in str(info.value.hint)
    assert hub.resolve_bundle(tmp_path) == tmp_path  # a directory stays a directory, nothing downloaded
    assert fake_hub.downloads == [("acme/never-pushed", None)]


def test_cli_push(fake_hub, exported):
    result = CliRunner().invoke(app, ["push", str(exported), "acme/router-cli", "--message", "first"])
    assert result.exit_code == 0, result.output
    assert fake_hub.commits[-1]["message"] == "first" and "acme/router-cli/commit/abc123" in result.output
    refused = CliRunner().invoke(app, ["push", str(exported), "not-a-repo"])
    assert refused.exit_code != 0 and "not a Hub model id" in refused.output
