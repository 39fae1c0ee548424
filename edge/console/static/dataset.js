// Dataset: captured crops with the model's label; confirm or correct them fast from the keyboard; export.
"use strict";

const KEYS = { a: "acceptable", g: "alert", l: "alert", u: "unknown" };
let items = [];
let selected = 0;
let admin = false;

function tile(item, i) {
  const label = item.label || "none";
  const node = CW.el("div", { class: `item${i === selected ? " selected" : ""}`, dataset: { id: item.id, label } },
    CW.el("img", { src: item.image, alt: item.id, loading: "lazy" }),
    CW.el("div", { class: "row" }, CW.el("span", {}, item.roi), CW.el("span", { class: "muted" }, item.reason)),
    CW.el("div", { class: "row" },
      CW.el("span", { class: "muted" }, `model: ${item.model_label} ${item.probability.toFixed(2)}`),
      CW.el("span", { class: `label ${label}` }, item.label || "unlabelled")));
  node.addEventListener("click", () => { selected = i; mark(); });
  return node;
}

function mark() {
  document.querySelectorAll(".item").forEach((node, i) => node.classList.toggle("selected", i === selected));
  const node = document.querySelectorAll(".item")[selected];
  if (node) node.scrollIntoView({ block: "nearest" });
}

function counts(c) {
  document.getElementById("counts").replaceChildren(
    ...[["acceptable", c.acceptable], ["alert", c.alert], ["unknown", c.unknown], ["unlabelled", c.unlabelled], ["total", c.total]]
      .map(([name, n]) => CW.el("span", { dataset: { count: name } }, `${name}: ${n}`)));
}

async function load() {
  const filter = document.getElementById("unlabelled").checked ? "?filter=unlabelled" : "";
  const data = await CW.json(`/api/dataset${filter}`);
  items = data.items;
  selected = Math.min(selected, Math.max(0, items.length - 1));
  const grid = document.getElementById("grid");
  grid.replaceChildren(...items.map(tile));
  if (!items.length) grid.append(CW.el("p", { class: "muted" }, "Nothing captured yet: switch capture mode on."));
  counts(data.counts);
}

// Label the selected crop and move on at once; the writes go out one after another behind the keyboard.
let writes = Promise.resolve();
function label(value) {
  const index = selected;
  const item = items[index];
  if (!item || !admin) return;
  const previous = item.label;
  item.label = value;
  document.querySelectorAll(".item")[index].replaceWith(tile(item, index));
  if (value !== null && selected < items.length - 1) selected += 1;
  mark();
  writes = writes.then(async () => {
    const response = await CW.post("/api/dataset/labels", { labels: [{ id: item.id, label: value }] });
    if (response.ok) { counts((await response.json()).counts); return; }
    item.label = previous;  // refused (the item was evicted, the session ended): show what is really stored
    document.querySelectorAll(".item")[index].replaceWith(tile(item, index));
    mark();
  });
}

async function capture() {
  const every = Number(document.getElementById("every").value);
  const response = await CW.post("/api/capture", { enabled: document.getElementById("capture").checked, every_s: every });
  if (response.ok) showCapture(await response.json());
}

function showCapture(info) {
  if (!info.available) return;
  document.getElementById("capture").checked = info.enabled;
  document.getElementById("every").value = info.every_s;
  document.getElementById("capture-info").textContent =
    `${info.records} frame(s) kept, ${(info.bytes / 1e6).toFixed(1)} of ${(info.budget_bytes / 1e6).toFixed(0)} MB`;
}

function exportLink() {
  const fraction = document.getElementById("fraction").value;
  const pseudo = document.getElementById("pseudo").checked ? "1" : "0";
  document.getElementById("export").href = `/api/dataset/export.tar.gz?test_fraction=${fraction}&include_unconfirmed=${pseudo}`;
}

async function main() {
  const session = await CW.init();
  admin = session.role === "admin";
  CW.showDevice();
  showCapture(await CW.json("/api/capture"));
  document.getElementById("capture").addEventListener("change", capture);
  document.getElementById("every").addEventListener("change", () => { if (document.getElementById("capture").checked) capture(); });
  document.getElementById("unlabelled").addEventListener("change", load);
  document.getElementById("reload").addEventListener("click", load);
  document.getElementById("fraction").addEventListener("change", exportLink);
  document.getElementById("pseudo").addEventListener("change", exportLink);
  document.getElementById("export").addEventListener("click", async (event) => {
    // Check first, so a refused export shows why instead of downloading an error.
    event.preventDefault();
    const url = event.currentTarget.href;
    const response = await fetch(url, { method: "GET" });
    const box = document.getElementById("export-message");
    if (!response.ok) { box.className = "message error"; box.textContent = (await response.json()).error; return; }
    const blob = await response.blob();
    const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
    const link = CW.el("a", { href: URL.createObjectURL(blob), download: name ? name[1] : "dataset.tar.gz" });
    document.body.append(link);
    link.click();
    link.remove();
    box.className = "message ok";
    box.textContent = `exported: ${response.headers.get("X-Dataset-Counts")}`;
  });
  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "INPUT") return;
    const key = event.key.toLowerCase();
    if (key === "arrowright" || key === "j") { selected = Math.min(items.length - 1, selected + 1); mark(); }
    else if (key === "arrowleft" || key === "k") { selected = Math.max(0, selected - 1); mark(); }
    else if (KEYS[key]) label(KEYS[key]);
    else if (key === " " || key === "enter") { const item = items[selected]; if (item && item.model_label) label(item.model_label); }
    else if (key === "backspace" || key === "0") label(null);
    else return;
    event.preventDefault();
  });
  exportLink();
  await load();
  setInterval(() => {
    if (document.hidden) return;
    if (document.activeElement.tagName !== "INPUT") CW.json("/api/capture").then(showCapture);
    if (!items.length) load();  // new captures appear by themselves until there is something to label
  }, 5000);
}

main();
