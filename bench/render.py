"""Benchmark of card rendering and panel encoding: `python bench/render.py`.

Prints figures, not pass/fail: render + encode time per card (p50/p95 over varied
records), bytes per card raw vs as sent (`Dbc` K/O), the K compression ratio of a
typical record, and beside them a baseline measured in the same run (decoding the
photo + packing one blank colour panel) so the figures have context.

`python bench/render.py --preview docs/card-preview.png` also writes the
documentation preview of a fictitious record (composited from the encoded panels), and
`--kia-preview docs/kia-preview.png` the KIA's, both versions side by side (a child of
5 or older with a photo, a younger child without).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

from kiosk.card.render import FONT_SOURCE, render_card
from kiosk.contract.documents import parse_job
from kiosk.contract.kia import KiaRecord
from kiosk.contract.record import Record
from kiosk.devices.printer.evolis.panels import encode_card, pack_colour, render_preview
from kiosk.devices.printer.evolis.protocol import Geometry, bits_per_pixel

GIVEN = ("SITI", "DEWI", "ASEP", "DEDE", "UJANG", "NENG", "AGUS", "YANTI", "CECEP", "LILIS")
FAMILY = ("NURHALIZA", "HIDAYAT", "KURNIAWAN", "RAHMAWATI", "SUPRIATNA", "SUHERMAN",
          "MULYANI", "SAEPUDIN", "KOMARUDIN", "SETIAWAN", "PERMATASARI WIJAYAKUSUMA")
PLACES = ("MAJALENGKA", "CIGASONG", "KADIPATEN", "JATIWANGI", "TALAGA", "SUKAHAJI",
          "RAJAGALUH", "LEUWIMUNDING", "CIKIJING", "KOTA ADMINISTRASI JAKARTA SELATAN")
JOBS = ("PETANI/PEKEBUN", "WIRASWASTA", "KARYAWAN SWASTA", "PEDAGANG", "GURU",
        "BURUH HARIAN LEPAS", "MENGURUS RUMAH TANGGA", "KARYAWAN BADAN USAHA MILIK NEGARA")


def photo_jpeg(rng: random.Random) -> bytes:
    """A drawn head-and-shoulders on E-KTP red or blue, stamped CONTOH (fictitious)."""
    w, h = 300, 400
    img = Image.new("RGB", (w, h), rng.choice(((206, 17, 38), (24, 84, 176))))
    draw = ImageDraw.Draw(img)
    skin = rng.choice(((224, 172, 125), (198, 142, 96), (170, 118, 78)))
    draw.ellipse((10, 300, w - 10, h + 200), fill=rng.choice(((245, 245, 245), (40, 40, 55))))
    draw.rectangle((125, 240, 175, 310), fill=skin)  # neck
    draw.ellipse((82, 70, 218, 200), fill=(28, 22, 20))  # hair
    draw.ellipse((90, 105, 210, 275), fill=skin)  # face
    for x in (125, 175):  # eyes
        draw.ellipse((x - 8, 170, x + 8, 181), fill=(40, 30, 30))
    draw.arc((125, 210, 175, 245), 20, 160, fill=(120, 60, 60), width=3)
    draw.text((w // 2, h - 28), "CONTOH", fill="white", font=ImageFont.load_default(34),
              anchor="mm", stroke_width=2, stroke_fill="black")
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def signature_png(rng: random.Random) -> bytes:
    img = Image.new("L", (400, 150), 255)
    loop, amp = rng.uniform(12, 22), rng.uniform(20, 40)
    points = [(30 + t * 13 + loop * math.cos(t * 2.2),
               75 + amp * math.sin(t * 2.2) - (t - 13) * 0.8) for t in (s / 10 for s in range(260))]
    ImageDraw.Draw(img).line(points, fill=0, width=3, joint="curve")
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def make_record(i: int, rng: random.Random) -> Record:
    woman = rng.random() < 0.5
    born = (rng.randint(1, 28), rng.randint(1, 12), rng.randint(1950, 2007))
    place = rng.choice(PLACES)
    nama = " ".join([rng.choice(GIVEN), "CONTOH", *rng.sample(FAMILY, rng.randint(1, 3))])
    alamat = f"JL. {rng.choice(PLACES)} NO. {rng.randint(1, 250)}" + " BLOK CONTOH" * rng.randint(
        0, 4)
    fields = {
        "provinsi": "JAWA BARAT", "kabupaten": "MAJALENGKA", "nama": nama, "tempat_lahir": place,
        "tanggal_lahir": f"{born[2]}-{born[1]:02d}-{born[0]:02d}",
        "jenis_kelamin": "PEREMPUAN" if woman else "LAKI-LAKI",
        "gol_darah": rng.choice(("A", "B", "AB", "O", "-")), "alamat": alamat,
        "rt_rw": f"{rng.randint(1, 20):03d}/{rng.randint(1, 12):03d}",
        "kel_desa": rng.choice(PLACES), "kecamatan": rng.choice(PLACES[:9]), "agama": "ISLAM",
        "status_perkawinan": rng.choice(("KAWIN", "BELUM KAWIN", "CERAI HIDUP")),
        "pekerjaan": rng.choice(JOBS), "kewarganegaraan": "WNI",
        "berlaku_hingga": "SEUMUR HIDUP", "tempat_terbit": "MAJALENGKA",
        "tanggal_terbit": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    }
    nik = f"321007{born[0] + 40 * woman:02d}{born[1]:02d}{born[2] % 100:02d}{i % 9999 + 1:04d}"
    return Record(f"bench-{i}", nik, fields, photo_jpeg(rng), signature_png(rng))


def preview_record() -> Record:
    """The fictitious record of docs/card-preview.png."""
    rng = random.Random("card-preview")
    base = make_record(1, rng)
    fields = {**base.fields, "nama": "SITI NURHALIZA CONTOH", "tempat_lahir": "MAJALENGKA",
              "tanggal_lahir": "1990-08-17", "jenis_kelamin": "PEREMPUAN", "gol_darah": "O",
              "alamat": "JL. KH ABDUL HALIM NO. 45 BLOK CONTOH", "rt_rw": "002/005",
              "kel_desa": "MAJALENGKA KULON", "kecamatan": "MAJALENGKA",
              "status_perkawinan": "KAWIN", "pekerjaan": "KARYAWAN SWASTA",
              "tanggal_terbit": "2024-03-12"}
    return Record("preview-1", "3210075708900001", fields, base.photo_jpeg, base.signature_png)


def kia_records(n: int) -> list[KiaRecord]:
    """`n` KIA sample records (about one in four without a photo)."""
    from kiosk.sim.samples import make_kia_record

    out = []
    for index in range(1, n + 1):
        record = parse_job(json.dumps(make_kia_record(index)).encode(), documents=("kia",))
        assert isinstance(record, KiaRecord)
        out.append(record)
    return out


def kia_preview() -> Image.Image:
    """docs/kia-preview.png: the KIA samples 1 (with photo) and 3 (without), side by side."""
    from kiosk.sim.samples import make_kia_record

    cards = []
    for index in (1, 3):
        record = parse_job(json.dumps(make_kia_record(index)).encode(), documents=("kia",))
        assert isinstance(record, KiaRecord)
        cards.append(render_preview(record))
    gap = 24
    out = Image.new("RGB", (cards[0].width * 2 + gap, cards[0].height), "white")
    for i, card in enumerate(cards):
        out.paste(card, (i * (card.width + gap), 0))
    return out


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def pct(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), q[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="records (default 100)")
    parser.add_argument("--preview", type=Path, help="also write the preview PNG here")
    parser.add_argument("--kia-preview", type=Path, help="also write the KIA's preview here")
    args = parser.parse_args()
    rng = random.Random(20240312)
    records = [make_record(i, rng) for i in range(args.n)]
    geometry, blank = Geometry(), Image.new("L", (648, 1016), 0)
    encode_card(render_card(records[0]))  # warm the static caches (fonts, background)

    render_ms, encode_ms, total_ms, cpu_ms, base_ms, raw, sent = [], [], [], [], [], [], []
    for record in records:
        cpu, start = time.process_time(), time.perf_counter()
        card = render_card(record)
        mid = time.perf_counter()
        panels = encode_card(card)
        end = time.perf_counter()
        cpu_ms.append((time.process_time() - cpu) * 1000)
        render_ms.append((mid - start) * 1000)
        encode_ms.append((end - mid) * 1000)
        total_ms.append((end - start) * 1000)
        raw.append(sum(geometry.panel_bytes(bits_per_pixel(p.code)) for p in panels))
        sent.append(sum(len(p.data) for p in panels))
        base_ms.append(timed(lambda r=record: (Image.open(io.BytesIO(r.photo_jpeg)).load(),
                                               pack_colour(blank, 6))))

    table = Table(title=f"Card render + encode, {args.n} varied records (YMCKO, 6-bit colour)")
    table.add_column("figure")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    for name, values in (("render", render_ms), ("encode", encode_ms),
                         ("render + encode", total_ms),
                         ("render + encode, process CPU time", cpu_ms),
                         ("baseline: decode photo + pack blank panel", base_ms)):
        p50, p95 = pct(values)
        table.add_row(name, f"{p50:.1f} ms", f"{p95:.1f} ms")
    kia_ms = []
    for record in kia_records(args.n):
        cpu = time.process_time()
        encode_card(render_card(record))
        kia_ms.append((time.process_time() - cpu) * 1000)
    p50, p95 = pct(kia_ms)
    table.add_row("KIA render + encode, process CPU time", f"{p50:.1f} ms", f"{p95:.1f} ms")
    table.add_row("bytes per card, raw", f"{statistics.median(raw):,.0f}", "")
    table.add_row("bytes per card, as sent", f"{statistics.median(sent):,.0f}",
                  f"{max(sent):,}")
    k = next(p for p in encode_card(render_card(records[0])) if p.panel == "k")
    table.add_row("K panel of a typical record, raw -> sent",
                  f"{geometry.panel_bytes(1):,} -> {len(k.data):,}",
                  f"ratio {geometry.panel_bytes(1) / len(k.data):.2f}")
    console = Console()
    console.print(table)
    console.print(f"font: {FONT_SOURCE}")
    if args.preview:
        render_preview(preview_record()).save(args.preview, optimize=True)
        console.print(f"preview written to {args.preview}")
    if args.kia_preview:
        kia_preview().save(args.kia_preview, optimize=True)
        console.print(f"KIA preview written to {args.kia_preview}")


if __name__ == "__main__":
    main()
