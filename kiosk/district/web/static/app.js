// The district's page: renders /api/district and /api/history, kept live by /api/stream (SSE).
// Plain JS, no library: the charts are SVG drawn here. Texts in Bahasa Indonesia and English.
"use strict";

const TEXT = {
  id: {
    "title": "Cetak E-KTP", "district": "Kabupaten", "backlog": "Antrean distrik",
    "waiting": "menunggu di router", "at-stations": "di stasiun",
    "no-printer": "menunggu printer jenisnya (tidak ada stasiun yang mencetaknya)",
    "doc-ektp": "E-KTP", "doc-kia": "KIA",
    "rate": "Kartu tercetak per jam", "forecast": "Perkiraan",
    "done-at": "Antrean selesai", "blanks-needed": "Blangko dibutuhkan",
    "blanks-on-hand": "tersedia", "blanks-short": "kurang",
    "per-hour": "Kartu tercetak per jam, 24 jam terakhir", "stations": "Stasiun",
    "no-stations": "Belum ada stasiun terlihat.", "updated": "Diperbarui",
    "order-now": "Pesan blangko sekarang: kurang {n} kartu",
    "never": "tidak dapat diperkirakan: tidak ada stasiun yang mencetak",
    "now": "sekarang (antrean kosong)", "unknown": "belum diketahui (stok belum dicatat)",
    "a-window": "Laju dari kartu yang benar-benar selesai dalam {m} menit terakhir ({n} kartu).",
    "a-stations": "Hanya stasiun yang dapat mencetak dihitung: {list}.",
    "a-none": "Tidak ada stasiun yang dapat mencetak saat ini.",
    "a-spoil": "Setiap kartu butuh 1 blangko ditambah tingkat rusak sejauh ini ({p}%).",
    "a-router": "Antrean dari router.",
    "a-queues": "Router tidak terlihat: antrean hanya dari antrean stasiun.",
    "a-hand": "Blangko tersedia = stok tercatat di stasiun (stasiun tanpa pengisian tercatat tidak dihitung).",
    "broker-down": "Broker MQTT tidak terhubung: angka di bawah adalah yang terakhir diketahui.",
    "router-down": "Router distrik mati: catatan baru tidak dikirim ke stasiun.",
    "router-unknown": "Router distrik belum terlihat di broker ini.",
    "server-down": "Halaman kehilangan hubungan dengan servernya: mencoba lagi…",
    "link": "Jaringan", "online": "daring", "offline": "luring",
    "printer": "Printer", "reasons": "Keterangan", "blanks": "Blangko tersisa",
    "to-empty": "habis dalam", "queue": "Antrean", "queue-parts": "{p} menunggu · {h} ditahan · {x} dicetak",
    "counts": "Tercetak / rusak / ditolak", "age": "Status diterima",
    "route": "Dikirimi catatan", "yes": "ya", "no": "tidak", "stock": "Stok blangko",
    "ago": "{s} detik lalu", "ago-min": "{m} menit lalu", "not-booked": "belum dicatat",
    "idle": "siap", "processing": "sedang mencetak", "stopped": "berhenti", "no-state": "belum ada status",
    "none": "tidak ada", "min": "{m} menit", "hours": "{h} jam {m} menit",
    "hour-axis": "jam",
    "invalid-state": "status stasiun tidak sah: {why}",
    "invalid-messages": "stasiun {id} mengirim {n} pesan tidak sah",
    "refused-fields": "nilai ditolak: {list}",
    "lies": "router: stasiun {id} melaporkan {n} catatan yang tidak pernah dikirim kepadanya",
    "doubtful": "meragukan: lebih dari stok dan pengisian yang tercatat",
    "a-rate-router": "Laju dari catatan yang menurut router selesai di stasiun tujuannya.",
    "a-rate-stations": "Router tidak terlihat: laju hanya dari laporan stasiun sendiri.",
    "a-doubtful": "Stok meragukan tidak dihitung: {list}.",
    "cannot-show": "stasiun ini tidak dapat ditampilkan",
  },
  en: {
    "title": "E-KTP printing", "district": "District", "backlog": "District backlog",
    "waiting": "waiting at the router", "at-stations": "at stations",
    "no-printer": "waiting for a printer of its kind (no station prints it)",
    "doc-ektp": "E-KTP", "doc-kia": "KIA",
    "rate": "Cards printed per hour", "forecast": "Forecast",
    "done-at": "Backlog printed by", "blanks-needed": "Blank cards needed",
    "blanks-on-hand": "on hand", "blanks-short": "short",
    "per-hour": "Cards printed per hour, last 24 hours", "stations": "Stations",
    "no-stations": "No station seen yet.", "updated": "Updated",
    "order-now": "Order blank cards now: {n} cards short",
    "never": "cannot be estimated: no station is printing",
    "now": "now (nothing waiting)", "unknown": "not known (no stock booked)",
    "a-window": "Rate from cards actually completed in the last {m} minutes ({n} cards).",
    "a-stations": "Only stations that can print are counted: {list}.",
    "a-none": "No station can print now.",
    "a-spoil": "Each card takes 1 blank plus the spoilage so far ({p}%).",
    "a-router": "Backlog from the router.",
    "a-queues": "Router not seen: backlog from the stations' queues only.",
    "a-hand": "Blank cards on hand = the stations' booked stock (stations with no refill booked are not counted).",
    "broker-down": "The MQTT broker is unreachable: the figures below are the last known.",
    "router-down": "The district router is down: new records are not sent to stations.",
    "router-unknown": "The district router has not been seen on this broker.",
    "server-down": "The page lost its server: retrying…",
    "link": "Link", "online": "online", "offline": "offline",
    "printer": "Printer", "reasons": "Reasons", "blanks": "Blank cards left",
    "to-empty": "empty in", "queue": "Queue", "queue-parts": "{p} pending · {h} held · {x} printing",
    "counts": "Printed / spoiled / rejected", "age": "State received",
    "route": "Router sends it records", "yes": "yes", "no": "no", "stock": "Blank card stock",
    "ago": "{s} s ago", "ago-min": "{m} min ago", "not-booked": "not booked",
    "idle": "ready", "processing": "printing", "stopped": "stopped", "no-state": "no state yet",
    "none": "none", "min": "{m} min", "hours": "{h} h {m} min",
    "hour-axis": "hour",
    "invalid-state": "invalid state from the station: {why}",
    "invalid-messages": "station {id} sent {n} invalid messages",
    "refused-fields": "values refused: {list}",
    "lies": "router: station {id} reported {n} records never sent to it",
    "doubtful": "doubtful: above the stock and refills on record",
    "a-rate-router": "Rate from the records the router saw completed at the station it sent them to.",
    "a-rate-stations": "Router not seen: rate from the stations' own reports only.",
    "a-doubtful": "Doubtful stock not counted: {list}.",
    "cannot-show": "this station cannot be shown",
  },
};

