"""docs/openapi.json is the document the routes derive, and it describes every route."""

from __future__ import annotations

import json
from pathlib import Path

from streamrec.cli import main
from streamrec.http_api import ROUTES
from streamrec.openapi import openapi_document, openapi_text

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_document_matches_the_routes():
    assert DOCUMENT.read_text(encoding="utf-8") == openapi_text(), (
        "docs/openapi.json is stale: run `streamrec openapi --output docs/openapi.json`"
    )


def test_every_route_is_documented_with_its_errors():
    paths = openapi_document()["paths"]
    documented = {
        f"{method.upper()} {path}" for path, operations in paths.items() for method in operations
    }
    assert documented == set(ROUTES)
    for route in ROUTES:
        method, path = route.split(" ", 1)
        operation = paths[path][method.lower()]
        if "{" in path or operation.get("parameters") or operation.get("requestBody"):
            assert "400" in operation["responses"], f"{route} does not document its 400 answer"


def _references(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        return found.union(*(_references(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_references(value) for value in node))
    return set()


def _operations(document):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_documents_its_success_answer_with_a_schema():
    document = openapi_document()
    schemas = document["components"]["schemas"]
    for route, operation in _operations(document):
        success = {code: answer for code, answer in operation["responses"].items() if code.startswith("2")}
        assert len(success) == 1, f"{route} documents {sorted(success) or 'no'} 2xx answers"
        [(code, answer)] = success.items()
        if code == "204":
            assert not answer.get("content"), f"{route}: a 204 has no body"
            continue
        schema = answer["content"]["application/json"]["schema"]
        assert schema["$ref"].removeprefix("#/components/schemas/") in schemas, route
        assert schemas[schema["$ref"].rsplit("/", 1)[-1]].get("properties"), route


def test_errors_are_documented_as_the_api_answers_them():
    """400 and 503 (and 413 and 415 where a JSON body is taken, 404 where an id must name
    something stored, 409 where a coupon's scope is full, 403 where a user is named) with
    the {"error", "message"} body; never Powertools' 422, which this API does not answer."""
    document = openapi_document()
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    assert set(document["components"]["schemas"]["ErrorResponse"]["required"]) == {"error", "message"}
    for route, operation in _operations(document):
        responses = operation["responses"]
        assert "422" not in responses, route
        expected = {"400", "503", "413", "415"} if "requestBody" in operation else {"400", "503"}
        if route == "GET /coupons/{coupon_id}":
            expected |= {"404"}
        if route == "PUT /coupons/{coupon_id}":
            expected |= {"409"}  # a full scope (COUPONS_PER_SCOPE)
        # A shopper's token names only its own user (JwtUserClaim).
        if route in (
            "GET /users/{user_id}/recommendations",
            "GET /users/{user_id}/cross-sell",
            "GET /users/{user_id}/coupons",
            "GET /users/{user_id}/profile",
            "POST /cross-sell",
        ):
            expected |= {"403"}
        if route == "GET /health":
            expected = set()
        errors = {code for code in responses if not code.startswith("2")}
        assert errors == expected, f"{route} documents {sorted(errors)}, expected {sorted(expected)}"
        for code in errors:
            assert responses[code]["content"]["application/json"]["schema"] == error, (route, code)
    schemas = document["components"]["schemas"]
    assert not {"HTTPValidationError", "ValidationError", "ResponseValidationError"} & set(schemas)
    references = _references(document)
    assert {ref.rsplit("/", 1)[-1] for ref in references} == set(schemas), "unused or missing schemas"


def test_check_mode_says_a_missing_file_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "openapi.json"
    assert main(["openapi", "--output", str(missing), "--check"]) == 1
    assert capsys.readouterr().out == (
        f"{missing} does not exist: run streamrec openapi --output {missing}\n"
    )
    assert not missing.exists()


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert main(["openapi", "--output", str(stale), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert main(["openapi", "--output", str(stale)]) == 0
    assert main(["openapi", "--output", str(stale), "--check"]) == 0
    assert json.loads(stale.read_text(encoding="utf-8"))["info"]["title"] == "streamrec"


def test_check_alone_checks_the_committed_document_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["openapi", "--check"]) == 0
    assert capsys.readouterr().out == f"{DOCUMENT} is up to date\n"
