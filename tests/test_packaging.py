"""environment.yml and pyproject.toml must describe the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(pip_block) == sorted(declared)
    assert {_name(r) for r in pip_block} == {_name(r) for r in declared}
    assert "python=3.11" in env["dependencies"]


def test_required_packages_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    assert {"jupyterlab", "papermill", "pandas", "sqlalchemy", "pymysql", "matplotlib", "pytest", "nbval"} <= names
    assert project["scripts"]["rca"] == "rca_toolkit.cli:main"
