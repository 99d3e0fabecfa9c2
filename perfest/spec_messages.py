"""How a pydantic validation error reads as one line (perfest.specs.first_error uses these):
the value shown short (a 400-digit number by its digit count), each kind of error said in
perfest's words ("must be a finite number", "must be at most … (larger is not physically
meaningful)"), an unknown field with the closest valid names."""

from __future__ import annotations

from typing import Any

#: The spec classes whose unknown fields get suggestions (perfest.specs).
SPEC_CLASSES = ("ModelConfig", "HardwareSpec", "Workload")


def shown(value: Any) -> str:
    """A value as a short one-line text (a 400-digit number is not printed in full)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"a {len(str(abs(value)))}-digit number"
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value) if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


#: An upper bound this large is a sanity bound, not a rule of the option, and says so.
SANITY_BOUND = 1000

#: pydantic error type → how to say it (ctx fields filled in), `{got}` the value given.
MESSAGES = {
    "int_type": "must be a whole number (got {got})",
    "int_parsing": "must be a whole number (got {got})",
    "int_from_float": "must be a whole number (got {got})",
    "float_type": "must be a finite number (got {got})",
    "float_parsing": "must be a finite number (got {got})",
    "finite_number": "must be a finite number (got {got})",
    "bool_type": "must be true or false (got {got})",
    "string_type": "must be text (got {got})",
    "greater_than": "must be greater than {gt} (got {got})",
    "greater_than_equal": "must be at least {ge} (got {got})",
    "less_than_equal": "must be at most {le:,} (got {got})",
    "missing": "required field is missing",
    "dict_type": "must be a mapping of fields (got {got})",
    "model_type": "must be a mapping of fields (got {got})",
}


def bound_note(kind: str, ctx: dict[str, Any]) -> str:
    """Why an upper bound exists, where it is only a sanity bound (the 4th ZeRO stage is not)."""
    le = ctx.get("le")
    if kind == "less_than_equal" and isinstance(le, (int, float)) and le >= SANITY_BOUND:
        return "; larger is not physically meaningful"
    return ""


def is_type_tag(part: Any) -> bool:
    """pydantic names the member of a union it tried ('int', 'float', …): not a field."""
    return isinstance(part, str) and part in ("int", "float", "str", "bool", "none")


def closest_field(model: str, field: str) -> str:
    """The closest names (as "; closest: …") to an unknown field of spec class `model`."""
    import difflib

    from perfest import specs

    cls = getattr(specs, model, None) if model in SPEC_CLASSES else None
    if cls is None:
        return ""
    close = difflib.get_close_matches(field, list(cls.model_fields), n=3, cutoff=0.6)
    return f"; closest: {', '.join(close)}" if close else ""
