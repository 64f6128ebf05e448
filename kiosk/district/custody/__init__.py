"""The district's register of blanks (chip.md, "The district's register and the berita acara").

Every ``blank`` event of every station is kept in one SQLite file by ``kiosk district
custody keep`` (keep.py, a service like the router), with the UIDs of the shipments the
district received (manifest.py, ``custody receive``). From that file: the berita acara of
invalid blanks (report.py, PDF and CSV, in Bahasa Indonesia), the monthly report
(monthly.py) and the custody page (web.py). The register holds no personal data: names
and NIKs are read from the district's own record export only while a report is written
(people.py). docs/custody.md is the operator's account of all of it.
"""

from kiosk.contract.custody import INVALID_CATEGORIES as CATEGORIES
from kiosk.contract.custody import OUTCOMES

__all__ = ["CATEGORIES", "CATEGORY_LABELS", "DEFAULT_TZ", "OUTCOMES"]

CATEGORY_LABELS = {"gagal-encode": "Gagal encode", "gagal-cetak": "Gagal cetak",
                   "rusak": "Rusak", "perubahan-elemen-data": "Perubahan elemen data"}
DEFAULT_TZ = "Asia/Jakarta"  # WIB; an office in WITA/WIT passes --tz
