"""Build each Lambda function's deployment package as a deterministic zip.

A package holds, at the zip root: the function's folder (`lambda/<function>/*`), the
shared package (`lambda/shared` as `shared/`), and the runtime requirements
(`requirements.txt`) installed for the Lambda runtime: CPython 3.12 on manylinux2014
x86_64, wheels only. The same sources give the same bytes: entries are sorted, every
timestamp is 1980-01-01, every file is mode 0644, and `__pycache__`/`*.pyc` are left out.
So the zip's SHA-256 names it in S3, and an unchanged function is an unchanged deploy.

Every requirement must be an exact pin (`name==version`), dependencies included: the
packages carry their own boto3/botocore, the versions the tests ran with, instead of the SDK
the Lambda runtime happens to ship. Requirements are installed once per requirements.txt
content into `build/requirements/` and reused, so repeated builds need no network.

Usage: python scripts/package_lambda.py [--output-dir DIR] FUNCTION...
prints one line per function: `FUNCTION PATH SHA256_HEX CODE_SHA256` where CODE_SHA256
is what Lambda reports as `CodeSha256` (base64 of the digest).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAMBDA_DIR = ROOT / "lambda"
SHARED_PACKAGE = "shared"
DEFAULT_REQUIREMENTS = ROOT / "requirements.txt"
DEFAULT_CACHE_DIR = ROOT / "build" / "requirements"
DEFAULT_OUTPUT_DIR = ROOT / "build" / "lambda"

# The Lambda runtime the packages are built for (cfn/lambda-stack.yaml: python3.12, x86_64).
PIP_TARGET_ARGS = (
    "--platform=manylinux2014_x86_64",
    "--python-version=3.12",
    "--implementation=cp",
    "--only-binary=:all:",
)
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
FILE_MODE = 0o100644  # regular file, rw-r--r--
EXCLUDED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# pip puts console scripts here; nothing in a Lambda package runs them.
EXCLUDED_REQUIREMENT_DIRS = frozenset({"bin"})


class PackagingError(Exception):
    """A package cannot be built (unknown function, name clash, pip failure)."""


@dataclass(frozen=True)
class Package:
    function: str
    path: Path
    sha256: str  # hex digest of the zip
    code_sha256: str  # base64 digest, as Lambda reports CodeSha256


def _files_under(base: Path, excluded_top: frozenset[str] = frozenset()) -> Iterator[Path]:
    """Every regular file below `base` (relative), skipping caches and compiled files."""
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = Path(dirpath).relative_to(base)
        dirnames[:] = [
            d
            for d in dirnames
            if d not in EXCLUDED_DIRS and not (rel_dir == Path(".") and d in excluded_top)
        ]
        for name in filenames:
            if not name.endswith(EXCLUDED_SUFFIXES):
                yield rel_dir / name


# `name==version` and nothing else (no ranges, extras, markers or options): one build, one set.
_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9.+!-]*)")


def canonical_name(name: str) -> str:
    """A distribution name as the packaging tools compare it (PEP 503: `Typing_Extensions`
    and `typing-extensions` are one name)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(requirements: Path = DEFAULT_REQUIREMENTS) -> dict[str, str]:
    """Canonical distribution name -> pinned version, read from `requirements`.

    Comments and blank lines are ignored. Raises PackagingError naming the first line that
    is not an exact pin (an unpinned package would make the build depend on the day it ran).
    """
    pins: dict[str, str] = {}
    for number, line in enumerate(requirements.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = _PIN.fullmatch(text)
        if match is None:
            raise PackagingError(
                f"{requirements.name}:{number}: {text!r} is not an exact pin (name==version)"
            )
        pins[canonical_name(match[1])] = match[2]
    return pins


def requirements_cache_key(requirements_content: bytes) -> str:
    """The cache folder name for one requirements file content and target platform."""
    digest = hashlib.sha256(requirements_content + " ".join(PIP_TARGET_ARGS).encode())
    return digest.hexdigest()[:16]


def requirements_dir(
    requirements: Path = DEFAULT_REQUIREMENTS,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    python: str = sys.executable,
) -> Path | None:
    """The installed runtime requirements, built once per requirements content and cached.

    Returns None when `requirements` names no package. Raises PackagingError when a
    requirement is not an exact pin (see pinned_requirements) or pip fails.
    """
    content = requirements.read_bytes()
    if not pinned_requirements(requirements):
        return None
    key = requirements_cache_key(content)
    target = cache_dir / key
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir))
    pip_install = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    target_options = ["--no-compile", *PIP_TARGET_ARGS, f"--target={staging}"]
    command = [*pip_install, *target_options, f"--requirement={requirements}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise PackagingError(
            f"pip could not install {requirements.name} for python3.12 manylinux2014_x86_64: "
            + (detail[-1] if detail else f"exit code {result.returncode}")
        )
    try:
        staging.rename(target)  # atomic: a concurrent build either wins or finds it done
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_dir():
            raise
    return target


