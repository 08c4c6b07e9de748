"""Architecture rules that code review would otherwise have to catch."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from xesync import events

PACKAGE = Path(__file__).resolve().parents[2] / "xesync"


def imported_modules(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_core_never_imports_the_lab():
    """No module outside xesync/lab imports the lab, except the CLI inside its lab command."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "lab":
            continue
        top_level_only = rel.as_posix() == "cli.py"
        if any(m.startswith("xesync.lab") for m in imported_modules(path, top_level_only=top_level_only)):
            offenders.append(rel.as_posix())
    assert offenders == []


def test_no_stdlib_xml_parsers():
    """XML is parsed only through xesync.xmlsafe (no xml.etree, xml.dom, xml.sax; saxutils escapes only)."""
    offenders = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if any(
            m.startswith(("xml.etree", "xml.dom", "xml.sax", "xml.parsers")) and m != "xml.sax.saxutils"
            for m in imported_modules(path, top_level_only=False)
        )
    ]
    assert offenders == []


def test_no_print_and_no_utcnow():
    """Library code logs instead of printing and never uses naive utcnow()."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id == "print":
                    offenders.append(f"{path.name}:{node.lineno} print")
                if isinstance(func, ast.Attribute) and func.attr in {"utcnow", "utcfromtimestamp"}:
                    offenders.append(f"{path.name}:{node.lineno} {func.attr}")
    assert offenders == []


LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}


def test_log_events_come_from_the_vocabulary():
    """Every structured log call names its event with a constant from xesync.events."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"log", "logger"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")  # noqa: PERF401
    assert offenders == []


def test_event_names_are_dotted_past_tense_snake_case():
    """Event names are `<subject>.<past_verb>` in lower snake case, each defined once."""
    names = {k: v for k, v in vars(events).items() if k.isupper()}
    assert len(set(names.values())) == len(names)
    # Irregular participles and the one progressive STYLE.md §6 names are spelled out.
    irregular = {"daemon.stopping", "ews.sync_state_reset"}
    shape = re.compile(r"[a-z]+(_[a-z]+)*\.[a-z]+(_[a-z]+)*(ed|_found)")
    bad = [v for v in names.values() if v not in irregular and not shape.fullmatch(v)]
    assert bad == []


def test_lxml_parses_only_in_xmlsafe():
    """Only xesync/xmlsafe.py calls lxml's parsers, so every parse refuses DTDs and entities."""
    parsers = {"fromstring", "XML", "parse", "XMLParser", "iterparse", "XMLPullParser"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "xmlsafe.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in parsers
                and isinstance(node.value, ast.Name)
                and node.value.id == "etree"
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")  # noqa: PERF401
    assert offenders == []


def test_every_test_states_its_behaviour():
    """Every test function carries a docstring saying the behaviour it checks (STYLE.md §10)."""
    tests = PACKAGE.parent / "tests"
    missing = [
        f"{path.relative_to(tests)}:{node.lineno}"
        for path in tests.rglob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
        and not ast.get_docstring(node)
    ]
    assert missing == []
