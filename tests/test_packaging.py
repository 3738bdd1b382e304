"""`sagas demo` works from a plain wheel install, outside the repository; the wheel builds
without warnings; the development environment installs from the checked-in constraints."""

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_the_demo_definition_and_runs_the_demo_outside_the_repo(
    tmp_path: Path,
) -> None:
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    # -v shows the build backend's output: the place setuptools warns about pyproject.toml.
    assert "DeprecationWarning" not in build.stdout + build.stderr
    (wheel,) = wheels.glob("sagas_engine-*.whl")
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("sagas/demo/order_fulfillment.yaml").decode()
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        assert "License-Expression: MIT" in archive.read(metadata).decode().splitlines()
        names = set(archive.namelist())
        archive.extractall(installed)
    # One copy in the repository: the packaged file is the definitions/ file itself.
    assert shipped == (ROOT / "definitions" / "order_fulfillment.yaml").read_text()
    assert "sagas/store/migrations/versions/0001_initial.py" in names
    assert "sagas/py.typed" in names

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", "from sagas.cli import main; main()", "demo", "--orders", "30"],
        cwd=outside,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "30 orders in" in result.stdout
    assert (outside / "sagas-demo.db").exists()


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def test_the_license_is_an_spdx_expression() -> None:
    project = _pyproject()
    assert project["project"]["license"] == "MIT"
    assert "setuptools>=77" in project["build-system"]["requires"]


def test_every_dependency_is_pinned_in_the_constraints_within_its_bounds() -> None:
    """constraints.txt was regenerated (`make lock`) after the last dependency change."""
    project = _pyproject()["project"]
    wanted = [*project["dependencies"]]
    for extra in ("test", "postgres", "bench", "otel"):
        wanted += project["optional-dependencies"][extra]
    pins = _pins()
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in constraints.txt: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside {line!r}: run `make lock`"
        )


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_environment_is_installed_from_the_constraints_and_again_when_they_change(
    tmp_path: Path,
) -> None:
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    stamp = tmp_path / "venv" / ".installed"
    stamp.parent.mkdir()
    stamp.touch()
    for name in ("pyproject.toml", "constraints.txt"):
        os.utime(tmp_path / name, (1_000_000_000, 1_000_000_000))  # older than the stamp

    def plan() -> str:
        make = ["make", "-n", "VENV=venv", "venv/.installed"]
        return subprocess.run(make, cwd=tmp_path, capture_output=True, text=True).stdout

    assert "pip install" not in plan()
    (tmp_path / "constraints.txt").touch()  # newer than the stamp: a re-lock
    install = [line for line in plan().splitlines() if "pip install" in line and "-e" in line]
    expected = 'pip install --quiet --constraint constraints.txt -e ".[test,postgres,bench,otel]"'
    assert install == [f"venv/bin/{expected}"]
