// Log in: exchange a user name and password for a session cookie, then go back where we came from.
"use strict";

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = document.getElementById("message");
  message.textContent = "";
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: document.getElementById("user").value, password: document.getElementById("password").value }),
  });
  if (!response.ok) {
    message.className = "message error";
    message.textContent = (await response.json()).error;
    return;
  }
  const next = new URLSearchParams(location.search).get("next") || "/";
  // Only a path on this console: never an open redirect.
  location.href = next.startsWith("/") && !next.startsWith("//") ? next : "/";
});
