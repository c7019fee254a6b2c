"""NHS numbers: ten digits whose last is the modulus 11 check digit of the first nine.

The one implementation the API, the opt-out import and the subject-access report share, so a
mistyped number is refused everywhere rather than matching nobody.
"""

from __future__ import annotations

_WEIGHTS = range(10, 1, -1)


def nhs_number_valid(digits: str) -> bool:
    """True for ten ASCII digits that pass the modulus 11 check (NHS Data Dictionary)."""
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum(int(d) * weight for d, weight in zip(digits[:9], _WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])
