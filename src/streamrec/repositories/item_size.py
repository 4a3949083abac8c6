"""DynamoDB item sizes, as the DynamoDB Developer Guide counts them ("DynamoDB item sizes
and formats", CapacityUnitCalculations.html): the sum of attribute-name bytes and value
sizes; a string is its UTF-8 bytes, a number ~ 1 byte per two significant digits + 1
(leading and trailing zeros trimmed), a boolean/null 1 byte, a list/map 3 bytes + 1 byte
per element + elements. Used by the DynamoDB adapter (a count row over its budget or at the
item size limit) and by the bench (units).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

# DynamoDB's item size limit.
ITEM_LIMIT_BYTES = 400 * 1024


def number_size(text: str) -> int:
    """Bytes of a DynamoDB number value (without its name)."""
    if "e" in text or "E" in text:
        value = Decimal(text)
        if value == 0:
            return 2
        digits = len(value.normalize().as_tuple().digits)
    else:  # the usual case, by string: significant digits with leading/trailing zeros trimmed
        mantissa = text.lstrip("+-")
        if "." in mantissa:
            whole, fraction = mantissa.split(".", 1)
            fraction = fraction.rstrip("0")
            significant = (whole + fraction).lstrip("0") if fraction else whole.strip("0")
        else:
            significant = mantissa.strip("0")
        digits = len(significant)
        if digits == 0:
            return 2  # zero
    return (digits + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one typed attribute value (``{"S": ...}``, ``{"N": ...}``, ...)."""
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        return number_size(content)
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in content.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in content)
    if kind == "SS":
        return sum(len(s.encode()) for s in content)
    if kind == "NS":
        return sum(number_size(s) for s in content)
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, dict[str, Any]] | None) -> int:
    """Bytes of an item: attribute names plus value sizes (0 for no item)."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())