// Printer-state reasons (IPP keywords) and the router's refusals, in plain words.
const WORDS = {
  "media-jam-error": ["Kartu macet di printer", "Card jammed in the printer"],
  "media-empty-error": ["Blangko habis", "Out of blank cards"],
  "media-low-warning": ["Blangko hampir habis", "Blank cards running low"],
  "marker-supply-empty-error": ["Pita printer habis", "Printer ribbon used up"],
  "marker-supply-low-warning": ["Pita printer hampir habis", "Printer ribbon running low"],
  "cover-open-error": ["Tutup printer terbuka", "Printer cover open"],
  "output-area-full-error": ["Wadah kartu jadi penuh", "Output hopper full"],
  "timed-out-error": ["Printer tidak menjawab", "Printer not answering"],
  "other-error": ["Kesalahan printer lain", "Other printer error"],
  "spool-area-full-error": ["Penyimpanan stasiun penuh", "Station storage full"],
  "offline-report": ["Printer tidak terhubung", "Printer not connected"],
  "connecting-to-device": ["Menghubungkan ke printer", "Connecting to the printer"],
  "paused": ["Dijeda oleh operator", "Paused by the operator"],
  "door-open-warning": ["Pintu baki blangko terbuka", "Blank-card tray door open"],
  "ledger-mismatch-warning": ["Hitungan stok tidak cocok dengan sensor", "Stock count disagrees with the sensor"],
  "cleaner-life-almost-over-warning": ["Pembersih printer hampir habis", "Printer cleaner nearly worn out"],
  "receipt-paper-low-warning": ["Kertas struk hampir habis", "Receipt paper low"],
  "receipt-paper-empty-warning": ["Kertas struk habis", "Receipt paper empty"],
  "receipt-offline-report": ["Printer struk tidak terhubung", "Receipt printer not connected"],
  "shift-report": ["Laporan shift", "Shift report"],
  "offline": ["stasiun luring", "the station is offline"],
  "no-state": ["stasiun belum mengirim status", "the station has sent no state"],
  "not-accepting": ["stasiun tidak menerima pekerjaan", "the station is not accepting jobs"],
  "stopped": ["printer berhenti", "the printer is stopped"],
  "no-stock": ["blangko habis", "no blank cards left"],
  "invalid-state": ["status stasiun tidak sah", "the station's state is invalid"],
};

