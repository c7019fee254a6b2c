"""Article 30 entries and plain words, from the example catalog (pure)."""

from __future__ import annotations

from agreements import plain_words
from agreements.law import Article6, Article9, StatutoryGateway
from agreements.loader import default_catalog_dir, load_catalog
from agreements.model import Period, Purpose
from agreements.processing_record import processing_entry

CATALOG = load_catalog(default_catalog_dir())


def test_every_code_an_agreement_can_carry_has_words() -> None:
    assert set(plain_words.PURPOSES) == set(Purpose)
    assert set(plain_words.ARTICLE_6) == {a.value for a in Article6}
    assert set(plain_words.ARTICLE_9) == {a.value for a in Article9}
    unnamed = [g for g in StatutoryGateway if plain_words.gateway_name(g) == g.value]
    assert unnamed == []
    assert plain_words.purpose("not_a_purpose") == "not_a_purpose"  # never breaks a report


def test_retention_in_words() -> None:
    assert plain_words.retention(Period.parse("P75Y")) == "75 years"
    assert plain_words.retention(Period.parse("P1Y6M")) == "1 year and 6 months"


def test_an_entry_says_what_an_auditor_needs() -> None:
    agreement = CATALOG.agreements["KM-LA-PLC-010"]
    entry = processing_entry(agreement, CATALOG.partner_of(agreement))
    assert entry.partner_name == CATALOG.partners["bexley-lb"].name
    assert entry.special_category
    assert {"health", "identity", "case_notes"} <= set(entry.data_categories)
    assert entry.data_subjects == ("children and young people", "relatives and carers")
    assert entry.recipients == (entry.partner_name,)
    assert entry.lawful_basis.startswith("the council's public tasks set by law")
    assert "Children Act 1989 s22c" in entry.lawful_basis
    assert entry.dpia == "DPIA-2025-022"
    assert entry.retention == "75 years after each disclosure"


def test_every_catalog_agreement_sending_sensitive_data_names_its_dpia() -> None:
    for agreement in CATALOG.agreements.values():
        entry = processing_entry(agreement, CATALOG.partner_of(agreement))
        if entry.special_category or entry.criminal_offence:
            assert entry.dpia, agreement.id
