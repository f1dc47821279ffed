"""CSV import on SQLite and PostgreSQL: messy real-world files, each with the exact report it must give."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from foundation.settings import PROJECT_ROOT
from subscribers import store
from subscribers.csvfile import FileProblem
from subscribers.importer import Options, import_csv
from subscribers.models import Subscriber
from subscribers.topics import load_topics

NOW = datetime(2027, 1, 15, 9, 30, tzinfo=UTC)
KEY = "test-secret-key"
TOPICS = load_topics(PROJECT_ROOT / "content")
SOURCE = "URBACT info day registration form, 2026"
UNKNOWN_TOPIC = ("'Blockchain' is not a topic; use a slug or name from content/topics.yaml (" + ", ".join(TOPICS)
                 + "); left out, the rest of the row is imported")
PENDING = ("pending until they confirm by email: the file records no consent (no consent column, "
           "no --consent-source)")


def run(sessions, tmp_path: Path, data: bytes, **options) -> tuple[dict, list[list[str]]]:
    """Import `data` as a file; returns the counts and the report CSV's rows (header excluded)."""
    overrides = options.pop("overrides", None)
    path = tmp_path / "people.csv"
    path.write_bytes(data)
    report, report_path = import_csv(sessions, path, TOPICS, KEY, Options(now=NOW, **options), overrides)
    assert report_path == tmp_path / "people.report.csv"
    with report_path.open(encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["line", "email", "outcome", "reason"]
    return dict(report.counts), rows[1:]


def stored(sessions, email: str) -> Subscriber:
    with sessions() as session:
        subscriber = store.find(session, email)
        session.refresh(subscriber, ["topics", "consents"])
        return subscriber


GOOGLE_FORMS = (
    "Timestamp,Email Address,Full name,Organisation,Type of organisation,City,Country,Preferred language,"
    "Areas of interest,I agree\r\n"
    "2026-03-01 10:00:00,ana.popescu@primaria-cluj.example.org,Ana Popescu,Primăria Municipiului Cluj-Napoca,"
    "Primărie,Cluj-Napoca,RO,,\"Rețele de transfer, Apeluri de proiecte\",Yes\r\n"
    "2026-03-01 11:15:00,marco.rossi@comune-messina.example.org,Marco Rossi,Comune di Messina,Municipality,"
    "Messina,Italy,,Digital innovation,Yes\r\n"
    "2026-03-02 09:00:00,elena.ionescu@uvt.example.org,Elena Ionescu,Universitatea de Vest din Timișoara,"
    "Universitate,Timișoara,România,Both,climate-neutral-cities,\r\n"
).encode("utf-8")


def test_a_google_forms_export_with_a_bom(sessions, tmp_path):
    counts, rows = run(sessions, tmp_path, b"\xef\xbb\xbf" + GOOGLE_FORMS, consent_source=SOURCE)
    assert counts == {"imported": 3}
    assert rows == [
        ["2", "ana.popescu@primaria-cluj.example.org", "imported", ""],
        ["3", "marco.rossi@comune-messina.example.org", "imported", ""],
        ["4", "elena.ionescu@uvt.example.org", "imported", "pending: the consent column is empty"],
    ]
    ana = stored(sessions, "ana.popescu@primaria-cluj.example.org")
    assert (ana.name, ana.organisation_type, ana.country, ana.timezone, ana.language, ana.status) == (
        "Ana Popescu", "municipality", "RO", "Europe/Bucharest", "ro", "confirmed")
    assert {link.topic for link in ana.topics} == {"transfer-networks", "programme-calls"}
    [consent] = ana.consents
    assert (consent.source, consent.channel, consent.given_at) == (SOURCE, "import", datetime(2026, 3, 1, 10, tzinfo=UTC))
    assert consent.purpose.startswith("newsletters and event invitations (topics: programme-calls, transfer-networks)")
    marco = stored(sessions, "marco.rossi@comune-messina.example.org")
    assert (marco.country, marco.language, marco.timezone) == ("IT", "en", "Europe/Rome")
    elena = stored(sessions, "elena.ionescu@uvt.example.org")
    assert (elena.status, elena.language, elena.consents) == ("pending", "both", [])


def test_importing_the_same_file_again_changes_nothing(sessions, tmp_path):
    run(sessions, tmp_path, GOOGLE_FORMS, consent_source=SOURCE)
    with sessions() as session:
        before = [(s.id, s.updated_at, len(s.consents)) for s in session.scalars(select(Subscriber))]
    counts, rows = run(sessions, tmp_path, GOOGLE_FORMS, consent_source=SOURCE)
    assert counts == {"unchanged": 3}
    assert [row[2] for row in rows] == ["unchanged"] * 3
    with sessions() as session:
        assert [(s.id, s.updated_at, len(s.consents)) for s in session.scalars(select(Subscriber))] == before


# Excel on a Romanian Windows: Windows-1250, semicolons, "Nume" + "Prenume", and cedilla letters,
# since Windows-1250 has no ș ț (the test encodes them as ş ţ).
EXCEL_RO = (
    "Nume;Prenume;Adresă e-mail;Instituția;Tip instituție;Localitatea;Țara;Limba;Teme de interes;Acord GDPR\r\n"
    "Ţurcanu;Ştefan;stefan.turcanu@adr-nordest.example.org;Agenţia pentru Dezvoltare Regională Nord-Est;Agenţie;"
    "Piatra Neamţ;RO;română;Dezvoltarea capacităților;Da\r\n"
    "Popa;Maria;maria.popa@ministerul-dezvoltarii.example.org;Ministerul Dezvoltării;Minister;Bucureşti;RO;;"
    "Apeluri de proiecte|Inovare urbană (EUI);Nu\r\n"
)


def test_windows_1250_with_semicolons_romanian_headers_and_cedillas(sessions, tmp_path):
    data = EXCEL_RO.translate(str.maketrans("șțȘȚ", "şţŞŢ")).encode("cp1250")
    counts, rows = run(sessions, tmp_path, data, consent_source="Formular înscriere 2025")
    assert counts == {"imported": 2}
    assert rows == [
        ["2", "stefan.turcanu@adr-nordest.example.org", "imported", ""],
        ["3", "maria.popa@ministerul-dezvoltarii.example.org", "imported", "pending: the consent column says 'Nu'"],
    ]
    stefan = stored(sessions, "stefan.turcanu@adr-nordest.example.org")
    assert (stefan.name, stefan.organisation, stefan.city) == (
        "Ștefan Țurcanu", "Agenția pentru Dezvoltare Regională Nord-Est", "Piatra Neamț")
    assert (stefan.organisation_type, stefan.language, stefan.status) == ("agency", "ro", "confirmed")
    assert {link.topic for link in stefan.topics} == {"capacity-building"}
    maria = stored(sessions, "maria.popa@ministerul-dezvoltarii.example.org")
    assert (maria.name, maria.city, maria.status) == ("Maria Popa", "București", "pending")
    assert {link.topic for link in maria.topics} == {"programme-calls", "urban-innovation"}


def test_duplicate_and_invalid_addresses_are_reported_and_the_good_rows_imported(sessions, tmp_path):
    data = (
        "email,name\n"
        "Ana.Popescu@Example.org,Ana\n"
        "  ana.popescu@example.ORG ,Ana again\n"
        "not-an-address,Nobody\n"
        "ion@example,Ion\n"
        ",Empty\n"
        "ion..popa@example.org,Ion Popa\n"
        "radu@example.com,Radu,extra\n"
        "radu@example.com,Radu\n"
    ).encode()
    counts, rows = run(sessions, tmp_path, data)
    assert counts == {"imported": 2, "skipped": 6}
    assert rows == [
        ["2", "Ana.Popescu@example.org", "imported", PENDING],
        ["3", "ana.popescu@example.org", "skipped", "the same address as line 2"],
        ["4", "not-an-address", "skipped",
         "'not-an-address' is not a valid email address: An email address must have an @-sign."],
        ["5", "ion@example", "skipped", "'ion@example' is not a valid email address: "
         "The part after the @-sign is not valid. It should have a period."],
        ["6", "", "skipped", "no email address"],
        ["7", "ion..popa@example.org", "skipped",
         "'ion..popa@example.org' is not a valid email address: An email address cannot have two periods in a row."],
        ["8", "radu@example.com", "skipped",
         "1 more cell(s) than the header has; check the delimiter and the quotes around values that contain it"],
        ["9", "radu@example.com", "imported", PENDING],
    ]
    with sessions() as session:
        assert store.count(session) == 2
        assert store.find(session, "radu@example.com").status == "pending"


def test_bad_field_values_skip_the_row_with_the_fix_but_an_unknown_topic_only_itself(sessions, tmp_path):
    data = (
        "email,country,language,topics,organisation type,time zone\n"
        "a@example.org,Atlantis,,,,\n"
        "b@example.org,RO,fr,,,\n"
        "c@example.org,RO,,Blockchain,,\n"
        "d@example.org,RO,,,club,\n"
        "e@example.org,RO,,,,Europe/Bucuresti\n"
    ).encode()
    counts, rows = run(sessions, tmp_path, data)
    assert counts == {"skipped": 4, "imported": 1}
    assert [row[3] for row in rows] == [
        "'Atlantis' is not a country; write an ISO 3166 code like RO or BE, or the country's name",
        "'fr' is not a language; write ro, en, both",
        f"{UNKNOWN_TOPIC}; {PENDING}",
        "'club' is not an organisation type; write one of municipality, ministry, agency, university, ngo, "
        "company, other (or its Romanian name)",
        "'Europe/Bucuresti' is not an IANA time zone; write one like Europe/Bucharest",
    ]


def test_an_empty_file_is_refused_before_anything_changes(sessions, tmp_path):
    for data in (b"", b"\xef\xbb\xbf", b"\r\n\r\n"):
        with pytest.raises(FileProblem, match="the file is empty; export it again with its header row"):
            run(sessions, tmp_path, data)


def test_a_file_without_an_email_column_is_refused_and_map_names_it(sessions, tmp_path):
    data = "Nume complet;Adresa poștală electronică\nAna Pop;ana@example.org\n".encode()
    with pytest.raises(FileProblem, match=r"no email column; name one with --map"):
        run(sessions, tmp_path, data)
    counts, rows = run(sessions, tmp_path, data, overrides={"adresa postala electronica": "email"})
    assert counts == {"imported": 1}
    with pytest.raises(FileProblem, match="--map names a column the file does not have: 'mail'"):
        run(sessions, tmp_path, data, overrides={"Mail": "email"})


def test_a_file_with_only_headers_imports_nothing(sessions, tmp_path):
    counts, rows = run(sessions, tmp_path, "Adresă de e-mail;Nume\r\n".encode())
    assert (counts, rows) == ({}, [])


def test_an_import_never_resubscribes_or_blanks_and_a_suppressed_address_stays_out(sessions, tmp_path):
    run(sessions, tmp_path, GOOGLE_FORMS, consent_source=SOURCE)
    with sessions.begin() as session:
        store.find(session, "ana.popescu@primaria-cluj.example.org").status = "unsubscribed"
        store.suppress(session, KEY, "Marco.Rossi@comune-messina.example.org", "erased", NOW)
    data = (
        "email,organisation,topics,role in project,consent\n"
        "ana.popescu@primaria-cluj.example.org,,Inovare digitală,coordonator,yes\n"
        "marco.rossi@comune-messina.example.org,Comune di Messina,,,yes\n"
        "elena.ionescu@uvt.example.org,,,,Sunt de acord cu prelucrarea datelor\n"
    ).encode()
    counts, rows = run(sessions, tmp_path, data, consent_source=SOURCE)
    assert rows == [
        ["2", "ana.popescu@primaria-cluj.example.org", "updated", ""],
        ["3", "marco.rossi@comune-messina.example.org", "skipped",
         "on the suppression list (erased or blocked): never imported again"],
        ["4", "elena.ionescu@uvt.example.org", "updated", ""],
    ]
    ana = stored(sessions, "ana.popescu@primaria-cluj.example.org")
    assert ana.status == "unsubscribed" and ana.organisation == "Primăria Municipiului Cluj-Napoca"
    assert {link.topic for link in ana.topics} == {"transfer-networks", "programme-calls", "digital-innovation"}
    assert ana.attributes == {"role_in_project": "coordonator"}
    elena = stored(sessions, "elena.ionescu@uvt.example.org")
    assert (elena.status, elena.confirmed_at) == ("confirmed", NOW)
    assert [consent.purpose for consent in elena.consents] == ["Sunt de acord cu prelucrarea datelor"]


def test_topic_flag_adds_to_every_row_and_an_unknown_one_stops_first(sessions, tmp_path):
    data = b"email\na@example.org\nb@example.org\n"
    with pytest.raises(ValueError, match="'nope' is not a topic"):
        run(sessions, tmp_path, data, topics=("nope",))
    with sessions() as session:
        assert store.count(session) == 0
    run(sessions, tmp_path, data, topics=("Transfer networks",))
    assert {link.topic for link in stored(sessions, "b@example.org").topics} == {"transfer-networks"}


def test_one_unknown_topic_drops_only_that_topic(sessions, tmp_path):
    data = b'email,topics\na@example.org,"Transfer networks, Blockchain"\n'
    counts, rows = run(sessions, tmp_path, data, consent_source=SOURCE)
    assert (counts, rows) == ({"imported": 1}, [["2", "a@example.org", "imported", UNKNOWN_TOPIC]])
    assert {link.topic for link in stored(sessions, "a@example.org").topics} == {"transfer-networks"}


def test_people_left_pending_for_lack_of_consent_say_so_and_no_one_else_does(sessions, tmp_path):
    run(sessions, tmp_path, b"email,consent\nconfirmed@example.org,yes\n", consent_source=SOURCE)
    data = b"email,name\npending@example.org,Ana\nconfirmed@example.org,Ion\n"
    _, rows = run(sessions, tmp_path, data)
    assert rows == [["2", "pending@example.org", "imported", PENDING], ["3", "confirmed@example.org", "updated", ""]]
    _, rows = run(sessions, tmp_path, data)
    assert rows == [["2", "pending@example.org", "unchanged", PENDING], ["3", "confirmed@example.org", "unchanged", ""]]
    assert stored(sessions, "pending@example.org").status == "pending"


def test_consent_without_a_source_leaves_people_pending(sessions, tmp_path):
    counts, rows = run(sessions, tmp_path, b"email,consent\na@example.org,da\n")
    assert rows == [["2", "a@example.org", "imported", "pending: consent is recorded but not its source; "
                      "pass --consent-source"]]
    assert stored(sessions, "a@example.org").status == "pending"
    counts, rows = run(sessions, tmp_path, b"email,consent,source,consent date\na@example.org,da,Paper form,31.01.2026 14:05\n")
    assert rows == [["2", "a@example.org", "updated", ""]]
    [consent] = stored(sessions, "a@example.org").consents
    assert (consent.source, consent.given_at) == ("Paper form", datetime(2026, 1, 31, 14, 5, tzinfo=UTC))


# ---- hostile or careless cells: cleaned, cut with a note, and a row the database refuses is the only one lost ----

LIMITS = {field: Subscriber.__table__.c[field].type.length for field in ("name", "organisation", "city")}


def test_control_and_bidi_characters_are_stripped_before_the_database_sees_them(sessions, tmp_path):
    data = (
        'email,name,organisation,city,role in project\n'
        'ana@example.org,Nu\x00ll,"\u202eORG\u202c Primăria\tCluj",Cluj\x1b-Napoca,"coord\x00onator\r\nproiect"\n'
        'ion@example.org,Ion Popa,ONG,Iași,expert\n'
    ).encode()
    counts, rows = run(sessions, tmp_path, data)
    assert counts == {"imported": 2} and [row[3] for row in rows] == [PENDING, PENDING]
    ana = stored(sessions, "ana@example.org")
    assert (ana.name, ana.organisation, ana.city) == ("Null", "ORG Primăria Cluj", "Cluj-Napoca")
    assert ana.attributes == {"role_in_project": "coordonator proiect"}


def test_over_long_values_are_cut_to_their_documented_length_and_the_row_says_so(sessions, tmp_path):
    name, organisation, city = "Ana Maria " * 1000, "Ț" * 301, "Cluj " * 30
    long_header, value = "Întrebare" + "x" * 100, "v" * 501  # a form's question, written out in full
    data = (f"email,name,organisation,city,{long_header}\n"
            f"ana@example.org,{name},{organisation},{city},{value}\n"
            f"ion@example.org,Ion Popa,ONG,Iași,expert\n").encode()
    counts, rows = run(sessions, tmp_path, data)
    assert counts == {"imported": 2}
    assert rows[0][:3] == ["2", "ana@example.org", "imported"]
    assert rows[0][3] == (f"name cut to {LIMITS['name']} characters (the file has 9,999); "
                          f"organisation cut to {LIMITS['organisation']} characters (the file has 301); "
                          f"city cut to {LIMITS['city']} characters (the file has 149); "
                          f"attribute {'intrebare' + 'x' * 55} cut to 500 characters (the file has 501); {PENDING}")
    assert rows[1] == ["3", "ion@example.org", "imported", PENDING]
    ana = stored(sessions, "ana@example.org")
    assert ana.name == name[:LIMITS["name"]].rstrip() and len(ana.name) <= LIMITS["name"]
    assert ana.organisation == organisation[:LIMITS["organisation"]]
    assert ana.city == city[:LIMITS["city"]].rstrip()
    assert ana.attributes == {"intrebare" + "x" * 55: "v" * 500}, "a column's name is cut to 64 characters"
    counts, rows = run(sessions, tmp_path, data)
    assert counts == {"unchanged": 2}, "the cut value is what is held: importing the file again changes nothing"


def test_a_row_the_database_refuses_is_skipped_with_the_reason_and_the_others_import(sessions, tmp_path):
    """A database may hold a rule Herald does not know (here a trigger an administrator added): the chunk it
    refuses is applied again row by row, so only the refused row is lost, and the report says why."""
    with sessions.begin() as session:
        if session.bind.dialect.name == "sqlite":
            session.execute(text("CREATE TRIGGER no_mallory BEFORE INSERT ON subscribers WHEN NEW.name = 'Mallory' "
                                 "BEGIN SELECT RAISE(ABORT, 'Mallory is not welcome here'); END"))
        else:
            session.execute(text("CREATE FUNCTION no_mallory() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                                 "IF NEW.name = 'Mallory' THEN RAISE EXCEPTION 'Mallory is not welcome here' "
                                 "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$"))
            session.execute(text("CREATE TRIGGER no_mallory BEFORE INSERT ON subscribers FOR EACH ROW "
                                 "EXECUTE FUNCTION no_mallory()"))
    data = b"email,name,topics\nana@example.org,Ana,Transfer networks\nm@example.org,Mallory,\nion@example.org,Ion,\n"
    counts, rows = run(sessions, tmp_path, data)
    assert counts == {"imported": 2, "skipped": 1}
    assert rows[0] == ["2", "ana@example.org", "imported", PENDING]
    assert rows[2] == ["4", "ion@example.org", "imported", PENDING]
    assert rows[1][:3] == ["3", "m@example.org", "skipped"]
    assert rows[1][3].startswith("the database refused this row: ") and "Mallory is not welcome here" in rows[1][3]
    with sessions() as session:
        assert store.count(session) == 2 and store.find(session, "m@example.org") is None
    assert {link.topic for link in stored(sessions, "ana@example.org").topics} == {"transfer-networks"}


def test_a_time_zone_too_long_for_a_file_name_and_a_cell_over_the_csv_limit_skip_only_their_row(sessions, tmp_path):
    data = (f"email,name,time zone,attributes\n"
            f"a@example.org,A,{'Europe' * 1000},\n"
            f"b@example.org,{'B' * 200_000},,\n"
            f"c@example.org,C,,\"{'[' * 50_000}{']' * 50_000}\"\n"
            f"d@example.org,D,,\n").encode()
    counts, rows = run(sessions, tmp_path, data)
    assert counts == {"imported": 1, "skipped": 3}
    assert rows[0][:3] == ["2", "a@example.org", "skipped"] and "is not an IANA time zone" in rows[0][3]
    assert rows[1][2:] == ["skipped", "a cell is longer than 131,072 characters; nothing of this row was read"]
    assert rows[2][:3] == ["4", "c@example.org", "skipped"] and "is not a JSON object" in rows[2][3]
    assert rows[3] == ["5", "d@example.org", "imported", PENDING]


def test_a_header_over_the_csv_limit_is_refused_before_anything_changes(sessions, tmp_path):
    with pytest.raises(FileProblem, match="a header is longer than 131,072 characters; export the file again as CSV"):
        run(sessions, tmp_path, f"email,{'h' * 200_000}\na@example.org,x\n".encode())
    with sessions() as session:
        assert store.count(session) == 0
