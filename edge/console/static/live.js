// Live: the frame with the lanes coloured by level, each lane's probability over the last minute, aiming aids.
"use strict";

const WINDOW_S = 60;
const series = {};        // roi -> {t: [], p: [], s: []}
let status = null;
let focusPeak = 0;

function overlay() {
  const img = document.getElementById("frame");
  const canvas = document.getElementById("overlay");
  const ctx = CW.fit(canvas);
  const w = canvas.clientWidth, h = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  if (!status || !img.naturalWidth) return;
  ctx.font = "600 13px system-ui, sans-serif";
  for (const roi of status.rois) {
    if (!roi.box) continue;
    const [x, y, bw, bh] = roi.box;
    const colour = CW.colours[roi.level] || CW.colours.unknown;
    ctx.lineWidth = 3;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x * w + 1.5, y * h + 1.5, bw * w - 3, bh * h - 3);
    const label = `${roi.name} · ${roi.level}${roi.smoothed === null ? "" : " · p " + roi.smoothed.toFixed(2)}`;
    const tw = ctx.measureText(label).width + 10;
    ctx.fillStyle = colour;
    ctx.fillRect(x * w, y * h, tw, 20);
    ctx.fillStyle = "#fff";
    ctx.fillText(label, x * w + 5, y * h + 14);
  }
  canvas.dataset.rois = status.rois.map((r) => `${r.name}:${r.level}`).join(",");
}

function chartFor(name) {
  let box = document.getElementById(`chart-${name}`);
  if (!box) {
    box = CW.el("div", { class: "chart", id: `chart-${name}` },
      CW.el("div", { class: "title" }, CW.el("strong", {}, name), CW.el("span", { class: "framing" }, ""),
        CW.el("span", { class: "now" }, "")),
      CW.el("canvas", { dataset: { roi: name, points: "0" } }));
    document.getElementById("charts").append(box);
  }
  return box;
}

function drawChart(name) {
  const data = series[name];
  const box = chartFor(name);
  const canvas = box.querySelector("canvas");
  const ctx = CW.fit(canvas);
  const w = canvas.clientWidth, h = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  const roi = status ? status.rois.find((r) => r.name === name) : null;
  const end = data.t.length ? data.t[data.t.length - 1] : Date.now() / 1000;
  const x = (t) => w - ((end - t) / WINDOW_S) * w;
  const y = (p) => h - 4 - p * (h - 8);
  const bands = status && status.levels && status.levels.alert && status.levels.warning ? status.levels : null;
  if (bands) {
    for (const [band, colour] of [["warning", CW.colours.warning], ["alert", CW.colours.alert]]) {
      ctx.strokeStyle = colour;
      ctx.setLineDash([5, 4]);
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(0, y(bands[band].enter));
      ctx.lineTo(w, y(bands[band].enter));
      ctx.stroke();
    }
    ctx.setLineDash([]);
  }
  ctx.strokeStyle = "#8fb3e6";  // the model's output per frame
  ctx.lineWidth = 1;
  ctx.beginPath();
  data.t.forEach((t, i) => { if (i === 0) ctx.moveTo(x(t), y(data.p[i])); else ctx.lineTo(x(t), y(data.p[i])); });
  ctx.stroke();
  // The smoothed probability the levels judge, each stretch in the colour of the band it is in.
  const band = (p) => (bands && p >= bands.alert.enter ? CW.colours.alert
    : bands && p >= bands.warning.enter ? CW.colours.warning : CW.colours.ok);
  ctx.lineWidth = 2.5;
  for (let i = 1; i < data.t.length; i++) {
    ctx.strokeStyle = band(Math.max(data.s[i - 1], data.s[i]));
    ctx.beginPath();
    ctx.moveTo(x(data.t[i - 1]), y(data.s[i - 1]));
    ctx.lineTo(x(data.t[i]), y(data.s[i]));
    ctx.stroke();
  }
  canvas.dataset.points = String(data.t.length);
  canvas.dataset.last = String(end);
  if (roi && roi.smoothed !== null) box.querySelector(".now").textContent = `${roi.level} · p ${roi.smoothed.toFixed(2)}`;
  showFraming(box.querySelector(".framing"), roi);
}

