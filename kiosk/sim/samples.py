"""Fictitious sample records for the demo, the tests and the benchmarks.

Every person is invented: each `nama` carries the word CONTOH ("sample") as its middle
name and each photo is a drawn silhouette stamped CONTOH. Places are those of
Kabupaten Majalengka, Jawa Barat; the kecamatan digits of the NIK are illustrative,
not the official codes. Records are deterministic for (index, district, seed) and
cheap to make: the images come from a small cache of variants.

KIA samples (`make_kia_record`, the children's card) follow the same rules: children of
invented families, a photo only from the fifth birthday on, an invented head of office.

    python -m kiosk.sim.samples --count 12 --out seeds/records.jsonl
    python -m kiosk.sim.samples --kia --count 6 --out seeds/kia-records.jsonl
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import random
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from kiosk.contract import kia
from kiosk.contract.record import SCHEMA

REFERENCE_DAY = date(2016, 9, 15)  # the day of the news report in seeds/README.md
PHOTO_SIZE = (300, 400)
SIGNATURE_SIZE = (400, 150)
PHOTO_VARIANTS = 4
SIGNATURE_VARIANTS = 8
MARKER = "CONTOH"

_KECAMATAN: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("07", "MAJALENGKA", ("MAJALENGKA KULON", "MAJALENGKA WETAN", "CICURUG", "TONJONG")),
    ("13", "KADIPATEN", ("KADIPATEN", "LIANGJULANG", "KARANGSAMBUNG", "BABAKAN ANYAR")),
    ("11", "JATIWANGI", ("JATIWANGI", "BURUJUL WETAN", "LOJI", "SUTAWANGI")),
    ("04", "TALAGA", ("TALAGA KULON", "TALAGA WETAN", "SUKAPERNA")),
    ("19", "CIGASONG", ("CIGASONG", "BARIBIS", "KAWUNGGIRANG", "CICENANG")),
    ("08", "SUKAHAJI", ("SUKAHAJI", "CIKEUSIK", "PALABUAN")),
    ("09", "RAJAGALUH", ("RAJAGALUH", "RAJAGALUH LOR", "CIPINANG")),
    ("10", "LEUWIMUNDING", ("LEUWIMUNDING", "MIRAT", "PARUNGJAYA")),
    ("03", "CIKIJING", ("CIKIJING", "SUKAMUKTI", "CILANCANG")),
)
_GIVEN = {
    "PEREMPUAN": ("SITI", "DEWI", "NENG", "IMAS", "ENENG", "YANTI", "LILIS", "EUIS", "NURUL"),
    "LAKI-LAKI": ("ASEP", "DEDE", "UJANG", "AGUS", "DADANG", "CECEP", "YAYAN", "UDIN", "DENI"),
}
_FAMILY = ("AMINAH", "HIDAYAT", "KURNIAWAN", "NURJANAH", "RAHMAWATI", "SUPRIATNA",
           "SUHERMAN", "MULYANI", "SAEPUDIN", "KOMARUDIN", "SUMARNI", "SETIAWAN")
_BLOK = ("MANIS", "PAHING", "PUHUN", "WAGE", "KLIWON")
_AGAMA = (("ISLAM", 95), ("KRISTEN", 2), ("KATOLIK", 1), ("BUDDHA", 1), ("HINDU", 1))
_GOL_DARAH = (("O", 35), ("A", 25), ("B", 25), ("AB", 5), ("-", 10))
_PEKERJAAN = ("PETANI/PEKEBUN", "WIRASWASTA", "KARYAWAN SWASTA", "PEDAGANG",
              "BURUH HARIAN LEPAS", "GURU")
_BACKGROUNDS = {"red": (206, 17, 38), "blue": (24, 84, 176)}
_SKIN = ((224, 172, 125), (198, 142, 96), (170, 118, 78), (236, 188, 150))
_CLOTHES = ((250, 250, 250), (30, 30, 40), (60, 90, 60), (110, 40, 60))


def make_record(index: int, *, district: str = "3210", seed: int = 0) -> dict[str, Any]:
    """The JSON-ready, unsigned sample record number `index` for `district`."""
    if not (len(district) == 4 and district.isascii() and district.isdigit()):
        raise ValueError(f"district must be 4 digits, not {district!r}")
    rng = random.Random(f"ektp-sample:{district}:{seed}:{index}")
    sex = rng.choice(("LAKI-LAKI", "PEREMPUAN"))
    born = REFERENCE_DAY - timedelta(days=rng.randint(17 * 366, 75 * 365))
    kec_code, kecamatan, villages = rng.choice(_KECAMATAN)
    day = born.day + (40 if sex == "PEREMPUAN" else 0)
    serial = (index - 1) % 9999 + 1
    nik = f"{district}{kec_code}{day:02d}{born.month:02d}{born.year % 100:02d}{serial:04d}"
    age = (REFERENCE_DAY - born).days // 365
    fields = {
        "provinsi": "JAWA BARAT",
        "kabupaten": "MAJALENGKA",
        "nama": f"{rng.choice(_GIVEN[sex])} {MARKER} {rng.choice(_FAMILY)}",
        "tempat_lahir": rng.choice((kecamatan, "MAJALENGKA", "CIREBON", "SUMEDANG")),
        "tanggal_lahir": born.isoformat(),
        "jenis_kelamin": sex,
        "gol_darah": _weighted(rng, _GOL_DARAH),
        "alamat": _alamat(rng, kecamatan),
        "rt_rw": f"{rng.randint(1, 12):03d}/{rng.randint(1, 6):03d}",
        "kel_desa": rng.choice(villages),
        "kecamatan": kecamatan,
        "agama": _weighted(rng, _AGAMA),
        "status_perkawinan": _status(rng, age),
        "pekerjaan": _pekerjaan(rng, age, sex),
        "kewarganegaraan": "WNI",
        "berlaku_hingga": "SEUMUR HIDUP",
        "tempat_terbit": "MAJALENGKA",
        "tanggal_terbit": (REFERENCE_DAY + timedelta(days=rng.randint(0, 14))).isoformat(),
    }
    background = "red" if born.year % 2 else "blue"
    return {
        "schema": SCHEMA,
        "record_id": f"demo-{district}-{f's{seed}-' if seed else ''}{index:06d}",
        "nik": nik,
        "fields": fields,
        "photo_jpeg": _photo_b64(background, sex, rng.randrange(PHOTO_VARIANTS)),
        "signature_png": _signature_b64(rng.randrange(SIGNATURE_VARIANTS)),
        "priority": 1 if rng.random() < 0.1 else 0,
    }


# The signing head of the (invented) civil registry office of every KIA sample.
KIA_PEJABAT = {"nama": f"H. DADANG {MARKER} SUPRIATNA, S.SOS., M.SI.", "nip": "197203151998031005"}


def make_kia_record(index: int, *, district: str = "3210", seed: int = 0,
                    age_days: int | None = None) -> dict[str, Any]:
    """The JSON-ready, unsigned KIA sample record number `index` for `district`: a child
    `age_days` old on its day of issue (default: chosen from 1 month to 16 years)."""
    if not (len(district) == 4 and district.isascii() and district.isdigit()):
        raise ValueError(f"district must be 4 digits, not {district!r}")
    rng = random.Random(f"kia-sample:{district}:{seed}:{index}")
    sex = rng.choice(("LAKI-LAKI", "PEREMPUAN"))
    issued = REFERENCE_DAY + timedelta(days=rng.randint(0, 14))
    born = issued - timedelta(days=age_days if age_days is not None
                              else rng.randint(30, 16 * 365))
    kec_code, kecamatan, villages = rng.choice(_KECAMATAN)
    day = born.day + (40 if sex == "PEREMPUAN" else 0)
    serial = (index - 1) % 9999 + 1
    family, father = rng.choice(_FAMILY), rng.choice(_GIVEN["LAKI-LAKI"])
    kk_day = born - timedelta(days=rng.randint(0, 3000))
    fields = {
        "nama": f"{rng.choice(_GIVEN[sex])} {MARKER} {family}",
        "jenis_kelamin": sex,
        "tempat_lahir": rng.choice((kecamatan, "MAJALENGKA", "CIREBON", "SUMEDANG")),
        "tanggal_lahir": born.isoformat(),
        "gol_darah": _weighted(rng, _GOL_DARAH),
        "no_kk": f"{district}{kec_code}{kk_day:%d%m%y}{rng.randint(1, 9999):04d}",
        "nama_kepala_keluarga": f"{father} {MARKER} {family}",
        "no_akta_kelahiran": f"{district}-LT-{born:%d%m%Y}-{serial:04d}",
        "agama": _weighted(rng, _AGAMA),
        "kewarganegaraan": "WNI",
        "alamat": _alamat(rng, kecamatan),
        "rt_rw": f"{rng.randint(1, 12):03d}/{rng.randint(1, 6):03d}",
        "kel_desa": rng.choice(villages),
        "kecamatan": kecamatan,
        "kabupaten": "MAJALENGKA",
        "provinsi": "JAWA BARAT",
        "berlaku_hingga": kia.valid_until(born).isoformat(),
        "tempat_terbit": "MAJALENGKA",
        "tanggal_terbit": issued.isoformat(),
    }
    record: dict[str, Any] = {
        "schema": kia.SCHEMA,
        "record_id": f"kia-{district}-{f's{seed}-' if seed else ''}{index:06d}",
        "nik": f"{district}{kec_code}{day:02d}{born.month:02d}{born.year % 100:02d}{serial:04d}",
        "fields": fields,
    }
    if kia.needs_photo(born, issued):
        record["photo_jpeg"] = _photo_b64("red" if born.year % 2 else "blue", sex,
                                          rng.randrange(PHOTO_VARIANTS))
    record["pejabat"] = {**KIA_PEJABAT, "signature_png": _signature_b64(SIGNATURE_VARIANTS - 1)}
    record["priority"] = 0
    return record


def iter_records(n: int, *, start: int = 1, district: str = "3210",
                 seed: int = 0) -> Iterator[dict[str, Any]]:
    """Sample records number start .. start + n - 1."""
    for index in range(start, start + n):
        yield make_record(index, district=district, seed=seed)


def iter_kia_records(n: int, *, start: int = 1, district: str = "3210",
                     seed: int = 0) -> Iterator[dict[str, Any]]:
    """KIA sample records number start .. start + n - 1."""
    for index in range(start, start + n):
        yield make_kia_record(index, district=district, seed=seed)


def write_jsonl(path: str | Path, n: int, *, start: int = 1, district: str = "3210",
                seed: int = 0) -> int:
    """Write `n` sample records to `path`, one compact JSON object a line; return n."""
    with open(path, "w", encoding="utf-8") as out:
        _write(out, iter_records(n, start=start, district=district, seed=seed))
    return n


def _write(out: Any, records: Iterator[dict[str, Any]]) -> None:
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _alamat(rng: random.Random, kecamatan: str) -> str:
    if rng.random() < 0.5:
        return f"BLOK {rng.choice(_BLOK)}"
    return f"JL. RAYA {kecamatan} NO. {rng.randint(1, 180)}"


def _status(rng: random.Random, age: int) -> str:
    if age < 22:
        return "BELUM KAWIN"
    return _weighted(rng, (("KAWIN", 75), ("BELUM KAWIN", 15), ("CERAI HIDUP", 5),
                           ("CERAI MATI", 5)))


def _pekerjaan(rng: random.Random, age: int, sex: str) -> str:
    if age < 23:
        return "PELAJAR/MAHASISWA"
    if sex == "PEREMPUAN" and rng.random() < 0.4:
        return "MENGURUS RUMAH TANGGA"
    return rng.choice(_PEKERJAAN)


@cache
def _photo_b64(background: str, sex: str, variant: int) -> str:
    """A head-and-shoulders silhouette on the E-KTP red or blue, stamped CONTOH."""
    width, height = PHOTO_SIZE
    img = Image.new("RGB", PHOTO_SIZE, _BACKGROUNDS[background])
    draw = ImageDraw.Draw(img)
    skin, clothes = _SKIN[variant % len(_SKIN)], _CLOTHES[variant % len(_CLOTHES)]
    draw.ellipse((20, 300, width - 20, height + 160), fill=clothes)  # shoulders
    draw.rectangle((128, 250, 172, 320), fill=skin)  # neck
    if sex == "PEREMPUAN" and variant % 2 == 0:  # headscarf over head and shoulders
        scarf = (240, 240, 235) if variant else (40, 60, 110)
        draw.ellipse((60, 210, 240, 380), fill=scarf)
        draw.ellipse((78, 90, 222, 300), fill=scarf)
        draw.ellipse((108, 130, 192, 250), fill=skin)
    else:
        draw.ellipse((92, 86, 208, 170), fill=(25, 20, 20))  # hair
        draw.ellipse((98, 105, 202, 265), fill=skin)
    font = ImageFont.load_default(size=36)
    draw.text((width // 2, height - 30), MARKER, fill=(255, 255, 255), font=font, anchor="mm",
              stroke_width=2, stroke_fill=(0, 0, 0))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=80)
    return base64.b64encode(out.getvalue()).decode("ascii")


@cache
def _signature_b64(variant: int) -> str:
    """A cursive-looking pen squiggle: loops whose size drifts along the line."""
    rng = random.Random(f"ektp-signature:{variant}")
    width, height = SIGNATURE_SIZE
    img = Image.new("L", SIGNATURE_SIZE, 255)
    loop, amplitude, points = rng.uniform(14, 24), rng.uniform(20, 40), []
    for step in range(260):
        t = step / 10
        loop = min(30.0, max(10.0, loop + rng.uniform(-1, 1)))
        amplitude = min(50.0, max(15.0, amplitude + rng.uniform(-3, 3)))
        x = 30 + t * (width - 80) / 26 + loop * math.cos(t * 2.2)
        y = height / 2 + amplitude * math.sin(t * 2.2) - (t - 13) * 0.8
        points.append((x, y))
    ImageDraw.Draw(img).line(points, fill=0, width=3, joint="curve")
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiosk.sim.samples",
                                     description="Write fictitious sample records as JSON lines.")
    parser.add_argument("--count", "-n", type=int, default=12)
    parser.add_argument("--start", type=int, default=1)
    parser.add_argument("--district", default="3210")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="-", help="file to write, '-' for stdout")
    parser.add_argument("--kia", action="store_true", help="KIA records (kia.record/1)")
    args = parser.parse_args(argv)
    options = {"start": args.start, "district": args.district, "seed": args.seed}
    records = (iter_kia_records if args.kia else iter_records)(args.count, **options)
    if args.out == "-":
        _write(sys.stdout, records)
    else:
        with open(args.out, "w", encoding="utf-8") as out:
            _write(out, records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
