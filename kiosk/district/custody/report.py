"""The berita acara of invalid blanks (``kiosk district custody report``), PDF or CSV.

In Bahasa Indonesia, as the office signs it: the office, the period, one line per invalid
blank (UID, category, date and time in the office's zone, station, record_id, reason; name
and NIK only when the operator passes the district's own record export), the totals per
category and places for the signatures of the officers who destroyed the blanks and of the
head of the office. The PDF is written with fpdf2 (docs/custody.md says why); the CSV has
the same lines, one a row, with a header and nothing else, for spreadsheets.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from kiosk.district.custody import CATEGORIES, CATEGORY_LABELS
from kiosk.district.custody.people import Person
from kiosk.district.custody.period import days, local, tanggal, zone_label
from kiosk.district.custody.register import Line, Register

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
CSV_COLUMNS = ("no", "uid", "kategori", "tanggal_waktu", "stasiun", "record_id", "alasan")
NO_UID = "(tanpa chip)"


class EmptyPeriod(ValueError):
    """No invalid blank in the period asked: nothing to sign."""


@dataclass
class BeritaAcara:
    """What one berita acara says; `rows` are in time order."""

    office: str
    district: str
    first: date
    last: date
    station: str | None
    tz: ZoneInfo
    lines: list[Line]
    people: dict[str, Person] | None = None
    made_at: datetime = field(default_factory=datetime.now)

    @property
    def totals(self) -> dict[str, int]:
        counts = dict.fromkeys(CATEGORIES, 0)
        for line in self.lines:
            counts[line.category or ""] = counts.get(line.category or "", 0) + 1
        return counts

    @property
    def columns(self) -> tuple[str, ...]:
        return CSV_COLUMNS + (("nama", "nik") if self.people is not None else ())

    def rows(self) -> list[list[str]]:
        """Each line as the cells of `columns` (date and time in the office's zone)."""
        out = []
        for number, line in enumerate(self.lines, 1):
            when = local(line.at, self.tz)
            row = [str(number), line.uid or NO_UID,
                   CATEGORY_LABELS.get(line.category or "", line.category or ""),
                   when.strftime("%d/%m/%Y %H:%M:%S"), line.station, line.record_id or "-",
                   line.detail or CATEGORY_LABELS.get(line.category or "", "")]
            if self.people is not None:
                person = self.people.get(line.record_id or "")
                row += [person.nama, person.nik] if person else ["-", "-"]
            out.append(row)
        return out


def berita_acara(register: Register, first: date, last: date, *, tz: ZoneInfo, office: str,
                 district: str, station: str | None = None,
                 people: dict[str, Person] | None = None) -> BeritaAcara:
    """The invalid blanks of the days *first*..*last*; `EmptyPeriod` when there are none."""
    start, end = days(first, last, tz)
    lines = register.lines(start, end, station=station, outcome="invalid")
    if not lines:
        where = f" at station {station}" if station else ""
        raise EmptyPeriod(f"no invalid blank{where} from {first} to {last}: no berita acara"
                          " to write")
    return BeritaAcara(office, district, first, last, station, tz, lines, people)


def to_csv(doc: BeritaAcara) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(doc.columns)
    for row in doc.rows():
        row[3] = local(doc.lines[int(row[0]) - 1].at, doc.tz).isoformat(timespec="seconds")
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8-sig")  # the BOM: spreadsheets read it as UTF-8


def to_pdf(doc: BeritaAcara) -> bytes:
    from fpdf.fonts import FontFace

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # its subsetting chatter
    made = doc.made_at.astimezone(doc.tz)
    pdf = _document(f"Berita acara blanko tidak valid, {doc.office}, dibuat"
                    f" {made:%d/%m/%Y %H:%M} {zone_label(doc.tz)}")
    family = _fonts(pdf)
    pdf.set_margins(12, 12, 12)
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_page()
    _heading(pdf, doc, family)
    bold = FontFace(emphasis="BOLD", fill_color=(230, 230, 230))
    widths = (6, 26, 20, 22, 16, 22, 36) + ((30, 22) if doc.people is not None else ())
    pdf.set_font(family, size=7.5 if doc.people is not None else 8)
    headings = ["No", "UID chip", "Kategori", "Tanggal dan waktu", "Stasiun", "ID rekaman",
                "Alasan"] + (["Nama", "NIK"] if doc.people is not None else [])
    with pdf.table(col_widths=widths, headings_style=bold, line_height=4.6,
                   repeat_headings=1) as table:
        table.row(headings)
        for row in doc.rows():
            table.row(row)
    pdf.ln(4)
    _totals(pdf, doc, family, bold)
    _signatures(pdf, doc, family)
    return bytes(pdf.output())


def _document(footer: str):
    """fpdf2's FPDF, A4 landscape, with a footer: what the document is, page of pages."""
    from fpdf import FPDF

    class Document(FPDF):
        def footer(self) -> None:
            self.set_y(-11)
            self.set_font(self.font_family, size=7)
            self.cell(0, 4, f"{footer} · halaman {self.page_no()} dari {{nb}}", align="C")

    return Document(orientation="L", unit="mm", format="A4")


def _fonts(pdf) -> str:
    """DejaVu Sans where Debian has it (every name prints), else the core Helvetica."""
    regular, bold = _DEJAVU / "DejaVuSans.ttf", _DEJAVU / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        pdf.add_font("DejaVu", "", str(regular))
        pdf.add_font("DejaVu", "B", str(bold))
        return "DejaVu"
    return "Helvetica"


def _heading(pdf, doc: BeritaAcara, family: str) -> None:
    kinds = sorted({line.document for line in doc.lines})
    what = " DAN ".join("KTP-EL" if kind == "ektp" else kind.upper() for kind in kinds)
    pdf.set_font(family, "B", 13)
    pdf.cell(0, 7, "BERITA ACARA PEMUSNAHAN BLANKO " + what + " TIDAK VALID", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 9)
    pdf.cell(0, 5, "Nomor: ............................................", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    zone = zone_label(doc.tz)
    facts = [("Kantor", doc.office), ("Kode wilayah", doc.district),
             ("Periode", f"{tanggal(doc.first)} s.d. {tanggal(doc.last)} (waktu {zone})"),
             ("Stasiun", doc.station or "semua stasiun")]
    for label, value in facts:
        pdf.cell(32, 5, label)
        pdf.cell(0, 5, f": {value}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    count = len(doc.lines)
    pdf.multi_cell(0, 5, (
        "Pada hari ini ................ tanggal ............................ kami yang bertanda"
        f" tangan di bawah ini telah memusnahkan {count} keping blanko yang tidak valid"
        " (gagal encode, gagal cetak, rusak, perubahan elemen data) dengan cara"
        " ........................................, sebagaimana tercantum dalam daftar"
        " berikut, sesuai Surat Edaran Direktur Jenderal Kependudukan dan Pencatatan Sipil"
        " Nomor 400.8.1.2/6753/Dukcapil."), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _totals(pdf, doc: BeritaAcara, family: str, bold) -> None:
    if pdf.will_page_break(68):  # the totals and the signatures stay on one page
        pdf.add_page()
    pdf.set_font(family, "B", 9)
    pdf.cell(0, 6, "Rekapitulasi per kategori (keping)", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 9)
    totals = doc.totals
    with pdf.table(width=230, align="LEFT", headings_style=bold, line_height=5,
                   text_align="CENTER") as table:
        table.row([*(CATEGORY_LABELS[category] for category in CATEGORIES), "Jumlah"])
        table.row([*(str(totals.get(category, 0)) for category in CATEGORIES),
                   str(len(doc.lines))])
    pdf.ln(4)


def _signatures(pdf, doc: BeritaAcara, family: str) -> None:
    pdf.set_font(family, "", 9)
    pdf.cell(0, 5, f"{doc.office.split(',')[0]}, ............................",
             new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    who = ["Yang memusnahkan,\nPetugas I", "Yang memusnahkan,\nPetugas II",
           "Mengetahui,\nKepala Dinas"]
    width = (pdf.w - pdf.l_margin - pdf.r_margin) / len(who)
    top = pdf.get_y()
    for index, title in enumerate(who):
        x = pdf.l_margin + index * width
        pdf.set_xy(x, top)
        pdf.multi_cell(width - 6, 5, title, align="C")
        pdf.set_xy(x, top + 26)
        pdf.multi_cell(width - 6, 5, "( .................................................. )\n"
                       "NIP ..................................................", align="C")
    pdf.set_y(top + 37)