// The framing check (docs/alert-spec.md): product pitches the lane spans along the flow, marked outside the model's range.
function showFraming(span, roi) {
  const pitches = roi ? roi.view_pitches : null;
  if (pitches === null || pitches === undefined) { span.textContent = ""; span.className = "framing"; return; }
  const range = status.framing;
  const outside = pitches < range.min || pitches > range.max;
  span.textContent = `${pitches.toFixed(2)} pitches in view` + (outside ? ` (needs ${range.min}-${range.max}: ${pitches < range.min ? "widen" : "narrow"} it)` : "");
  span.className = outside ? "framing outside" : "framing";
}

function addPoints(points) {
  for (const [name, incoming] of Object.entries(points)) {
    const data = series[name] || (series[name] = { t: [], p: [], s: [] });
    data.t.push(...incoming.t); data.p.push(...incoming.p); data.s.push(...incoming.s);
    const cut = data.t[data.t.length - 1] - WINDOW_S;
    while (data.t.length && data.t[0] < cut) { data.t.shift(); data.p.shift(); data.s.shift(); }
  }
}

function showStatus() {
  const summary = document.getElementById("summary");
  summary.textContent = status.summary;
  summary.className = `badge ${status.summary}`;
  document.getElementById("health").textContent =
    status.health === "ok" ? "camera ok" : `camera ${status.health}: ${status.health_reason}`;
  document.getElementById("fps").textContent = status.fps === null ? "–" : `${status.fps.toFixed(1)} frames/s`;
  document.getElementById("frame-info").textContent = status.frame
    ? `#${status.frame.seq}, ${status.frame.width}×${status.frame.height}, ${status.frame.age_s.toFixed(2)} s old` : "none yet";
  document.getElementById("model").textContent = status.model_sha256.slice(0, 16) + "…";
  document.getElementById("model").title = status.model_sha256;
  document.getElementById("runtime").textContent = status.runtime;
  const link = status.link;
  document.getElementById("link").textContent = !link ? "–"
    : link.connected ? `connected, ${link.pending} event(s) waiting` : `NOT connected: ${link.last_error || "…"}`;
  document.getElementById("belt-speed").textContent = status.belt === "stopped" ? "STOPPED"
    : status.belt_speed === null ? (status.belt === "unknown" ? "not measured" : status.belt) : `${status.belt_speed} px/s`;
  if (status.capture) {
    const box = document.getElementById("capture");
    if (document.activeElement !== box) box.checked = status.capture.enabled;
    document.getElementById("capture-info").textContent = status.capture.enabled
      ? `every ${status.capture.every_s} s, ${status.capture.taken} kept` : (CW.session.role === "admin" ? "" : "off");
  }
  const names = new Set(status.rois.map((r) => r.name));
  for (const box of document.querySelectorAll(".chart")) if (!names.has(box.id.slice(6))) box.remove();
}

function showMeters(meters) {
  if (!meters || meters.focus === undefined) return;
  focusPeak = Math.max(focusPeak, meters.focus);
  const focus = focusPeak ? meters.focus / focusPeak : 0;
  document.getElementById("focus-bar").style.width = `${(focus * 100).toFixed(1)}%`;
  document.getElementById("focus-peak").style.left = "calc(100% - 2px)";
  document.getElementById("focus").textContent = `${meters.focus.toFixed(0)} (${(focus * 100).toFixed(0)}% of best)`;
  document.getElementById("brightness-bar").style.width = `${(meters.brightness / 255 * 100).toFixed(1)}%`;
  document.getElementById("brightness").textContent = `${meters.brightness.toFixed(0)} / 255`;
  document.getElementById("clipped").textContent = `${(meters.clipped * 100).toFixed(1)}%`;
  document.getElementById("dark").textContent = `${(meters.dark * 100).toFixed(1)}%`;
}

async function main() {
  await CW.init();
  CW.showDevice();
  const img = document.getElementById("frame");
  CW.followFrames(img, 4, overlay);
  window.addEventListener("resize", () => { overlay(); Object.keys(series).forEach(drawChart); });
  document.getElementById("focus-reset").addEventListener("click", () => { focusPeak = 0; });
  document.getElementById("capture").addEventListener("change", async (event) => {
    const response = await CW.post("/api/capture", { enabled: event.target.checked });
    if (!response.ok) event.target.checked = !event.target.checked;
  });
  const live = new EventSource("/api/live");
  live.onmessage = (message) => {
    const data = JSON.parse(message.data);
    status = data.status;
    addPoints(data.points);
    showStatus();
    for (const roi of status.rois) if (series[roi.name]) drawChart(roi.name);
    showMeters(data.meters);
    overlay();
  };
}

main();
