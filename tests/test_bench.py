"""Every benchmark script starts the way the docs run it: ``python bench/<name>.py``.

bench/routing.py shares its name with the routing package, and Python puts
the script's folder first on the path: each script must put the project root
ahead of it, or its (often deferred) ``import routing`` would import the
benchmark instead of the package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))

# As ``python bench/x.py`` sets things up, then the script's top level, then what its functions import later.
PROBE = """
import runpy, sys
sys.path[0] = {bench!r}
runpy.run_path({script!r}, run_name="bench_probe")
import routing, routing.classifier, hotline, cases
print(routing.__file__)
"""


def test_the_benchmarks_the_issues_name_exist():
    assert {"routing.py", "intake.py", "sweep.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_each_benchmark_imports_the_routing_package_not_itself(script, tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE.format(bench=str(BENCH), script=str(script))],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(done.stdout.strip()) == ROOT / "routing" / "__init__.py"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_each_benchmark_explains_itself(script, tmp_path):
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()
