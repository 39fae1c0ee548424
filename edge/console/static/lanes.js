// Lanes: draw, move and resize the regions of interest over the live frame; save them to the config file.
"use strict";

const HANDLE_PX = 10;
const MIN_FRACTION = 0.01;
let lanes = [];          // [{name, box: [x, y, w, h], flow}] as edited
let saved = [];          // as the daemon runs them
let selected = -1;
let drag = null;         // {mode: "move"|"resize", index, corner, start: [fx, fy], box}
let canEdit = false;

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const copy = (list) => list.map((l) => ({ name: l.name, box: [...l.box], flow: l.flow || "across" }));
// A new lane runs the way the others do (rois[].flow in the config file says which way; the console keeps it).
const newFlow = () => (lanes.length ? lanes[0].flow : "across");

function canvas() { return document.getElementById("editor"); }

function toFraction(event) {
  const rect = canvas().getBoundingClientRect();
  return [clamp((event.clientX - rect.left) / rect.width, 0, 1), clamp((event.clientY - rect.top) / rect.height, 0, 1)];
}

function corners(box) {
  const [x, y, w, h] = box;
  return [[x, y], [x + w, y], [x, y + h], [x + w, y + h]];
}

// What a press at `point` grabs: a corner or the body of the selected lane (a lane is selected by a click).
function hit(point) {
  if (selected < 0) return null;
  const rect = canvas().getBoundingClientRect();
  const found = corners(lanes[selected].box).findIndex(([cx, cy]) =>
    Math.abs((cx - point[0]) * rect.width) <= HANDLE_PX && Math.abs((cy - point[1]) * rect.height) <= HANDLE_PX);
  if (found >= 0) return { mode: "resize", index: selected, corner: found };
  const [x, y, w, h] = lanes[selected].box;
  if (point[0] >= x && point[0] <= x + w && point[1] >= y && point[1] <= y + h) return { mode: "move", index: selected };
  return null;
}

// The topmost (smallest on ties) lane under `point`, for a click.
function laneAt(point) {
  let best = -1;
  lanes.forEach((lane, i) => {
    const [x, y, w, h] = lane.box;
    const inside = point[0] >= x && point[0] <= x + w && point[1] >= y && point[1] <= y + h;
    if (inside && (best < 0 || w * h <= lanes[best].box[2] * lanes[best].box[3])) best = i;
  });
  return best;
}

function nextName() {
  const taken = new Set(lanes.map((l) => l.name));
  for (let n = lanes.length + 1; ; n++) if (!taken.has(`lane-${n}`)) return `lane-${n}`;
}

function draw() {
  const c = canvas();
  const ctx = CW.fit(c);
  const w = c.clientWidth, h = c.clientHeight;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "600 13px system-ui, sans-serif";
  lanes.forEach((lane, i) => {
    const [x, y, bw, bh] = lane.box;
    const active = i === selected;
    ctx.fillStyle = active ? "rgba(31, 95, 191, 0.18)" : "rgba(255, 255, 255, 0.08)";
    ctx.fillRect(x * w, y * h, bw * w, bh * h);
    ctx.lineWidth = active ? 3 : 2;
    ctx.strokeStyle = active ? "#4d8ef0" : "#ffd23f";
    ctx.strokeRect(x * w, y * h, bw * w, bh * h);
    ctx.fillStyle = ctx.strokeStyle;
    const tw = ctx.measureText(lane.name).width + 10;
    ctx.fillRect(x * w, y * h, tw, 20);
    ctx.fillStyle = "#111";
    ctx.fillText(lane.name, x * w + 5, y * h + 14);
    if (active) for (const [cx, cy] of corners(lane.box)) {
      ctx.fillStyle = "#fff";
      ctx.fillRect(cx * w - 5, cy * h - 5, 10, 10);
      ctx.strokeStyle = "#4d8ef0";
      ctx.lineWidth = 2;
      ctx.strokeRect(cx * w - 5, cy * h - 5, 10, 10);
    }
  });
  c.dataset.lanes = lanes.map((l) => l.name).join(",");
}

function list() {
  const ol = document.getElementById("lane-list");
  ol.replaceChildren();
  lanes.forEach((lane, i) => {
    const name = CW.el("input", { value: lane.name, "aria-label": "lane name", maxlength: "64", dataset: { index: String(i) } });
    name.disabled = !canEdit;
    name.addEventListener("input", () => { lane.name = name.value; draw(); dirty(); });
    name.addEventListener("focus", () => { selected = i; draw(); mark(); });
    const remove = CW.el("button", { type: "button", class: "admin-only", title: "remove this lane" }, "✕");
    remove.addEventListener("click", () => { lanes.splice(i, 1); selected = -1; refresh(); });
    // Which way product moves through this lane's box: the model reads a flow across the picture best, and a box
    // whose flow runs down is turned for it (rois[].flow).
    const flow = CW.el("select", { "aria-label": "flow", title: "which way product moves through this lane" },
      CW.el("option", { value: "across" }, "flow across"), CW.el("option", { value: "down" }, "flow down"));
    flow.value = lane.flow;
    flow.disabled = !canEdit;
    flow.addEventListener("change", () => { lane.flow = flow.value; dirty(); });
    const box = CW.el("span", { class: "box" }, `x ${lane.box[0].toFixed(3)}  y ${lane.box[1].toFixed(3)}  w ${lane.box[2].toFixed(3)}  h ${lane.box[3].toFixed(3)}`);
    const li = CW.el("li", { class: i === selected ? "selected" : "" }, name, " ", flow, " ", remove, box);
    li.addEventListener("click", (event) => { if (event.target === li) { selected = i; refresh(); } });
    ol.append(li);
  });
}

