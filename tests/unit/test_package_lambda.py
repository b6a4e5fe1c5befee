"""scripts/package_lambda.py: same sources, same bytes; the right files, nothing else."""

from __future__ import annotations

import importlib.metadata
import zipfile
from pathlib import Path

import boto3
import botocore
import pytest

from scripts.package_lambda import (
    FIXED_DATE_TIME,
    LAMBDA_DIR,
    PackagingError,
    build_package,
    pinned_requirements,
    requirements_cache_key,
    requirements_dir,
)


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """A lambda/ tree with one function, the shared package and some build debris."""
    root = tmp_path / "lambda"
    write(root / "fn" / "index.py", "def lambda_handler(event, context):\n    return {}\n")
    write(root / "fn" / "domain" / "logic.py", "X = 1\n")
    write(root / "fn" / "__pycache__" / "index.cpython-312.pyc", "compiled")
    write(root / "fn" / "domain" / "logic.pyc", "compiled")
    write(root / "shared" / "__init__.py")
    write(root / "shared" / "config.py", "NAME = 'x'\n")
    write(root / "shared" / "__pycache__" / "config.cpython-312.pyc", "compiled")
    return root


@pytest.fixture
def deps(tmp_path: Path) -> Path:
    """What `pip install --target` leaves: packages, metadata and console scripts."""
    root = tmp_path / "deps"
    write(root / "somelib" / "__init__.py", "VERSION = '1'\n")
    write(root / "somelib-1.0.dist-info" / "METADATA", "Name: somelib\n")
    write(root / "bin" / "somelib-cli", "#!/bin/sh\n")
    return root


def names_in(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def test_package_holds_the_function_the_shared_package_and_the_requirements(
    sources: Path, deps: Path, tmp_path: Path
) -> None:
    package = build_package("fn", tmp_path / "out", deps, lambda_dir=sources)

    assert names_in(package.path) == [
        "domain/logic.py",
        "index.py",
        "shared/__init__.py",
        "shared/config.py",
        "somelib-1.0.dist-info/METADATA",
        "somelib/__init__.py",
    ]


def test_same_sources_give_the_same_bytes(sources: Path, deps: Path, tmp_path: Path) -> None:
    first = build_package("fn", tmp_path / "a", deps, lambda_dir=sources)
    # Touch every source: new mtimes must not change the package.
    for path in sources.rglob("*.py"):
        path.write_text(path.read_text())
    second = build_package("fn", tmp_path / "b", deps, lambda_dir=sources)

    assert first.path.read_bytes() == second.path.read_bytes()
    assert (first.sha256, first.code_sha256) == (second.sha256, second.code_sha256)


def test_a_source_change_changes_the_digest(sources: Path, tmp_path: Path) -> None:
    before = build_package("fn", tmp_path / "a", lambda_dir=sources)
    write(sources / "fn" / "index.py", "def lambda_handler(event, context):\n    return {1: 1}\n")

    after = build_package("fn", tmp_path / "b", lambda_dir=sources)

    assert before.sha256 != after.sha256


def test_entries_have_fixed_time_and_mode(sources: Path, tmp_path: Path) -> None:
    package = build_package("fn", tmp_path, lambda_dir=sources)

    with zipfile.ZipFile(package.path) as archive:
        infos = archive.infolist()
    assert {info.date_time for info in infos} == {FIXED_DATE_TIME}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    assert {info.compress_type for info in infos} == {zipfile.ZIP_DEFLATED}


def test_a_name_clash_between_sources_is_refused(sources: Path, deps: Path, tmp_path: Path) -> None:
    write(deps / "index.py", "# a dependency shipping a top-level index module\n")

    with pytest.raises(PackagingError, match=r"index\.py comes from both"):
        build_package("fn", tmp_path, deps, lambda_dir=sources)


@pytest.mark.parametrize("function", ["missing", "shared"])
def test_only_function_folders_can_be_packaged(
    sources: Path, tmp_path: Path, function: str
) -> None:
    with pytest.raises(PackagingError, match="no function"):
        build_package(function, tmp_path, lambda_dir=sources)


@pytest.mark.parametrize("function", ["data-management-handler", "query-handler"])
def test_the_real_functions_package_with_index_and_shared(function: str, tmp_path: Path) -> None:
    package = build_package(function, tmp_path)
    names = names_in(package.path)

    assert "index.py" in names
    assert "shared/config.py" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert len({path.name for path in (LAMBDA_DIR / function).glob("*.py")} - set(names)) == 0


def test_requirements_without_packages_install_nothing(tmp_path: Path) -> None:
    requirements = write(tmp_path / "requirements.txt", "# runtime deps: none\n\n")

    assert requirements_dir(requirements, tmp_path / "cache", python="/nonexistent") is None


def test_installed_requirements_are_reused_without_pip(tmp_path: Path) -> None:
    requirements = write(tmp_path / "requirements.txt", "somelib==1.0\n")
    cache = tmp_path / "cache"
    installed = cache / requirements_cache_key(requirements.read_bytes())
    installed.mkdir(parents=True)

    assert requirements_dir(requirements, cache, python="/nonexistent") == installed


def test_a_failed_install_leaves_nothing_in_the_cache(tmp_path: Path) -> None:
    requirements = write(tmp_path / "requirements.txt", "somelib==1.0\n")
    cache = tmp_path / "cache"

    with pytest.raises(PackagingError, match="pip could not install"):
        requirements_dir(requirements, cache, python="/bin/false")

    assert list(cache.iterdir()) == []


def test_the_runtime_pins_are_what_the_tests_import() -> None:
    # The packages carry these versions (tests/functional/test_packaged_sdk.py): so tests and
    # production cannot run different SDKs.
    pins = pinned_requirements()

    assert (pins["boto3"], pins["botocore"]) == (boto3.__version__, botocore.__version__)
    assert {name: importlib.metadata.version(name) for name in pins} == pins


def test_pins_are_read_with_canonical_names(tmp_path: Path) -> None:
    requirements = write(
        tmp_path / "requirements.txt",
        "# runtime\nboto3==1.0.0  # the SDK\n\n"
        "Typing_Extensions==4.1\npython-dateutil==2.9.0.post0\n",
    )

    assert pinned_requirements(requirements) == {
        "boto3": "1.0.0",
        "typing-extensions": "4.1",
        "python-dateutil": "2.9.0.post0",
    }


@pytest.mark.parametrize(
    "requirement", ["boto3", "boto3>=1.40", "boto3[crt]==1.43.11", "-r other.txt", "boto3==1.*"]
)
def test_a_requirement_that_is_not_an_exact_pin_is_refused(
    tmp_path: Path, requirement: str
) -> None:
    requirements = write(tmp_path / "requirements.txt", f"six==1.17.0\n{requirement}\n")

    with pytest.raises(PackagingError, match=r"requirements\.txt:2: .* is not an exact pin"):
        requirements_dir(requirements, tmp_path / "cache", python="/nonexistent")
