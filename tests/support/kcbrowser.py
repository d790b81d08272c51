"""Browser-test constants and steps (imported as `kcbrowser`)."""

from __future__ import annotations

import os
import uuid

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips with the reason
    expect = None

CHROMIUM = os.environ.get("KETACLINIC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
TABLET = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}
LIVE_USERS = {
    "admin": ("admin", "Ada Admin", "admin", "admin-password-1"),
    "prescriber": ("prescriber", "Dr Pim", "prescriber", "prescriber-password-1"),
    "nurse": ("nurse", "Nina Nurse", "nurse", "nurse-password-1"),
    "analyst": ("analyst", "Ann Analyst", "analyst", "analyst-password-1"),
}

def log_in(page, role: str) -> None:  # type: ignore[no-untyped-def]
    username, _name, _role, password = LIVE_USERS[role]
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


# --- steps of the chair pages (shared by the chair browser tests) -------------------------
def field(page, label: str):  # type: ignore[no-untyped-def]
    return page.get_by_label(label, exact=True)


def new_tag() -> str:
    return uuid.uuid4().hex[:6].upper()


def log_out(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name="Log out").click()
    page.wait_for_load_state()


def add_chair(page, name: str) -> None:  # type: ignore[no-untyped-def]
    log_in(page, "admin")
    page.goto("/admin/chairs")
    field(page, "Name").fill(name)
    page.locator("#chair-hours").fill("0-6 00:00-23:59")
    page.get_by_role("button", name="Add chair").click()
    expect(page.get_by_role("cell", name=name, exact=True)).to_be_visible()
    log_out(page)


