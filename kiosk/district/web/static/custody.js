// The custody page: /api/custody every few seconds, drawn with textContent only.
"use strict";
const REFRESH_MS = 3000;
const LABELS = {"gagal-encode": "Gagal encode", "gagal-cetak": "Gagal cetak", "rusak": "Rusak",
                "perubahan-elemen-data": "Perubahan elemen data"};

function cell(row, text, cls, field) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  if (field) td.dataset.field = field;
  row.appendChild(td);
  return td;
}

function header(categories) {
  const row = document.querySelector("#counts tr.cols");
  if (row.children.length) return;
  for (let i = 0; i < 2; i++) {
    for (const name of ["Dicetak", ...categories.map((c) => LABELS[c] || c)]) {
      const th = document.createElement("th");
      th.textContent = name;
      row.appendChild(th);
    }
  }
}

function countsRow(body, name, counts, categories, cls) {
  const row = document.createElement("tr");
  row.dataset.station = name;
  if (cls) row.className = cls;
  cell(row, name === "" ? "Kabupaten/kota" : name);
  for (const span of ["today", "month"]) {
    const part = counts[span];
    cell(row, String(part.printed), "n", `${span}-printed`);
    for (const c of categories) cell(row, String(part.invalid[c] || 0), "n", `${span}-${c}`);
  }
  body.appendChild(row);
}

function draw(doc) {
  document.getElementById("district").textContent = doc.district;
  document.getElementById("today").textContent = `${doc.today}, ${doc.zone}`;
  document.getElementById("ba-pdf").href = doc.links.pdf;
  document.getElementById("ba-csv").href = doc.links.csv;
  const status = document.getElementById("status");
  status.textContent = !doc.configured ? "Register blanko tidak diatur (kiosk district web --custody-db FILE)."
    : !doc.ready ? "Register blanko belum ada: jalankan kiosk district custody keep."
    : `Diperbarui ${new Date().toLocaleTimeString("id-ID")}.`;
  status.dataset.ready = String(Boolean(doc.ready));
  header(doc.categories);
  const body = document.querySelector("#counts tbody");
  body.replaceChildren();
  for (const s of doc.stations) countsRow(body, s.station, s, doc.categories);
  if (doc.district_totals) countsRow(body, "", doc.district_totals, doc.categories, "district");
  const flagged = document.querySelector("#flagged tbody");
  flagged.replaceChildren();
  for (const f of doc.flagged) {
    const row = document.createElement("tr");
    row.className = "flag";
    row.dataset.uid = f.uid;
    row.dataset.kind = f.foreign ? "foreign" : "duplicate";
    cell(row, f.uid);
    cell(row, f.station);
    cell(row, f.at.replace("T", " ").slice(0, 19));  // the zone is in the heading
    cell(row, f.record_id || "-");
    cell(row, f.outcome === "printed" ? "dicetak" : `tidak valid: ${LABELS[f.category] || f.category}`);
    const problems = [];
    if (f.foreign) problems.push("Blanko asing: UID tidak ada di manifest pengiriman");
    if (f.duplicate) problems.push(`UID ganda: ${f.duplicate}`);
    cell(row, problems.join("; "));
    flagged.appendChild(row);
  }
  document.getElementById("flag-none").hidden = doc.flagged.length > 0;
}

async function refresh() {
  try {
    const response = await fetch("/api/custody", {cache: "no-store"});
    if (response.ok) draw(await response.json());
  } catch (error) {
    document.getElementById("status").textContent = "Server distrik tidak terjangkau.";
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