let lang = localStorage.getItem("kiosk-lang") === "en" ? "en" : "id";
let district = null;
let history = null;
let serverUp = true;
let renderPending = false;
const cards = new Map();  // station id -> { key, node }: a card is rebuilt only when it changed

// Look-ups by a station's word: own members only, never Object.prototype's (constructor,
// __proto__, toString...), and always a string.
function lookup(table, key) {
  return typeof key === "string" && Object.hasOwn(table, key) ? table[key] : undefined;
}

function t(key, values = {}) {
  const text = lookup(TEXT[lang], key) ?? String(key);
  return text.replace(/\{(\w+)\}/g, (_, name) =>
    String(Object.hasOwn(values, name) ? values[name] ?? "" : ""));
}

function words(keyword) {
  const known = lookup(WORDS, keyword);
  return known ? known[lang === "id" ? 0 : 1] : String(keyword);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

function setText(id, text, value = text) {
  const node = document.getElementById(id);
  const raw = value === null ? "null" : String(value);
  if (node.textContent !== text) node.textContent = text;
  if (node.dataset.value !== raw) node.dataset.value = raw;
}

function duration(minutes) {
  if (typeof minutes !== "number") return "–";
  const whole = Math.round(minutes);
  const h = Math.floor(whole / 60), m = whole % 60;
  return h ? t("hours", { h, m: String(m).padStart(2, "0") }) : t("min", { m });
}

function age(seconds) {
  if (typeof seconds !== "number") return "–";
  return seconds < 120 ? t("ago", { s: seconds }) : t("ago-min", { m: Math.round(seconds / 60) });
}

function num(n) {
  return n.toLocaleString(lang === "id" ? "id-ID" : "en-GB", { maximumFractionDigits: n < 10 ? 1 : 0 });
}

function localTime(iso) {
  const locale = lang === "id" ? "id-ID" : "en-GB";
  return new Date(iso).toLocaleString(locale, { weekday: "short", day: "numeric", month: "short",
                                                hour: "2-digit", minute: "2-digit" });
}

// -- rendering -------------------------------------------------------------------------------

function render() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-t]")) {
    const text = t(node.dataset.t);
    if (node.textContent !== text) node.textContent = text;
  }
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
  }
  renderBanners();
  if (!district) return;
  document.getElementById("district").textContent = district.district;
  setText("updated", localTime(district.ts), district.ts);
  renderSummary();
  renderStations();
  renderHourly();
}

