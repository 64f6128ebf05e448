"""A private CUPS server with a simulated card printer behind it (card-printer.md,
"Testing IPP printers").

`CupsServer` runs ``cupsd -f`` as a child process with its own configuration,
spool, cache, state and log directories under one directory, on a free
loopback port, and kills it on `stop`. `CardPrinterSim` is the printer at the
end of its queue: the backend `kiosk/sim/cups_backend.py`, installed into the
server's private ServerBin, prints through it; the simulator keeps its
counters, its standing faults and every document. ``kiosk sim cups-printer``
sets one up and prints the queue's URI as its first line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from kiosk.sim.cups_backend import FAULTS, read_json, write_json

INSTALL_HINT = ("cupsd is missing: install it with 'sudo apt-get install cups-daemon cups-client'"
                " (Debian, Ubuntu, Raspberry Pi OS), or run scripts/setup")
CUPS_LIB = Path("/usr/lib/cups")
MEDIA = "iso_id-1_53.98x85.6mm"
FORMATS = ("image/pwg-raster", "image/png", "application/pdf")
BACKEND = "kiosksim"
START_TIMEOUT = 15.0


class CupsMissing(RuntimeError):
    """No cupsd or lpadmin here: the message says how to install them."""


def find_cups() -> tuple[str, str]:
    """Paths of cupsd and lpadmin, or CupsMissing with install advice."""
    cupsd = shutil.which("cupsd") or "/usr/sbin/cupsd"
    lpadmin = shutil.which("lpadmin") or "/usr/sbin/lpadmin"
    if not (os.access(cupsd, os.X_OK) and os.access(lpadmin, os.X_OK)
            and (CUPS_LIB / "daemon").is_dir()):
        raise CupsMissing(INSTALL_HINT)
    return cupsd, lpadmin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CardPrinterSim:
    """The simulated card printer behind a CUPS queue; its state lives in *home*."""

    def __init__(self, home: str | Path, *, card_seconds: float = 0.2) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "documents").mkdir(exist_ok=True)
        if not (self.home / "control.json").exists():
            self._control(card_seconds=card_seconds, faults=[], jam_next=False, ribbon_level=80)
        if not (self.home / "state.json").exists():
            write_json(self.home / "state.json", {"taken": 0, "printed": 0})

    def _control(self, **changes: object) -> None:
        control = read_json(self.home / "control.json", {})
        control.update(changes)
        write_json(self.home / "control.json", control)

    def raise_fault(self, reason: str) -> None:
        """A fault that stands until `clear`: one of FAULTS (IPP keywords)."""
        if reason not in FAULTS:
            raise ValueError(f"unknown fault {reason!r}; known: {', '.join(FAULTS)}")
        faults = set(read_json(self.home / "control.json", {}).get("faults", []))
        self._control(faults=sorted(faults | {reason}))

    def clear(self, reason: str | None = None) -> None:
        """A person fixes *reason* (all faults when None)."""
        faults = set(read_json(self.home / "control.json", {}).get("faults", []))
        self._control(faults=sorted(faults - {reason}) if reason else [])

    def jam_next_card(self) -> None:
        """The next card jams half-way through the print (its blank is taken)."""
        self._control(jam_next=True)

    def set_ribbon_level(self, percent: int) -> None:
        self._control(ribbon_level=percent)

    def kill_at(self, title: str, moment: str, pid: int) -> None:
        """SIGKILL *pid* once the job titled *title* reaches *moment* (start, taken, end)."""
        if moment not in ("start", "taken", "end"):
            raise ValueError(f"unknown moment {moment!r}: start, taken or end")
        write_json(self.home / "kill.json", {"title": title, "moment": moment, "pid": pid})

    def kill_done(self) -> bool:
        """The planned kill happened (its plan is used up)."""
        return not (self.home / "kill.json").exists()

    def stop_on_fault(self, stop: bool = True) -> None:
        """Behave as vendor backends do: a fault or a jam stops the queue (exit 4)."""
        self._control(stop_on_fault=stop)

    @property
    def counters(self) -> dict[str, int]:
        return read_json(self.home / "state.json", {"taken": 0, "printed": 0})

    @property
    def printed(self) -> int:
        return self.counters["printed"]

    def times(self) -> list[dict]:
        """Per printed job: monotonic start, picked, end (see cups_backend)."""
        path = self.home / "times.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def documents(self) -> list[Path]:
        return sorted((self.home / "documents").iterdir())

    def job_options(self) -> list[str]:
        """The options cupsd gave the backend with each card printed, in order."""
        return [path.read_text() for path in sorted((self.home / "options").iterdir())]

    def wait_for_cards(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.printed < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


class CupsServer:
    """A private cupsd under *root* with the queue *queue* on the simulated printer."""

    def __init__(self, root: str | Path, *, queue: str = "card", card_seconds: float = 0.2,
                 error_policy: str = "abort-job", preserve_job_files: bool = False,
                 formats: tuple[str, ...] = FORMATS, system_filters: bool = False,
                 ppd: str | None = None, model: str | None = None,
                 subscriptions: bool = True, manual_slot: bool = False) -> None:
        """*system_filters*: run the machine's CUPS filters (cups-filters, gutenprint) for
        conversions, else none, so the queue takes exactly its PPD's *formats* whatever
        else the machine has. *ppd* (a file) or *model* (an ``lpadmin -m`` driver name)
        replaces the simulated printer's own PPD; the backend stays the simulator.
        *manual_slot*: the PPD offers a manual feed slot (IPP ``media-source`` manual)."""
        self.root = Path(root)
        self.system_filters = system_filters
        self.ppd, self.model = ppd, model
        self.subscriptions = subscriptions  # False: a server that offers none (polling)
        self.queue = queue
        self.error_policy = error_policy
        self.preserve_job_files = preserve_job_files
        self.formats = formats
        self.manual_slot = manual_slot
        self.cupsd, self.lpadmin = find_cups()
        self.port = free_port()
        self.printer = CardPrinterSim(self.root / "printer", card_seconds=card_seconds)
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        return f"ipp://{self.host}/printers/{self.queue}"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    def start(self) -> CupsServer:
        self._write_configuration()
        log = open(self.root / "log" / "cupsd.out", "ab")  # noqa: SIM115 (kept by the child)
        self.process = subprocess.Popen(
            [self.cupsd, "-f", "-c", str(self.root / "etc" / "cupsd.conf"),
             "-s", str(self.root / "etc" / "cups-files.conf")],
            stdout=log, stderr=log, start_new_session=True,
        )
        log.close()
        try:
            self._wait_listening()
            self._add_queue()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> CupsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def path(self) -> str:  # for serve_until_signalled: the first line printed
        return self.uri

    def lp(self, *args: str) -> str:
        """Run an administration command (lpadmin, cupsenable, …) against this server."""
        tool = args[0] if "/" in args[0] else (shutil.which(args[0]) or f"/usr/sbin/{args[0]}")
        done = subprocess.run([tool, "-h", self.host, *args[1:]], capture_output=True,
                              text=True, timeout=15, env={**os.environ, "CUPS_SERVER": self.host})
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def jobs(self) -> dict:
        """Every job the server still lists, ended ones included (Get-Jobs which-jobs=all)."""
        import cups  # the `ipp` extra; only what looks at the server needs it

        cups.setServer("127.0.0.1")
        cups.setPort(self.port)
        return cups.Connection(host="127.0.0.1", port=self.port).getJobs(which_jobs="all")

    def spooled_files(self) -> list[Path]:
        """Documents (d*) still in the server's spool."""
        return sorted(self.spool.glob("d*"))

    def _write_configuration(self) -> None:
        for part in ("etc", "spool", "spool/tmp", "cache", "state", "log", "bin/backend"):
            (self.root / part).mkdir(parents=True, exist_ok=True)
        for part in ("daemon", "filter", "notifier", "cgi-bin", "monitor", "driver"):
            link = self.root / "bin" / part
            if part == "filter" and not self.system_filters:
                link.mkdir(exist_ok=True)  # no converter: the queue takes its PPD's formats
            elif (CUPS_LIB / part).exists() and not link.exists():
                link.symlink_to(CUPS_LIB / part)
        self._install_backend()
        (self.root / "etc" / "cupsd.conf").write_text(self._cupsd_conf())
        (self.root / "etc" / "cups-files.conf").write_text(self._files_conf())
        (self.root / "etc" / "ppd").mkdir(exist_ok=True)
        os.chmod(self.root, 0o755)

    def _install_backend(self) -> None:
        """Our backend, run with this Python; mode 0700 so cupsd running as root runs it
        as root (it writes the printer's state), else as us."""
        target = self.root / "bin" / "backend" / BACKEND
        source = Path(__file__).with_name("cups_backend.py").read_text()
        target.write_text(f"#!{sys.executable}\n{source}")
        os.chmod(target, 0o700)

    def _cupsd_conf(self) -> str:
        preserve = "Yes" if self.preserve_job_files else "No"
        return f"""# A private cupsd for tests and `kiosk sim cups-printer` (kiosk/sim/cups.py).
Listen {self.host}
ServerName 127.0.0.1
LogLevel info
AccessLogLevel all
MaxLogSize 0
Browsing No
WebInterface No
DefaultAuthType None
ErrorPolicy {self.error_policy}
PreserveJobHistory Yes
PreserveJobFiles {preserve}
JobRetryInterval 1
MaxJobTime 0
<Location />
  Order allow,deny
  Allow all
</Location>
<Location /admin>
  Order allow,deny
  Allow all
</Location>
<Policy default>
{self._no_subscriptions()}  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
"""

    def _no_subscriptions(self) -> str:
        if self.subscriptions:
            return ""
        return ("  <Limit Create-Job-Subscription Create-Printer-Subscription>\n"
                "    AuthType Basic\n    Require user no-such-user\n  </Limit>\n")

    def _files_conf(self) -> str:
        root = self.root
        lines = [
            f"ServerRoot {root}/etc", f"ServerBin {root}/bin", "DataDir /usr/share/cups",
            f"RequestRoot {root}/spool", f"TempDir {root}/spool/tmp", f"CacheDir {root}/cache",
            f"StateDir {root}/state", f"ErrorLog {root}/log/error_log",
            f"AccessLog {root}/log/access_log", f"PageLog {root}/log/page_log",
            "FileDevice No", "Sandboxing Relaxed",
        ]
        if os.getuid() != 0:
            import grp
            import pwd
            lines += [f"User {pwd.getpwuid(os.getuid()).pw_name}",
                      f"Group {grp.getgrgid(os.getgid()).gr_name}",
                      f"SystemGroup {grp.getgrgid(os.getgid()).gr_name}"]
        return "\n".join(lines) + "\n"

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"cupsd exited: see {self.root / 'log'}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"cupsd did not listen on {self.host} within {START_TIMEOUT:g} s")

    def _add_queue(self) -> None:
        if self.model:
            driver = ["-m", self.model]
        else:
            ppd = Path(self.ppd) if self.ppd else self.root / "card.ppd"
            if not self.ppd:
                ppd.write_text(card_ppd(self.formats, manual_slot=self.manual_slot))
            driver = ["-P", str(ppd)]
        self.lp("lpadmin", "-p", self.queue, "-E", "-v", f"{BACKEND}:{self.printer.home}",
                *driver, "-o", f"printer-error-policy={self.error_policy}")
        self.lp("cupsenable", self.queue)
        self.lp("cupsaccept", self.queue)