def receive_stock(page, drug: str, lot: str, containers: str, ml: str, conc: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/ledger")
    page.locator("#r-drug").fill(drug)
    page.locator("#r-lot").fill(lot)
    page.locator("#r-exp").fill("2030-01-31")
    page.locator("#r-cont").fill(containers)
    page.locator("#r-vol").fill(ml)
    page.locator("#r-conc").fill(conc)
    page.locator("#r-sup").fill("Demo Wholesale")
    page.locator("#r-addr").fill("1 Supply Way")
    page.locator("#r-dea").fill("AB1234563")
    page.get_by_role("button", name="Record receipt").click()
    expect(page.get_by_role("link", name=lot)).to_be_visible()


def patient_with_course(page, template_label: str, sex: str = "male",  # type: ignore[no-untyped-def]
                        ordered: bool = True) -> str:
    """Register a patient (nurse), create a course (prescriber) and, unless ``ordered`` is
    False, screen the patient and sign the course's order; returns the session URL."""
    family = "Chair" + new_tag().capitalize()
    log_in(page, "nurse")
    page.goto("/patients/new")
    field(page, "MRN").fill("CH-" + new_tag())
    field(page, "Family name").fill(family)
    field(page, "Given name").fill("Robin")
    field(page, "Date of birth").fill("1975-03-14")
    field(page, "Sex").select_option(sex)
    field(page, 'Weight (kilograms only, e.g. "82 kg")').fill("80 kg")
    page.get_by_role("button", name="Register").click()
    patient_url = page.url
    log_out(page)
    log_in(page, "prescriber")
    page.goto(patient_url)
    field(page, "Course template").select_option(label=template_label)
    page.get_by_role("button", name="Create course").click()
    expect(page.locator("#course-status")).to_have_text("active")
    page.get_by_role("link", name="Session 1", exact=True).click()
    session_url = page.url
    if ordered:
        screen_and_order(page, patient_url, "Esketamine" in template_label)
    log_out(page)
    return session_url


def screen_and_order(page, patient_url: str, esketamine: bool) -> None:  # type: ignore[no-untyped-def]
    """As the prescriber: diagnosis, screening facts, an eligible screening and the signed
    order for the patient's course (issue 12: no dose without them)."""
    screen_patient(page, patient_url, esketamine)
    page.goto(patient_url + "/dose?route=" + ("intranasal" if esketamine else "iv"))
    if not esketamine:
        page.locator("#concentration_mg_per_ml").fill("1")
    page.locator("#save-dose").click()
    expect(page.locator("#course_id")).to_be_visible()
    assert "saved=" in page.url, page.url


def screen_patient(page, patient_url: str, esketamine: bool) -> None:  # type: ignore[no-untyped-def]
    """As the prescriber: diagnosis, every screening question answered, an eligible
    screening for the treatment."""
    page.goto(patient_url)
    page.locator("#dx_code").fill("F33.2")
    page.locator("#dx_display").fill("Recurrent depressive disorder, severe")
    page.get_by_role("button", name="Add diagnosis").click()
    page.goto(patient_url + "/screening")
    for i, (drug, mg, weeks) in enumerate((("escitalopram", "20", "8"),
                                           ("venlafaxine", "225", "10"))):
        page.locator(f"#trial-{i}-drug").fill(drug)
        page.locator(f"#trial-{i}-dose").fill(mg)
        page.locator(f"#trial-{i}-weeks").fill(weeks)
        page.locator(f"#trial-{i}-response").select_option("minimal")
    page.locator("#episode_duration_months").fill("18")
    page.locator("#symptom_severity").select_option("severe")
    page.locator("#substance_use_disorder").select_option("none")
    page.locator("#bp_systolic").fill("128")
    page.locator("#bp_diastolic").fill("80")
    page.locator("#pregnant").select_option("no")
    page.locator("#breastfeeding").select_option("no")
    page.get_by_role("button", name="Save clinical facts").click()
    page.locator("#treatment").select_option("esketamine" if esketamine else "ketamine-iv")
    page.get_by_role("button", name="Run screening").click()
    expect(page.locator("#result .decision").first).to_have_text("Eligible")


def submit(page, section: str, button: str, expect_status: str | None = None) -> None:  # type: ignore[no-untyped-def]
    page.locator(f"#{section}").get_by_role("button", name=button).click()
    if expect_status:
        expect(page.locator("#session-status")).to_have_text(expect_status)


def clinic_today(page) -> str:  # type: ignore[no-untyped-def]
    """The clinic's date as the server reads its clock (the ledger's "Discovered on" offers it),
    not the test machine's: the two differ in another zone, or across midnight."""
    page.goto("/ledger")
    return page.locator("#l-on").input_value()


def book_and_check_in(page, session_url: str, chair: str,  # type: ignore[no-untyped-def]
                      start_time: str = "00:30", day: str = "") -> None:
    """Book at ``start_time`` (on ``day``: "today" is the clinic's today; else the planned
    date) and check in."""
    log_in(page, "nurse")
    if day == "today":
        day = clinic_today(page)
    page.goto(session_url)
    value = page.locator("#b-chair option", has_text=chair).get_attribute("value")
    field(page, "Chair").select_option(value)
    if day:
        field(page, "Date").fill(day)
    field(page, "Start time").fill(start_time)
    submit(page, "booking", "Book", "booked")
    field(page, "Signed consent on file").check()
    if field(page, "Enrolled in the Spravato REMS").count():
        field(page, "Enrolled in the Spravato REMS").check()
    field(page, "Ride home arranged").check()
    field(page, "Override reason (for warnings)").fill("fasting confirmed, times unknown")
    submit(page, "checkin", "Record check-in", "checked-in")


# The chair's forms read a typed HH:MM on the clinic's current day. The steps below keep the
# times a test types on one day whatever the time of day (no skip near midnight).
LAST_SAFE_MINUTE = "23:57"


def offered_time(page, label: str, not_before: str = "00:00") -> str:  # type: ignore[no-untyped-def]
    """The time (HH:MM) the form offers for ``label``: the server's "now" in clinic time.

    After 23:57 a form filled now might be sent after midnight, when its HH:MM would be read
    on the next day, in the future; before ``not_before`` the earlier times a test types would
    fall on the day before, which the form cannot take. Then this waits for the server's clock
    (at most a few minutes, a few runs in a thousand) and reloads the page.
    """
    offered = field(page, label).input_value()
    while offered > LAST_SAFE_MINUTE or offered < not_before:
        page.wait_for_timeout(5_000)
        page.reload()
        offered = field(page, label).input_value()
    return offered


def minutes_before(hhmm: str, minutes: int) -> str:
    """``hhmm`` less ``minutes``, but not before 00:00: just after midnight the earlier events
    are typed at 00:00 of the same day (still in order, none in the future), since a time
    before midnight cannot be typed into a form that reads HH:MM on today: "10:03" less 6 is
    "09:57", "00:04" less 6 is "00:00".
    """
    hours, mins = (int(part) for part in hhmm.split(":"))
    total = max(hours * 60 + mins - minutes, 0)
    return f"{total // 60:02d}:{total % 60:02d}"


def record_vitals(page, sbp: str, dbp: str) -> None:  # type: ignore[no-untyped-def]
    rows = page.locator("#vitals-table tbody tr").count()
    field(page, "Systolic (mmHg)").fill(sbp)
    field(page, "Diastolic (mmHg)").fill(dbp)
    field(page, "Heart rate (/min)").fill("78")
    field(page, "SpO2 (%)").fill("98")
    field(page, "Resp. rate (/min)").fill("14")
    submit(page, "vitals", "Record vitals")
    expect(page.locator("#vitals-table tbody tr")).to_have_count(rows + 1)


def rate(page, instrument: str, title: str, score: int) -> None:  # type: ignore[no-untyped-def]
    """Record a one-item rating item by item: open the scale, tick the score, record."""
    form = page.locator(f"#rating-{instrument}")
    page.locator("#ratings summary", has_text=title).first.click()
    form.locator(f"input[name=item_1][value='{score}']").check()
    form.get_by_role("button", name=f"Record {title}").click()
    expect(page.locator("#ratings-log")).to_contain_text(instrument)


# --- accessibility and screenshots (the role walks) ----------------------------------------
REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
AXE_JS = REPO / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "out" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
TABLET_PORTRAIT = {"width": 820, "height": 1180}
BLOCKING = ("serious", "critical")


def axe_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Serious and critical axe-core violations on the page (axe is injected through the
    DevTools protocol, so the app's CSP stays as it is)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [f"{v['impact']} {v['id']}: {v['help']} at {v['nodes']}" for v in result
            if v["impact"] in BLOCKING]


def look(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """A full-page screenshot under out/screenshots/ and no serious or critical axe-core
    violation on the page."""
    page.wait_for_load_state()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    problems = axe_violations(page)
    assert not problems, f"{name} ({page.url}):\n" + "\n".join(problems)
