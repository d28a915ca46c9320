"""Validation of client input (HTTP bodies, room messages) into a coded error."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from live.errors import InvalidInput, Unprocessable

ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_json(model: type[ModelT], raw: bytes | str) -> ModelT:
    """Parse and validate JSON text in one step (pydantic's JSON mode).

    Malformed JSON -> ``InvalidInput("invalid_json")``; a schema violation ->
    ``Unprocessable("invalid_input")`` naming the first bad field, with all of them in
    ``details.fields``.
    """
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise InvalidInput("invalid_json", "the body is not valid JSON") from exc
        raise invalid_input(exc) from exc


def validate(model: type[ModelT], data: object) -> ModelT:
    """Validate already-parsed JSON (a room message parsed once for every check)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc) from exc


def invalid_input(exc: ValidationError) -> Unprocessable:
    fields = [
        {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    first = fields[0]
    where = f"{first['field']}: " if first["field"] else ""
    return Unprocessable("invalid_input", f"{where}{first['problem']}", fields=fields)