function mark() {
  document.querySelectorAll("#lane-list li").forEach((li, i) => li.classList.toggle("selected", i === selected));
}

function dirty() {
  const changed = JSON.stringify(lanes) !== JSON.stringify(saved);
  document.getElementById("save").disabled = !changed || !canEdit;
  document.getElementById("revert").disabled = !changed;
}

function refresh() { draw(); list(); dirty(); }

function message(kind, text, problems) {
  const box = document.getElementById("message");
  box.className = `message ${kind}`;
  box.replaceChildren(text);
  if (problems && problems.length) box.append(CW.el("ul", {}, ...problems.map((p) => CW.el("li", {}, p))));
}

// A press on the selected lane moves it (or resizes it by a corner); anywhere else a drag draws a new lane
// (even over a lane that covers the whole frame) and a click selects the lane under the pointer.
function onDown(event) {
  if (!canEdit) return;
  const point = toFraction(event);
  canvas().setPointerCapture(event.pointerId);
  const found = hit(point);
  drag = found ? { ...found, start: point, box: [...lanes[found.index].box] } : { mode: "pending", start: point };
}

function onMove(event) {
  const point = toFraction(event);
  if (!drag) {
    const found = canEdit ? hit(point) : null;
    canvas().style.cursor = !found ? "crosshair" : found.mode === "move" ? "move" : "nwse-resize";
    return;
  }
  if (drag.mode === "pending") {
    const rect = canvas().getBoundingClientRect();
    if (Math.hypot((point[0] - drag.start[0]) * rect.width, (point[1] - drag.start[1]) * rect.height) < 4) return;
    const [sx, sy] = drag.start;
    lanes.push({ name: nextName(), box: [sx, sy, 0, 0], flow: newFlow() });
    selected = lanes.length - 1;
    drag = { mode: "resize", index: selected, corner: 3, start: drag.start, box: [sx, sy, 0, 0], drawing: true };
    list();
  }
  const lane = lanes[drag.index];
  const [x, y, w, h] = drag.box;
  if (drag.mode === "move") {
    lane.box = [clamp(x + point[0] - drag.start[0], 0, 1 - w), clamp(y + point[1] - drag.start[1], 0, 1 - h), w, h];
  } else {
    // The dragged corner follows the pointer; the opposite corner stays.
    const fixed = corners(drag.box)[3 - drag.corner];
    const left = Math.min(fixed[0], point[0]), top = Math.min(fixed[1], point[1]);
    lane.box = [left, top, Math.abs(point[0] - fixed[0]), Math.abs(point[1] - fixed[1])];
  }
  draw();
}

function onUp(event) {
  if (!drag) return;
  if (drag.mode === "pending") {  // a click: select what is under the pointer
    selected = laneAt(toFraction(event));
    drag = null;
    refresh();
    return;
  }
  const lane = lanes[drag.index];
  if (lane.box[2] < MIN_FRACTION || lane.box[3] < MIN_FRACTION) {
    if (drag.drawing) { lanes.splice(drag.index, 1); selected = -1; } else lane.box = drag.box;
  }
  drag = null;
  refresh();
}

async function save() {
  const button = document.getElementById("save");
  button.disabled = true;
  message("", "saving…");
  const response = await CW.post("/api/rois", { rois: lanes });
  const body = await response.json();
  if (response.ok) {
    saved = copy(body.rois);
    lanes = copy(body.rois);
    selected = Math.min(selected, lanes.length - 1);
    message("ok", `Saved to ${body.saved_to} (the previous file kept as .bak) and applied.`);
    refresh();
  } else {
    message("error", body.problems ? "Not saved:" : `Not saved: ${body.error}`, body.problems);
    dirty();
  }
}

async function main() {
  const session = await CW.init();
  CW.showDevice();
  const info = await CW.json("/api/rois");
  saved = copy(info.rois);
  lanes = copy(info.rois);
  canEdit = session.role === "admin" && !info.cannot_save;
  document.getElementById("config-file").textContent = info.cannot_save
    ? `Lanes cannot be saved: ${info.cannot_save}` : `Config file: ${info.config_file}`;
  const img = document.getElementById("frame");
  CW.followFrames(img, 2, draw);
  const c = canvas();
  c.addEventListener("pointerdown", onDown);
  c.addEventListener("pointermove", onMove);
  c.addEventListener("pointerup", onUp);
  c.addEventListener("pointercancel", onUp);
  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "INPUT" || selected < 0 || !canEdit) return;
    if (event.key === "Delete" || event.key === "Backspace") { lanes.splice(selected, 1); selected = -1; refresh(); }
  });
  document.getElementById("add").addEventListener("click", () => {
    lanes.push({ name: nextName(), box: [0.1, 0.1, 0.3, 0.3], flow: newFlow() });
    selected = lanes.length - 1;
    refresh();
  });
  document.getElementById("revert").addEventListener("click", () => { lanes = copy(saved); selected = -1; message("", ""); refresh(); });
  document.getElementById("save").addEventListener("click", save);
  window.addEventListener("resize", draw);
  refresh();
}

main();