def card_ppd(formats: tuple[str, ...] = FORMATS, *, manual_slot: bool = False) -> str:
    """A PPD for an ID-1 card printer that takes PNG, PWG raster and PDF as they are
    (the vendor's driver, here the backend, separates the panels). CUPS names the size
    from the PPD (``om_cr80_53.98x85.6mm``); a job's ``iso_id-1_53.98x85.6mm`` matches
    it by its dimensions, as it would a Fargo or Magicard PPD's card size."""
    filters = "\n".join(f'*cupsFilter2: "{fmt} {fmt} 0 -"' for fmt in formats)
    # CUPS tells a PPD's InputSlot as IPP media-source (Manual: "manual"), as desk mode needs.
    slots = ("*OpenUI *InputSlot/Card Source: PickOne\n*OrderDependency: 20 AnySetup *InputSlot\n"
             "*DefaultInputSlot: Auto\n*InputSlot Auto/Feeder: \"\"\n"
             "*InputSlot Manual/Manual slot: \"\"\n*CloseUI: *InputSlot\n") if manual_slot else ""
    return f"""*PPD-Adobe: "4.3"
*FormatVersion: "4.3"
*FileVersion: "1.0"
*LanguageVersion: English
*LanguageEncoding: ISOLatin1
*PCFileName: "KIOSKSIM.PPD"
*Manufacturer: "Kiosk"
*Product: "(Simulated card printer)"
*ModelName: "Kiosk simulated card printer"
*ShortNickName: "Kiosk card printer"
*NickName: "Kiosk simulated card printer"
*PSVersion: "(3010.000) 0"
*LanguageLevel: "3"
*ColorDevice: True
*DefaultColorSpace: RGB
*FileSystem: False
*Throughput: "1"
*LandscapeOrientation: Plus90
*TTRasterizer: Type42
{filters}
*OpenUI *PageSize/Media Size: PickOne
*OrderDependency: 10 AnySetup *PageSize
*DefaultPageSize: CR80
*PageSize CR80/ID-1 card (CR80): "<</PageSize[153.01 242.65]>>setpagedevice"
*CloseUI: *PageSize
*OpenUI *PageRegion: PickOne
*OrderDependency: 10 AnySetup *PageRegion
*DefaultPageRegion: CR80
*PageRegion CR80/ID-1 card (CR80): "<</PageSize[153.01 242.65]>>setpagedevice"
*CloseUI: *PageRegion
*DefaultImageableArea: CR80
*ImageableArea CR80/ID-1 card (CR80): "0 0 153.01 242.65"
*DefaultPaperDimension: CR80
*PaperDimension CR80/ID-1 card (CR80): "153.01 242.65"
{slots}"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="where the server and printer live (default: a temp dir)")
    parser.add_argument("--card-seconds", type=float, default=2.0, help="time per card")
    parser.add_argument("--queue", default="card")


def run(args: argparse.Namespace) -> int:
    import tempfile

    from kiosk.sim import serve_until_signalled

    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="kiosk-cups-"))
    try:
        server = CupsServer(root, queue=args.queue, card_seconds=args.card_seconds)
    except CupsMissing as missing:
        print(missing, file=sys.stderr)
        return 1
    return serve_until_signalled(server, lambda: json.dumps(
        {"printed": server.printer.printed, "documents": str(server.printer.home / "documents")}))
