"""requirements.txt holds what the service runs on, whole; requirements-dev.txt the tests' and tools' extra."""

from __future__ import annotations

import re
from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
DEV_TOOLS = {"pytest", "pytest-django", "pytest-timeout", "hypothesis", "ruff", "schemathesis", "playwright"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(filename: str) -> dict[str, Requirement]:
    """The file's `name==version` lines by canonical name, in order."""
    lines = (ROOT / filename).read_text().splitlines()
    requirements = [Requirement(line) for line in lines if line and not line.startswith(("#", "-r"))]
    return {canonical(requirement.name): requirement for requirement in requirements}


def direct_runtime_requirements() -> list[Requirement]:
    """The lines between `# Runtime` and `# Transitive` in requirements.txt."""
    text = (ROOT / "requirements.txt").read_text()
    section = text.split("# Runtime\n", 1)[1].split("# Transitive\n", 1)[0]
    return [Requirement(line) for line in section.splitlines() if line]


def installed_closure(requirements: list[Requirement]) -> set[str]:
    """Canonical names of `requirements` and all they pull in, as the installed packages declare it."""
    found: set[str] = set()
    pending = [(requirement.name, set(requirement.extras)) for requirement in requirements]
    while pending:
        name, extras = pending.pop()
        found.add(canonical(name))
        for line in distribution(name).requires or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in extras or {""}]
            wanted = requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments)
            if wanted and canonical(requirement.name) not in found:
                pending.append((requirement.name, set(requirement.extras)))
    return found


def test_requirements_txt_pins_exactly_what_the_runtime_packages_pull_in():
    assert set(pinned("requirements.txt")) == installed_closure(direct_runtime_requirements())


def test_every_requirement_is_pinned_to_one_version():
    for filename in ("requirements.txt", "requirements-dev.txt"):
        for requirement in pinned(filename).values():
            assert str(requirement.specifier).startswith("=="), f"{filename}: {requirement} is not pinned"


def test_the_dev_file_adds_the_test_tools_on_top_of_the_runtime_and_repeats_none_of_it():
    lines = [line for line in (ROOT / "requirements-dev.txt").read_text().splitlines() if not line.startswith("#")]
    runtime, dev = pinned("requirements.txt"), pinned("requirements-dev.txt")

    assert lines[0] == "-r requirements.txt"
    assert set(dev) >= DEV_TOOLS
    assert not set(runtime) & set(dev)
    assert set(dev) <= installed_closure([*runtime.values(), *dev.values()])


def test_the_image_and_scripts_run_install_the_runtime_only_and_scripts_test_both():
    dockerfile = (ROOT / "Dockerfile").read_text()
    run = (ROOT / "scripts" / "run").read_text()
    test = (ROOT / "scripts" / "test").read_text()

    assert re.findall(r"-r (\S+)", dockerfile) == ["requirements.txt"]
    assert re.findall(r"^ensure_venv (.*?)(?: 9>&-)?$", run, re.MULTILINE) == ["requirements.txt"]
    assert re.findall(r"^ensure_venv (.*)$", test, re.MULTILINE) == ["requirements.txt requirements-dev.txt"]
