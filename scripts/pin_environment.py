"""Pin every package of the resolved environment in ``pyproject.toml``.

A fresh install months from now must resolve the same versions of every package, not only of
the direct dependencies, without a lock file (``uv.lock`` records registry addresses and is not
committed). This script writes the whole resolved set, development tools included, to
``[tool.uv] constraint-dependencies``, which ``uv`` applies to every resolution.

Run it after changing the dependencies in ``pyproject.toml``:

    uv run python scripts/pin_environment.py

It lifts the old constraints, lets ``uv lock`` resolve (keeping the versions of the local
``uv.lock`` where they still fit), and writes ``uv export``'s pins back between the markers.
"""

import re
import subprocess
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
BLOCK = re.compile(r"(# BEGIN pinned environment.*?\nconstraint-dependencies = \[\n)(.*?)(\]\n)",
                   re.DOTALL)


def write_constraints(text: str, pins: list[str]) -> str:
    """``text`` (pyproject.toml) with the pinned block holding ``pins``."""
    if not BLOCK.search(text):
        sys.exit("error: pyproject.toml has no '# BEGIN pinned environment' block")
    body = "".join(f'    "{pin}",\n' for pin in pins)
    return BLOCK.sub(lambda m: m.group(1) + body + m.group(3), text, count=1)


def resolved_pins() -> list[str]:
    """``name==version[ ; marker]`` of every package ``uv`` resolves for the project."""
    subprocess.run(["uv", "lock"], cwd=PYPROJECT.parent, check=True)
    exported = subprocess.run(
        ["uv", "export", "--no-hashes", "--no-emit-project", "--no-header", "--no-annotate",
         "--all-groups"],
        cwd=PYPROJECT.parent, check=True, capture_output=True, text=True,
    ).stdout
    return sorted((line.strip() for line in exported.splitlines() if "==" in line),
                  key=str.lower)


def main() -> None:
    """Lift the constraints, resolve, write the new pins."""
    original = PYPROJECT.read_text()
    PYPROJECT.write_text(write_constraints(original, []))
    try:
        pins = resolved_pins()
    except subprocess.CalledProcessError:
        PYPROJECT.write_text(original)
        raise
    PYPROJECT.write_text(write_constraints(original, pins))
    print(f"pinned {len(pins)} packages in {PYPROJECT}")


if __name__ == "__main__":
    main()
