"""`sagas demo` works from a plain wheel install, outside the repository."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_the_demo_definition_and_runs_the_demo_outside_the_repo(
    tmp_path: Path,
) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("sagas_engine-*.whl")
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("sagas/demo/order_fulfillment.yaml").decode()
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
