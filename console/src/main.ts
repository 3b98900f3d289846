// The operator's console: boots the live view (server-sent events read with fetch, so the
// bearer token travels in a header), the preview, the matrix and the actions.

import "./style.css";
import { followEvents, setToken, token, whenUnauthorized } from "./api";
import { $ } from "./dom";
import { refreshMatrix, wireMatrix } from "./matrix";
import { previewStream, wirePreview } from "./preview";
import { render, wireActions } from "./streams";
import type { Snapshot } from "./types";

let events: AbortController | null = null;

function showLogin(message: string): void {
  $("login").hidden = false;
  $("login-error").textContent = message;
  $<HTMLInputElement>("token").focus();
}

function tokenState(): void {
  $("token-state").textContent = token() ? "API token set (this tab only)" : "";
}

function connect(): void {
  events?.abort();
  events = new AbortController();
  const conn = $("conn");
  void followEvents(
    (data) => {
      const snap = data as Snapshot;
      render(snap);
      void refreshMatrix(snap.matrix_generation);
    },
    (connected, why) => {
      conn.textContent = connected ? "live" : `disconnected${why ? `: ${why}` : ""}`;
      conn.className = connected ? "pill ok" : "pill error";
      conn.dataset.connected = String(connected);
    },
    events.signal,
  );
}

whenUnauthorized((message) => showLogin(message));

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = $<HTMLInputElement>("token").value.trim();
  setToken(value || null);
  $<HTMLInputElement>("token").value = "";
  $("login").hidden = true;
  tokenState();
  connect();
  void refreshMatrix();
});
$("token-change").addEventListener("click", () => showLogin(""));

wireActions(previewStream);
wirePreview();
wireMatrix();
tokenState();
connect();
void refreshMatrix();
