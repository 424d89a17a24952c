"""The engine's contract with faust-streaming, aiokafka and mode: every private name it relies on
is there with the expected shape, and every upstream function it forked is the one it was forked
from. An upgrade that changes any of them fails here with a message naming it (see
``kpay_faust/engine/compat.py`` for the upgrade procedure)."""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kpay_faust.engine import compat

PACKAGE = Path(compat.__file__).resolve().parents[1]
LIBRARIES = ("faust", "aiokafka", "mode")


def resolve(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
        found = getattr(found, part)
    found = getattr(found, "kpay_original", found)  # what KPay replaced, not its replacement
    if isinstance(found, property):
        return found.fget
    return getattr(found, "fun", found)  # a mode ``Service.task``: the method it runs


def source_hash(obj: Any) -> str:
    return hashlib.sha256(textwrap.dedent(inspect.getsource(obj)).encode()).hexdigest()


def defines(owner: Any, name: str) -> bool:
    """Whether ``owner`` (a module or class) has ``name``, or one of its library classes assigns
    it to instances (``self.name = ...``)."""
    if hasattr(owner, name):
        return True
    if not inspect.isclass(owner):
        return False
    for klass in owner.__mro__:
        if klass.__module__.split(".")[0] in LIBRARIES:
            try:
                if f"self.{name} =" in inspect.getsource(klass) or f"self.{name}:" in (
                    inspect.getsource(klass)
                ):
                    return True
            except (OSError, TypeError):
                continue
    return False


@pytest.mark.parametrize("contact", compat.RELIED_ON, ids=lambda c: f"{c.owner}.{c.name}")
def test_every_private_name_the_engine_relies_on_is_there(contact: compat.Contact) -> None:
    owner = resolve(contact.owner)
    assert defines(owner, contact.name), (
        f"{contact.owner} no longer has {contact.name!r}, which KPay relies on: {contact.why}"
    )
    if contact.params is not None:
        params = tuple(inspect.signature(getattr(owner, contact.name)).parameters)
        assert params[1:] == contact.params, (
            f"{contact.owner}.{contact.name} now takes {params[1:]}, KPay calls it with "
            f"{contact.params} ({contact.why})"
        )


@pytest.mark.parametrize("fork", compat.FORKED, ids=lambda f: f.target)
def test_every_forked_function_is_unchanged_upstream(fork: compat.Fork) -> None:
    installed = source_hash(resolve(fork.target))
    assert installed == fork.sha256, (
        f"{fork.target} changed upstream (recorded {fork.sha256[:12] or 'nothing'}, installed "
        f"{installed[:12]}): re-read it against {fork.kpay}, then record sha256 {installed} "
        "in kpay_faust/engine/compat.py"
    )


@pytest.mark.parametrize("fork", compat.FORKED, ids=lambda f: f.kpay)
def test_every_fork_names_kpay_code_that_exists(fork: compat.Fork) -> None:
    resolve(fork.kpay.split(" ")[0])


def test_the_installed_versions_are_the_tested_ones() -> None:
    assert compat.installed_versions() == compat.TESTED
    assert compat.check_versions() == []


def test_a_version_outside_the_compatible_range_stops_the_worker(monkeypatch) -> None:
    found = {**compat.TESTED, "aiokafka": "0.15.0"}
    monkeypatch.setattr(compat, "installed_versions", lambda: found)
    with pytest.raises(RuntimeError, match=r"aiokafka 0\.15\.0 is outside ~=0\.14\.0"):
        compat.check_versions()


def test_an_untested_version_in_the_range_is_warned_about(monkeypatch) -> None:
    found = {**compat.TESTED, "faust-streaming": "0.15.9"}
    monkeypatch.setattr(compat, "installed_versions", lambda: found)
    (warning,) = compat.check_versions()
    assert warning.startswith("faust-streaming 0.15.9 is not the tested 0.15.3")


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            found += [
                f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_")
            ]
    return found


def test_only_compat_imports_private_names_from_the_libraries() -> None:
    """ruff's SLF rule catches ``obj._name``; an import of ``_name`` is caught here."""
    offenders = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "compat.py"
        for hit in _private_imports(path)
    ]
    assert offenders == []