function renderBanners() {
  const box = document.getElementById("banners");
  const banners = [];
  if (!serverUp) banners.push(["server-down", "server-down"]);
  if (district && district.broker !== "online") banners.push(["broker-down", "broker-down"]);
  else if (district && district.router === "offline") banners.push(["router-down", "router-down"]);
  else if (district && district.router === "unknown") banners.push(["router-unknown", "router-unknown warn"]);
  const shown = banners.map(([key]) => t(key)).join("|");
  if (box.dataset.shown === shown) return;
  box.dataset.shown = shown;
  box.replaceChildren(...banners.map(([key, cls]) =>
    el("div", { class: `banner ${cls}`, "data-banner": key, role: "alert" }, t(key))));
}

// Each document's blanks apart once the district prints more than one (a KIA blank is no
// E-KTP blank): what it needs, has and lacks.
function renderDocuments(byDocument) {
  const list = document.getElementById("by-document");
  const documents = ["ektp", "kia"].filter(doc => Object.hasOwn(byDocument, doc));
  list.hidden = documents.length < 2;
  const lines = documents.map(doc => {
    const f = byDocument[doc];
    const onHand = f.blanks_on_hand === null ? t("unknown") : num(f.blanks_on_hand);
    return `${t("doc-" + doc)}: ${t("blanks-needed")} ${num(f.blanks_needed)} · `
      + `${t("blanks-on-hand")} ${onHand} · ${t("blanks-short")} ${num(f.blanks_short)}`;
  });
  if (list.dataset.lines === lines.join("|")) return;
  list.dataset.lines = lines.join("|");
  list.replaceChildren(...lines.map(line => el("li", {}, line)));
}

function renderSummary() {
  const { backlog, forecast } = district;
  const total = backlog.waiting + backlog.at_stations;
  setText("backlog-total", num(total), total);
  setText("backlog-waiting", num(backlog.waiting), backlog.waiting);
  setText("backlog-at", num(backlog.at_stations), backlog.at_stations);
  const stranded = (backlog.no_printer || []).filter(doc => doc === "ektp" || doc === "kia");
  document.getElementById("no-printer").hidden = stranded.length === 0;
  setText("no-printer-docs", stranded.map(doc =>
    `${t("doc-" + doc)} ${num((backlog.by_document || {})[doc] || 0)}`).join(", ") || "–");
  setText("rate", num(district.rate_per_hour), district.rate_per_hour);
  const done = forecast.backlog_done_at;
  setText("done-at", done === null ? t("never") : total === 0 ? t("now") : localTime(done), done);
  renderDocuments(forecast.by_document || {});
  setText("blanks-needed", num(forecast.blanks_needed), forecast.blanks_needed);
  setText("blanks-on-hand", forecast.blanks_on_hand === null ? t("unknown")
          : num(forecast.blanks_on_hand), forecast.blanks_on_hand);
  setText("blanks-short", num(forecast.blanks_short), forecast.blanks_short);
  const order = document.getElementById("order-now");
  if (order.hidden !== (forecast.blanks_short <= 0)) order.hidden = forecast.blanks_short <= 0;
  const orderText = t("order-now", { n: num(forecast.blanks_short) });
  if (order.textContent !== orderText) order.textContent = orderText;
  const a = forecast.assumptions || {};
  const lines = [t("a-window", { m: Math.round((a.rate_window_s || 0) / 60), n: a.cards_in_window }),
                 (a.stations_counted || []).length
                   ? t("a-stations", { list: a.stations_counted.join(", ") }) : t("a-none"),
                 t("a-spoil", { p: ((a.spoiled_per_printed || 0) * 100).toFixed(1) }),
                 t("a-hand"),
                 t(a.backlog_from === "router" ? "a-router" : "a-queues"),
                 t(a.rate_from === "router" ? "a-rate-router" : "a-rate-stations")];
  if ((a.stock_doubtful || []).length) lines.push(t("a-doubtful", { list: a.stock_doubtful.join(", ") }));
  const list = document.getElementById("assumptions");
  if (list.dataset.shown !== lines.join("|")) {
    list.dataset.shown = lines.join("|");
    list.replaceChildren(...lines.map((line) => el("li", {}, line)));
    document.getElementById("rate-note").textContent = lines[0];
  }
}

