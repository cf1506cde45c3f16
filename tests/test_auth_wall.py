"""The secrecy wall (ARCHITECTURE.md): the auth service shares no code path, id, sequence or clock
order with the scanner's store and log."""

from __future__ import annotations

import ast
from pathlib import Path

from firmware.auth.store import DB_FILE, LOG_FILE

AUTH = Path(__file__).resolve().parents[1] / "firmware" / "auth"


def test_no_auth_module_imports_the_scanner_service() -> None:
    for path in AUTH.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("firmware.scanner") for n in names), path.name


def test_auth_files_have_their_own_names_beside_the_scanners() -> None:
    assert DB_FILE != "scanner.sqlite" and LOG_FILE.startswith("auth-")
