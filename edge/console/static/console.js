// conveyor-watch console: what every page shares (session, CSRF-carrying writes, small DOM helpers).
"use strict";

const CW = {
  session: null,
  colours: { ok: "#2e9e48", warning: "#d99a00", alert: "#d33131", unknown: "#8a8f98" },

  // Load who we are; send to the login page when a password is needed.
  async init() {
    const response = await fetch("/api/session", { cache: "no-store" });
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
      throw new Error("login needed");
    }
    this.session = await response.json();
    document.body.classList.toggle("viewer", this.session.role !== "admin");
    const who = document.getElementById("who");
    who.textContent = `${this.session.user} (${this.session.role})`;
    if (this.session.auth === "password") {
      const out = this.el("button", { type: "button" }, "log out");
      out.addEventListener("click", async () => { await this.post("/api/logout", {}); location.href = "/login"; });
      who.append(out);
    }
    return this.session;
  },

  // A write: JSON body, the session's CSRF token in its header.
  post(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": this.session.csrf },
      body: JSON.stringify(body),
    });
  },

  async json(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.json();
  },

  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  },

  time(wall) {
    return new Date(wall * 1000).toLocaleString(undefined, { hour12: false });
  },

  sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); },

  // Keep <img> showing the latest frame, at most `fps` a second, only while the tab is visible.
  async followFrames(img, fps, onFrame) {
    let shown = null;
    for (;;) {
      const started = performance.now();
      if (!document.hidden) {
        try {
          const response = await fetch("/api/frame.jpg", { cache: "no-store" });
          if (response.ok) {
            const seq = response.headers.get("X-Frame-Seq");
            const url = URL.createObjectURL(await response.blob());
            await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = url; });
            if (shown) URL.revokeObjectURL(shown);
            shown = url;
            img.dataset.seq = seq;
            if (onFrame) onFrame();
          }
        } catch (error) { /* the daemon may be restarting: try again */ }
      }
      await this.sleep(Math.max(50, 1000 / fps - (performance.now() - started)));
    }
  },

  // Size a canvas's backing store to its displayed size (crisp lines on any screen).
  fit(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(canvas.clientWidth * ratio), height = Math.round(canvas.clientHeight * ratio);
    if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return ctx;
  },

  async showDevice() {
    try {
      const status = await this.json("/api/status");
      document.getElementById("device").textContent = `${status.device.site} / ${status.device.line} / ${status.device.name}`;
      return status;
    } catch (error) { return null; }
  },
};
