"""provenance(): the package version, and the commit of the git checkout that holds the package."""

import shutil
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from fmnist_lightning.training.callbacks.run_summary import RunSummary
from fmnist_lightning.training.checkpoint_io import provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(folder: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    done = subprocess.run(
        ["git", "-C", str(folder), *identity, *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package folder, repo/pkg, that provenance() takes for the package's own."""
    folder = tmp_path / "repo" / "pkg"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above
    monkeypatch.setattr("fmnist_lightning.training.checkpoint_io.PACKAGE_DIR", folder)
    provenance.cache_clear()  # it is read once per process
    yield folder
    provenance.cache_clear()  # the other tests see this checkout's


def test_outside_a_checkout_only_the_version_is_known(package):
    assert provenance() == {"version": version("fmnist-lightning"), "commit": None, "dirty": None}


def test_a_checkout_that_does_not_track_the_package_is_not_its_code(package):
    """A wheel installed into a virtual environment inside some other repository."""
    repo = package.parent
    (repo / "README.md").write_text("another project\n")
    git(repo, "init", "-q")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "another project")
    assert provenance()["commit"] is None


def test_a_checkout_gives_its_commit_and_whether_it_had_changes(package):
    repo = package.parent
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "the package")
    head = git(repo, "rev-parse", "HEAD")
    assert provenance() == {"version": version("fmnist-lightning"), "commit": head, "dirty": False}
    (package / "__init__.py").write_text("changed = True\n")
    provenance.cache_clear()
    assert provenance()["dirty"] is True


def test_a_run_records_the_code_it_started_with_not_the_tree_at_its_end(package, tmp_path):
    repo = package.parent
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "the package")
    summary = RunSummary(str(tmp_path / "run"))  # built as a run starts
    (package / "__init__.py").write_text("changed = True\n")  # an edit while it trains
    assert summary.provenance["dirty"] is False
    assert provenance()["dirty"] is False  # what its checkpoints record, too
