"""The pinned environment: every installed package is pinned, at the installed version."""

import importlib.metadata
import importlib.util
import sysconfig
import tomllib
from pathlib import Path

from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def pinned() -> dict[str, str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = {}
    for line in config["tool"]["uv"]["constraint-dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def test_every_installed_package_is_pinned_at_its_installed_version():
    site_packages = Path(sysconfig.get_paths()["purelib"])
    installed = {canonicalize_name(d.metadata["Name"]): d.version
                 for d in importlib.metadata.distributions(path=[str(site_packages)])}
    installed.pop("fedlab")
    pins = pinned()
    unpinned = sorted(set(installed) - set(pins))
    assert not unpinned, f"run scripts/pin_environment.py: {unpinned} are not pinned"
    drifted = {name: (pins[name], version) for name, version in installed.items()
               if pins[name] != version}
    assert not drifted, f"installed versions differ from the pins: {drifted}"


def test_pin_script_rewrites_only_its_block():
    spec = importlib.util.spec_from_file_location("pin", REPO / "scripts" / "pin_environment.py")
    pin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pin)
    text = ("[tool.uv]\nx = 1\n# BEGIN pinned environment: note\nconstraint-dependencies = [\n"
            '    "old==1",\n]\n# END pinned environment\ny = 2\n')
    rewritten = pin.write_constraints(text, ["a==1.0", "b==2.0 ; sys_platform == 'win32'"])
    assert rewritten == text.replace('    "old==1",\n', '    "a==1.0",\n    "b==2.0 ; '
                                     "sys_platform == 'win32'\",\n")
    assert tomllib.loads(rewritten)["tool"]["uv"]["y"] == 2