def package_entries(
    function: str, deps: Path | None, lambda_dir: Path = LAMBDA_DIR
) -> dict[str, Path]:
    """Zip entry name -> source file for `function` (a folder of `lambda_dir`).

    Raises PackagingError for an unknown function or when two sources give one entry name.
    """
    function_dir = lambda_dir / function
    if function == SHARED_PACKAGE or not (function_dir / "index.py").is_file():
        raise PackagingError(f"no function {function!r}: {function_dir}/index.py does not exist")
    sources: list[tuple[str, Path]] = []
    if deps is not None:
        sources += [
            (rel.as_posix(), deps / rel) for rel in _files_under(deps, EXCLUDED_REQUIREMENT_DIRS)
        ]
    shared_dir = lambda_dir / SHARED_PACKAGE
    sources += [
        (f"{SHARED_PACKAGE}/{rel.as_posix()}", shared_dir / rel) for rel in _files_under(shared_dir)
    ]
    sources += [(rel.as_posix(), function_dir / rel) for rel in _files_under(function_dir)]
    entries: dict[str, Path] = {}
    for name, path in sources:
        if name in entries:
            raise PackagingError(f"{function}: {name} comes from both {entries[name]} and {path}")
        entries[name] = path
    return entries


def write_zip(entries: dict[str, Path], destination: Path) -> None:
    """Write `entries` to `destination` deterministically (sorted, fixed time and mode)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    # A unique partial file, renamed into place: concurrent builds never see half a zip.
    fd, partial_name = tempfile.mkstemp(prefix=f".{destination.name}-", dir=destination.parent)
    partial = Path(partial_name)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as archive:
            for name in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
                info.create_system = 3  # Unix, so external_attr carries the mode
                info.external_attr = FILE_MODE << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, entries[name].read_bytes(), compresslevel=9)
        partial.chmod(0o644)
        partial.replace(destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def build_package(
    function: str,
    output_dir: Path = DEFAULT_OUTPUT_DIR,
    deps: Path | None = None,
    lambda_dir: Path = LAMBDA_DIR,
) -> Package:
    """Build `output_dir/<function>.zip` from the sources and `deps` (installed requirements).

    Raises PackagingError (see package_entries) or OSError.
    """
    destination = output_dir / f"{function}.zip"
    write_zip(package_entries(function, deps, lambda_dir), destination)
    digest = hashlib.sha256(destination.read_bytes()).digest()
    return Package(
        function=function,
        path=destination,
        sha256=digest.hex(),
        code_sha256=base64.b64encode(digest).decode(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "functions",
        nargs="+",
        metavar="FUNCTION",
        help="folder name under lambda/, e.g. data-management-handler",
    )
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR)
    parser.add_argument("--requirements", type=Path, default=DEFAULT_REQUIREMENTS)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv)
    try:
        deps = requirements_dir(args.requirements, args.cache_dir)
        for function in args.functions:
            package = build_package(function, args.output_dir, deps)
            print(package.function, package.path, package.sha256, package.code_sha256)
    except (PackagingError, OSError) as exc:
        print(f"package_lambda: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
