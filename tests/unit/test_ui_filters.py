"""Numbers and alert texts as clinicians read them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from ketaclinic.clinical.monitoring import VitalSigns, check_vitals, describe_vital
from ketaclinic.clinical.session_rules import load_session_rules
from ketaclinic.web.filters import mg, pct, plain, qty


def test_doses_show_sensible_precision_without_trailing_zeros():
    assert mg(Decimal("1680.000000")) == "1680 mg"
    assert mg(41.5) == "41.5 mg"
    assert mg(Decimal("0.250")) == "0.25 mg"
    assert mg(56.256) == "56.26 mg"
    assert mg(None) == "—"


def test_percentages_show_one_decimal():
    assert pct(60.5769) == "60.6 %"
    assert pct(-50) == "-50 %"


def test_other_quantities_keep_their_unit_and_an_exact_zero():
    assert qty(Decimal("1.000"), "mg/mL") == "1 mg/mL"
    assert qty(45.0, "mL/h", 1) == "45 mL/h"
    assert plain(Decimal("-0.0001"), 2) == "0"
    assert plain("not a number") == "not a number"


def test_a_vital_sign_alert_reads_in_words_with_units():
    assert describe_vital("spo2_pct", 89, "<", 92) == "SpO₂ 89 % — below 92 %"
    findings = check_vitals(VitalSigns(taken_at=datetime(2026, 1, 1),
                                       spo2_pct=89), "iv_ketamine", load_session_rules())
    assert findings and findings[0].message.startswith("SpO₂ 89 % — below")
    assert "spo2_pct" not in findings[0].message
