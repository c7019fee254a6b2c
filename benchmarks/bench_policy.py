"""Median time of decide + minimise for a ~4 KB record (target: under 150 µs). Prints figures."""

from __future__ import annotations

import json
import statistics
import time
from datetime import date

from agreements.decision import DecisionContext, DisclosureRequest, decide
from agreements.loader import default_catalog_dir, load_catalog
from agreements.minimise import minimise
from agreements.samples import adult_record

ROUNDS = 5_000
KEY = b"benchmark-pseudonym-key-32-bytes"
TODAY = date(2026, 11, 25)
CASES = (
    ("KM-DOM-006", "direct_care"),  # 32 rules, mostly kept
    ("KM-ICB-COM-004", "commissioning"),  # pseudonymise, age band, postcode district
    ("KM-NHS-DIS-003", "hospital_discharge"),
)


def four_kb_record() -> dict[str, object]:
    """The synthetic adult record padded with case notes to about 4 KB of JSON."""
    record = adult_record()
    notes = record["case_notes"]
    assert isinstance(notes, list)
    while len(json.dumps(record)) < 4096:
        notes.append(dict(notes[0], text="Synthetic narrative for benchmarking only. " * 3))
    return record


def measure(agreement_id: str, purpose: str) -> tuple[float, float, int]:
    """Median and 99th percentile µs of one decide + minimise; and the fields sent."""
    catalog = load_catalog(default_catalog_dir())
    agreement = catalog.agreements[agreement_id]
    record = four_kb_record()
    subject = {"nhs_number": "9990000026", "local_id": "MC-A-004567"}
    request = DisclosureRequest(agreement_id, purpose, frozenset(subject))
    context = DecisionContext(TODAY, frozenset({agreement_id}))
    timings = []
    sent = 0
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        decision = decide(request, agreement, context)
        result = minimise(
            record, agreement, purpose, pseudonym_key=KEY, today=TODAY, subject=subject
        )
        timings.append(time.perf_counter_ns() - start)
        assert decision.allowed
        sent = len(result.sent)
    timings.sort()
    return statistics.median(timings) / 1000, timings[int(len(timings) * 0.99)] / 1000, sent


def main() -> None:
    """Print one line per case."""
    size = len(json.dumps(four_kb_record()))
    print(f"policy: decide + minimise, record {size} bytes of JSON, {ROUNDS} rounds each")
    for agreement_id, purpose in CASES:
        median, p99, sent = measure(agreement_id, purpose)
        print(
            f"  {agreement_id:<16} {purpose:<20} median {median:7.1f} µs"
            f"   p99 {p99:7.1f} µs   fields sent {sent}"
        )
    print("  target: median under 150 µs")


if __name__ == "__main__":
    main()
