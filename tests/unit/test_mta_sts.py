"""MTA-STS policy files, TXT records and MX patterns (RFC 8461 sections 3.1, 3.2, 4.1)."""

from __future__ import annotations

import pytest

from adapters.mta_sts import MtaStsError, StsMode, mx_matches, parse_policy, parse_record

POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
    "max_age: 604800\r\n"
)


def test_a_policy_is_parsed_with_every_mx_pattern() -> None:
    policy = parse_policy(POLICY)
    assert policy.mode is StsMode.ENFORCE
    assert policy.mx == ("mail.example.com", "*.example.net")
    assert policy.max_age == 604800
    assert policy.allows("MAIL.example.com.")
    assert policy.allows("mx1.example.net")
    assert not policy.allows("mx1.example.org")


def test_only_enforce_forbids() -> None:
    testing = parse_policy(POLICY.replace("enforce", "testing"))
    assert testing.allows("mx1.example.org")
    none = parse_policy("version: STSv1\nmode: none\nmax_age: 0\n")  # no mx needed
    assert none.mx == ()
    assert none.allows("anything.example")


@pytest.mark.parametrize(
    "text",
    [
        POLICY.replace("STSv1", "STSv2"),
        POLICY.replace("enforce", "strict"),
        POLICY.replace("604800", "31557601"),  # over a year
        POLICY.replace("604800", "-1"),
        POLICY.replace("604800", "soon"),
        POLICY.replace("604800", "+604800"),  # 1*10DIGIT: no sign,
        POLICY.replace("604800", "604_800"),  # no underscores,
        POLICY.replace("604800", "604 800"),  # no inner spaces,
        POLICY.replace("604800", "\u0666\u0660\u0664"),  # no non-ASCII digits
        POLICY.replace("604800", "00000000604800"),  # and at most ten digits
        "version: STSv1\nmode: enforce\nmax_age: 86400\n",  # enforce without mx
        "version: STSv1\nmode enforce\n",  # no colon
        "<html>not a policy</html>",
    ],
)
def test_a_malformed_policy_is_refused(text: str) -> None:
    with pytest.raises(MtaStsError) as refused:
        parse_policy(text)
    assert refused.value.code == "mta_sts_policy_invalid"


def test_a_wildcard_stands_for_exactly_one_leftmost_label() -> None:
    patterns = ("*.example.com",)
    assert mx_matches("mx.example.com", patterns)
    assert not mx_matches("example.com", patterns)
    assert not mx_matches("a.b.example.com", patterns)
    assert not mx_matches("mx.example.com.evil.org", patterns)
    assert mx_matches("mail.example.com", ("mail.example.com",))
    assert not mx_matches("mail.example.com", ("ail.example.com",))


def test_exactly_one_sts_record_with_an_id_names_the_policy() -> None:
    assert parse_record(["v=STSv1; id=20261204T1;"]) == "20261204T1"
    assert parse_record(["v=spf1 -all", "v=STSv1; id=abc"]) == "abc"
    assert parse_record(["v=STSv1; id=a", "v=STSv1; id=b"]) is None  # two: none counts
    assert parse_record(["v=STSv1;"]) is None
    assert parse_record(["v=STSv1; id=not-alnum"]) is None
    assert parse_record([]) is None


def test_the_record_must_begin_with_exactly_the_version_and_a_separator() -> None:
    assert parse_record(["v=STSv1 ; id=abc"]) == "abc"  # sts-sep allows spaces
    assert parse_record(["v=STSv10; id=abc"]) is None
    assert parse_record(["v=STSv1x; id=abc"]) is None
    assert parse_record(["v=STSv1 id=abc"]) is None
    assert parse_record(["v=STSv10; id=a", "v=STSv1; id=b"]) == "b"  # not a second STS record
    assert parse_record(["v=STSv1; id=" + "a" * 33]) is None  # 1*32(ALPHA / DIGIT)
