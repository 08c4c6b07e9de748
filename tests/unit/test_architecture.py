"""Architecture rules that code review would otherwise have to catch."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from xesync import events

PACKAGE = Path(__file__).resolve().parents[2] / "xesync"


def imported_modules(path: Path, *, top_level_only: bool) -> set[str]:
    return modules_imported_by(
        path.read_text(encoding="utf-8"), _module_name(path), top_level_only=top_level_only
    )


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_imported_by(source: str, module: str, *, top_level_only: bool = False) -> set[str]:
    """Every module ``source`` imports, with each ``from X import name`` also counted as ``X.name``.

    ``from xesync import lab`` imports the module ``xesync.lab`` although its ``module`` is
    ``xesync``; relative imports are resolved against ``module`` (a package's ``__init__`` is the
    package itself).
    """
    tree = ast.parse(source)
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + 1]
                base = ".".join([*anchor[:-1], base] if base else anchor[:-1])
            if base:
                found.add(base)
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return found


def imports_the_lab(modules: set[str]) -> bool:
    return any(m == "xesync.lab" or m.startswith("xesync.lab.") for m in modules)


def test_core_never_imports_the_lab():
    """No module outside xesync/lab imports the lab, except the CLI inside its lab command."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "lab":
            continue
        top_level_only = rel.as_posix() == "cli.py"
        if imports_the_lab(imported_modules(path, top_level_only=top_level_only)):
            offenders.append(rel.as_posix())
    assert offenders == []


@pytest.mark.parametrize(
    "snippet",
    [
        "from xesync import lab",
        "from xesync import events, lab as the_lab",
        "import xesync.lab as x",
        "import xesync.lab.runtime",
        "from xesync.lab.ldif import read_ldif",
        "from . import lab",
        "from .lab import Lab",
        "def f():\n    from xesync import lab\n",
    ],
)
def test_lab_import_rule_bites(snippet):
    """Each way of importing the lab, top level or inside a function, is caught by the rule."""
    assert imports_the_lab(modules_imported_by(snippet, "xesync.engine"))


@pytest.mark.parametrize(
    "snippet", ["from xesync import events", "import xesync.labels", "from xesync.laboratory import x"]
)
def test_lab_import_rule_spares_other_modules(snippet):
    """Modules whose names merely start with 'lab' are not the lab."""
    assert not imports_the_lab(modules_imported_by(snippet, "xesync.engine"))


def mentions_ldif_urls(source: str) -> bool:
    return "ldif://" in source.lower()


def test_core_never_mentions_ldif_urls():
    """ldif:// directory URLs are the lab's business: no module outside xesync/lab mentions them."""
    offenders = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "lab"
        and mentions_ldif_urls(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    assert mentions_ldif_urls('url = "LDIF:///srv/lab.ldif"')


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


LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "msg", "fatal"}
EVENT_NAMES = {k for k in vars(events) if k.isupper()}


def log_call_offenders(source: str) -> list[int]:
    """Lines of calls ``<anything>.<log method>(…)`` whose event is not ``events.<CONSTANT>``.

    The receiver's name does not matter (``log``, ``self._log``, ``structlog.get_logger()``,
    ``logger``): a call to one of the log methods must pass an ``events`` constant first.
    """
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in LOG_METHODS:
            continue
        first = (
            node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "event"), None)
        )
        ok = (
            isinstance(first, ast.Attribute)
            and isinstance(first.value, ast.Name)
            and first.value.id == "events"
            and first.attr in EVENT_NAMES
        )
        if not ok:
            lines.append(node.lineno)
    return lines


def test_log_events_come_from_the_vocabulary():
    """Every structured log call, on any logger, names its event with a constant from xesync.events."""
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in PACKAGE.rglob("*.py")
        for line in log_call_offenders(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "snippet",
    [
        'log.info("booking.created", room=room)',
        'self._log.warning("ldap.user_not_found")',
        'structlog.get_logger().error(f"failed {x}")',
        "audit_logger.info(EVENT)",
        "log.debug(events.NOT_AN_EVENT)",
        "log.info(other.BOOKING_CREATED)",
        "log.info()",
    ],
)
def test_log_event_rule_bites(snippet):
    """A literal, an f-string, a bare name, an unknown constant or no event is caught on any logger."""
    assert log_call_offenders(snippet) == [1]


def test_log_event_rule_accepts_constants():
    """events.<CONSTANT> passes, whatever the logger is called."""
    assert (
        log_call_offenders("self._log.info(events.LAB_STARTED, x=1)\nlogger.error(events.LAB_STOPPED)") == []
    )


def test_event_names_are_dotted_past_tense_snake_case():
    """Event names are `<subject>.<past_verb>` in lower snake case, each defined once."""
    names = {k: v for k, v in vars(events).items() if k.isupper()}
    assert len(set(names.values())) == len(names)
    # Irregular participles and the one progressive STYLE.md §6 names are spelled out.
    irregular = {"daemon.stopping", "ews.sync_state_reset", "cms.owner_set"}
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
