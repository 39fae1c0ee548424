// Events: the level and health changes, newest first, with the frames kept around each.
"use strict";

function describe(event) {
  if (event.type === "level") {
    return `${event.roi}: ${event.previous} → ${event.level} (p ${Number(event.probability).toFixed(2)})`;
  }
  if (event.type === "alarm") {
    return `${event.roi}: alarm ${event.previous} → ${event.alarm}${event.acked_by ? ` (acknowledged by ${event.acked_by})` : ""}`;
  }
  if (event.type === "belt") {
    return `belt: ${event.previous} → ${event.belt}`;
  }
  if (event.type === "model") {
    const sha = (value) => (value ? value.slice(0, 12) : "the config's model");
    return `model ${event.action.replace("_", " ")}: ${sha(event.model)}${event.by ? ` (by ${event.by})` : ""}`;
  }
  return `camera: ${event.previous} → ${event.health}`;
}

function card(event) {
  const state = event.type === "level" ? event.level
    : event.type === "alarm" ? (event.alarm.startsWith("active") ? "alert" : "ok")
    : event.type === "model" ? (event.action === "refused" || event.action === "shadow_failed" ? "warning" : "ok")
    : event.type === "belt" ? (event.belt === "stopped" ? "alert" : "ok")
    : (event.health === "ok" ? "ok" : "unknown");
  const label = event.type === "level" ? event.level : event.type === "alarm" ? "alarm" : event.type === "model" ? "model" : event.type === "belt" ? event.belt : event.health;
  const head = CW.el("div", { class: "head" },
    CW.el("span", { class: "time" }, CW.time(event.wall)),
    CW.el("span", { class: `badge ${state}` }, label),
    CW.el("strong", {}, describe(event)),
    CW.el("span", { class: "muted" }, event.reason || ""));
  const li = CW.el("li", { class: "event", dataset: { snapshot: event.snapshot || "" } }, head);
  if (event.frames && event.frames.length) {
    const strip = CW.el("div", { class: "frames" });
    for (const frame of event.frames) {
      const img = CW.el("img", { src: frame.url, alt: `${frame.offset_s} s`, loading: "lazy", class: "snapshot" });
      img.addEventListener("click", () => show(frame, event));
      const offset = frame.offset_s === 0 ? "at the change" : `${frame.offset_s > 0 ? "+" : ""}${frame.offset_s.toFixed(1)} s`;
      strip.append(CW.el("figure", { class: frame.key ? "key" : "" }, img, CW.el("figcaption", {}, offset)));
    }
    li.append(strip);
  } else if (event.snapshot) {
    li.append(CW.el("p", { class: "muted" }, "snapshot being saved…"));
  }
  return li;
}

function show(frame, event) {
  const box = document.getElementById("lightbox");
  document.getElementById("lightbox-img").src = frame.url;
  document.getElementById("lightbox-caption").textContent = `${describe(event)} · ${frame.offset_s.toFixed(1)} s · ${frame.name}`;
  box.hidden = false;
}

async function load() {
  const data = await CW.json("/api/events");
  const list = document.getElementById("events");
  list.replaceChildren(...data.events.map(card));
  if (!data.events.length) list.append(CW.el("li", { class: "muted" }, "No changes yet."));
  document.getElementById("count").textContent = `${data.events.length} change(s)`;
}

async function main() {
  await CW.init();
  CW.showDevice();
  document.getElementById("refresh").addEventListener("click", load);
  document.getElementById("lightbox").addEventListener("click", (event) => { event.currentTarget.hidden = true; });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") document.getElementById("lightbox").hidden = true; });
  await load();
  setInterval(() => { if (!document.hidden) load(); }, 5000);
}

main();
