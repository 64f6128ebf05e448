"""Print-ready E-KTP records: the shape the station works with (see mqtt.md, Job)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FIELD_NAMES: tuple[str, ...] = (
    "provinsi", "kabupaten", "nama", "tempat_lahir", "tanggal_lahir", "jenis_kelamin",
    "gol_darah", "alamat", "rt_rw", "kel_desa", "kecamatan", "agama", "status_perkawinan",
    "pekerjaan", "kewarganegaraan", "berlaku_hingga", "tempat_terbit", "tanggal_terbit",
)


@dataclass(frozen=True)
class Record:
    """One validated record, images already decoded from base64."""

    record_id: str
    nik: str
    fields: Mapping[str, str]
    photo_jpeg: bytes
    signature_png: bytes
    priority: int = 0
    sig: Mapping[str, str] | None = field(default=None, compare=False)