function renderStations() {
  const grid = document.getElementById("stations");
  document.getElementById("no-stations").hidden = district.stations.length > 0;
  const nodes = district.stations.map((s) => {
    const points = history && history.stock[s.id];
    const key = JSON.stringify([lang, { ...s, state_age_s: null }, points && points.length,
                                points && points[points.length - 1]]);
    let cached = cards.get(s.id);
    if (!cached || cached.key !== key) {
      cached = { key, node: safeCard(s) };
      cards.set(s.id, cached);
    }
    const ageCell = cached.node.querySelector('[data-field="age"]');
    const ageText = age(s.state_age_s);
    if (ageCell && ageCell.textContent !== ageText) ageCell.textContent = ageText;
    return cached.node;
  });
  const same = nodes.length === grid.children.length
    && nodes.every((node, i) => grid.children[i] === node);
  if (!same) grid.replaceChildren(...nodes);
  if (cards.size > nodes.length) {
    const seen = new Set(district.stations.map((s) => s.id));
    for (const id of cards.keys()) if (!seen.has(id)) cards.delete(id);
  }
}

// One station's odd data must never stop the others' cards from updating.
function safeCard(s) {
  try {
    return stationCard(s);
  } catch (error) {
    console.error("station card", s && s.id, error);
    return el("article", { class: "station fault", "data-station": String(s && s.id) },
              el("h3", {}, el("span", {}, String(s && s.id))), el("p", {}, t("cannot-show")));
  }
}

function stationCard(s) {
  const faulty = s.printer_state_reasons.some((r) => r.endsWith("-error"));
  const cls = s.availability !== "online" ? "away" : faulty || !s.takes_records ? "fault" : "good";
  const link = el("span", { class: `badge ${s.availability === "online" ? "" : "off"}`,
                            "data-field": "link" }, t(s.availability));
  const reasons = el("dd", { class: "reasons", "data-field": "reasons",
                             "data-reasons": s.printer_state_reasons.join(" ") });
  if (!s.printer_state_reasons.length) reasons.append(t("none"));
  s.printer_state_reasons.forEach((r, i) => {
    const kind = r.endsWith("-error") ? "err" : r.endsWith("-warning") ? "wrn" : "";
    reasons.append(i ? ", " : "", el("span", { class: kind, title: r }, words(r)));
  });
  const stock = s.stock.remaining === null ? t("not-booked")
    : `${s.stock.remaining} (${t("to-empty")} ${duration(s.stock.minutes_to_empty)})`
      + (s.stock_doubtful ? ` — ${t("doubtful")}` : "");
  const route = s.takes_records ? t("yes") : `${t("no")}: ${words(s.why_not)}`;
  const rows = [
    ["printer", el("dd", { "data-field": "printer" },
                   s.printer_state ? t(s.printer_state) : t("no-state"))],
    ["reasons", reasons],
    ["blanks", el("dd", { "data-field": "stock" }, stock)],
    ["queue", el("dd", { "data-field": "queue" },
                 t("queue-parts", { p: s.queue.pending, h: s.queue.held, x: s.queue.processing }))],
    ["counts", el("dd", { "data-field": "counters" },
                  `${s.counters.printed} / ${s.counters.spoiled} / ${s.counters.rejected}`)],
    ["age", el("dd", { "data-field": "age" }, age(s.state_age_s))],
    ["route", el("dd", { class: `route ${s.takes_records ? "yes" : "no"}`, "data-field": "route",
                         "data-why-not": s.why_not || "" }, route)],
  ];
  const list = el("dl");
  for (const [key, value] of rows) list.append(el("dt", {}, t(key)), value);
  const card = el("article", { class: `station ${cls}`, "data-station": s.id },
                  el("h3", {}, el("span", {}, s.id), link), list);
  const warnings = [];
  if (s.state_invalid) warnings.push(["state-invalid", t("invalid-state", { why: s.state_invalid })]);
  if (s.invalid_messages) warnings.push(["invalid-messages", t("invalid-messages", { id: s.id, n: s.invalid_messages })]);
  if ((s.refused || []).length) warnings.push(["refused", t("refused-fields", { list: s.refused.join(", ") })]);
  if (s.lies) warnings.push(["lies", t("lies", { id: s.id, n: s.lies })]);
  for (const [field, text] of warnings) card.append(el("p", { class: "warning", "data-field": field }, text));
  const points = history && history.stock[s.id];
  if (points && points.some((p) => p[1] !== null)) {
    card.append(el("div", { class: "note" }, t("stock")), stockPlot(points, s.stock.low_threshold));
  }
  return card;
}

// -- charts (SVG) ----------------------------------------------------------------------------

let drawnHourly = null;

function renderHourly() {
  const box = document.getElementById("hourly");
  if (!history || drawnHourly === history.ts + lang) return;
  drawnHourly = history.ts + lang;
  const bars = history.cards_per_hour;
  const width = 720, height = 160, left = 36, bottom = 20;
  const top = Math.max(1, ...bars.map((b) => b[1]));
  const step = (width - left) / bars.length;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
                             "aria-label": t("per-hour") });
  chart.append(svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }));
  chart.append(svg("text", { x: 0, y: 12 }, String(top)), svg("text", { x: 0, y: height - bottom }, "0"));
  bars.forEach(([iso, count], i) => {
    const h = (height - bottom - 16) * count / top;
    const x = left + i * step;
    const bar = svg("rect", { class: "bar", x: x + 1, y: height - bottom - h, width: step - 2, height: h });
    bar.append(svg("title", {}, `${localTime(iso)}: ${count}`));
    chart.append(bar);
    if (i % 3 === 0) {
      const hour = new Date(iso).getHours();
      chart.append(svg("text", { x, y: height - 4 }, `${String(hour).padStart(2, "0")}:00`));
    }
  });
  box.replaceChildren(chart);
}

function stockPlot(points, low) {
  const width = 280, height = 60, pad = 4;
  const now = Date.parse(history.ts) / 1000;
  const first = Math.min(points[0][0], now - 120);  // since the first point, 2 min at least
  const values = points.filter((p) => p[1] !== null).map((p) => p[1]);
  const top = Math.max(1, ...values, low || 0);
  const x = (at) => pad + (width - 2 * pad) * (at - first) / Math.max(1, now - first);
  const y = (n) => height - pad - (height - 2 * pad) * n / top;
  let path = "";
  let last = null;
  for (const [at, n] of points) {
    if (n === null) continue;
    path += last === null ? `M${x(at)},${y(n)}` : `H${x(at)}V${y(n)}`;
    last = n;
  }
  if (last !== null) path += `H${x(now)}`;
  const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", class: "stock",
                            role: "img", "aria-label": t("stock") });
  if (typeof low === "number") {
    plot.append(svg("line", { class: "low", x1: pad, x2: width - pad, y1: y(low), y2: y(low) }));
  }
  plot.append(svg("path", { class: "line", d: path }));
  plot.append(svg("text", { x: width - pad, y: 12, "text-anchor": "end" }, String(last ?? "")));
  return plot;
}

// -- live data -------------------------------------------------------------------------------

// Updates can come faster than a large district renders: draw only the latest, once a frame.
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; render(); });
}

function connect() {
  const stream = new EventSource("/api/stream");
  stream.addEventListener("district", (event) => {
    serverUp = true;
    district = JSON.parse(event.data);
    scheduleRender();
  });
  stream.addEventListener("history", (event) => {
    history = JSON.parse(event.data);
    scheduleRender();
  });
  stream.onerror = () => { serverUp = false; renderBanners(); };  // EventSource retries by itself
}

for (const button of document.querySelectorAll("[data-lang]")) {
  button.addEventListener("click", () => {
    lang = button.dataset.lang;
    localStorage.setItem("kiosk-lang", lang);
    render();
  });
}
render();
connect();
