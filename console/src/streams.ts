// The live part: streams, relays, recordings and cluster nodes from each `state` event, and
// the actions on them (each an API call; a 403 shows as such).

import { api, ApiError } from "./api";
import { $, bits, bytes, h, notice, patchRows } from "./dom";
import type { Relay, Snapshot, StreamView } from "./types";

export let latest: Snapshot | null = null;

/** Runs an action and reports its outcome in the notice bar. */
export async function act(what: string, call: () => Promise<unknown>, done?: (result: unknown) => string): Promise<void> {
  try {
    const result = await call();
    notice(done ? done(result) : `${what}: done`);
  } catch (e) {
    const message = e instanceof ApiError ? e.message : String(e);
    notice(`${what} refused — ${message}`, true);
  }
}

function videoText(s: StreamView): string {
  const v = s.video;
  if (!v) return "—";
  const fps = v.fps ? ` ${Number(v.fps.toFixed(2))} fps` : "";
  return `${v.codec} ${v.width}×${v.height}${fps}${v.bframes ? " (B-frames)" : ""}`;
}

function audioText(s: StreamView): string {
  const a = s.audio;
  return a ? `${a.codec} ${a.sample_rate} Hz ${a.channels} ch` : "—";
}

function conversionsCell(s: StreamView): HTMLElement {
  const cell = h("td", { class: "conversions" });
  if (!s.conversions.length) cell.append(h("span", { class: "muted" }, "none (all copied)"));
  for (const c of s.conversions) {
    const summary = h("summary", {}, `${c.track} ${c.from}→${c.to} ×${c.consumers} (${c.reason})`);
    const details = h(
      "details",
      { class: "conversion", "data-track": c.track },
      summary,
      h("div", { class: "muted" }, `frames ${c.frames_in} in, ${c.frames_out} out${c.params ? `; params ${c.params}` : ""}`),
      h("pre", { class: "plan" }, c.pipeline),
      c.error ? h("div", { class: "error" }, c.error) : null,
    );
    cell.append(details);
  }
  return cell;
}

function streamRow(s: StreamView, snap: Snapshot, open: Set<string>): HTMLElement {
  const rate = snap.bitrates[s.key] ?? { in_bps: 0, out_bps: 0 };
  const viewers = Object.entries(s.consumers).map(([p, n]) => `${p} ${n}`).join(", ") || "none";
  const recording = snap.recordings.find((r) => r.stream === s.key && r.state === "recording");
  const button = (label: string, action: string, extra: Record<string, string> = {}) =>
    h("button", { type: "button", "data-action": action, "data-stream": s.key, ...extra }, label);
  const conversions = conversionsCell(s);
  conversions.querySelectorAll("details").forEach((d) => {
    if (open.has(`${s.key}/${d.getAttribute("data-track")}`)) (d as HTMLDetailsElement).open = true;
  });
  return h(
    "tr",
    { "data-stream": s.key },
    h("td", { class: "key" }, s.key, s.reconnecting ? h("span", { class: "pill warn" }, "reconnecting") : null),
    h("td", {}, `${s.publisher.protocol}`, h("div", { class: "muted" }, s.publisher.transport + (s.publisher.remote ? ` ${s.publisher.remote}` : ""))),
    h("td", { class: "video" }, videoText(s)),
    h("td", { class: "audio" }, audioText(s)),
    h("td", { class: "rate" }, `${bits(rate.in_bps)} / ${bits(rate.out_bps)}`),
    h("td", { class: "viewers" }, viewers),
    conversions,
    h(
      "td",
      { class: "actions" },
      button("Preview", "preview"),
      button("Kick", "kick", { class: "danger" }),
      recording ? button("Stop recording", "record-stop", { "data-id": recording.id }) : button("Record", "record"),
      button("Clip 10 s", "clip"),
    ),
  );
}

function relayRow(r: Relay, kind: "push" | "pull"): HTMLElement {
  const state = r.state + (r.reason ? ` (${r.reason})` : "");
  return h(
    "tr",
    { "data-relay": r.id, "data-state": r.state },
    h("td", {}, kind),
    h("td", {}, r.id),
    h("td", {}, r.stream),
    h("td", {}, (r.active_url as string) || r.url),
    h("td", { class: `state ${r.state}` }, state),
    h("td", {}, h("button", { type: "button", "data-action": `${kind}-stop`, "data-id": r.id, "data-stream": r.stream }, "Stop")),
  );
}

/** Draws one snapshot. */
export function render(snap: Snapshot): void {
  latest = snap;
  const body = $("streams").querySelector("tbody")!;
  const open = new Set<string>();
  body.querySelectorAll("details[open]").forEach((d) => {
    const row = d.closest("tr");
    open.add(`${row?.getAttribute("data-stream")}/${d.getAttribute("data-track")}`);
  });
  patchRows(body, snap.streams.map((s) => streamRow(s, snap, open)), "data-stream");
  $("no-streams").hidden = snap.streams.length > 0;
  $("stream-count").textContent = `(${snap.streams.length} live)`;

  for (const id of ["preview-stream", "push-stream"]) {
    const select = $<HTMLSelectElement>(id);
    const keep = select.value;
    const keys = snap.streams.map((s) => s.key);
    if (keys.join() !== Array.from(select.options).map((o) => o.value).join()) {
      select.replaceChildren(...keys.map((k) => h("option", { value: k }, k)));
      if (keys.includes(keep)) select.value = keep;
    }
  }

  patchRows(
    $("relays").querySelector("tbody")!,
    [...snap.pushes.map((r) => relayRow(r, "push")), ...snap.pulls.map((r) => relayRow(r, "pull"))],
    "data-relay",
  );
  patchRows(
    $("recordings").querySelector("tbody")!,
    snap.recordings.slice(0, 20).map((r) =>
      h(
        "tr",
        { "data-recording": r.id },
        h("td", {}, r.id),
        h("td", {}, r.stream),
        h("td", { class: `state ${r.state}` }, r.state + (r.error ? ` (${r.error})` : "")),
        h("td", {}, r.duration !== undefined ? `${Number(r.duration).toFixed(1)} s` : ""),
        h("td", {}, bytes(r.size as number | undefined)),
        h("td", {}, r.url ? h("a", { href: r.url as string, target: "_blank" }, "playlist") : null),
      ),
    ),
    "data-recording",
  );
  const cluster = snap.cluster;
  $("cluster-section").hidden = !cluster;
  if (cluster) {
    $("cluster").querySelector("tbody")!.replaceChildren(
      ...(cluster.nodes ?? []).map((n) =>
        h("tr", {}, h("td", {}, n.node + (n.node === cluster.node ? " (this)" : "")), h("td", {}, n.relay),
          h("td", {}, n.cpu.toFixed(2)), h("td", {}, String(n.published)), h("td", {}, String(n.relayed)),
          h("td", {}, String(n.viewers)), h("td", {}, `${(n.seen_ms_ago / 1000).toFixed(1)} s ago`)),
      ),
    );
  }
}

/** Wires the action buttons and the relay forms. `preview(key)` opens a preview. */
export function wireActions(preview: (key: string) => void): void {
  document.addEventListener("click", (ev) => {
    const button = (ev.target as HTMLElement).closest("button[data-action]");
    if (!button) return;
    const action = button.getAttribute("data-action")!;
    const key = button.getAttribute("data-stream") ?? "";
    const id = button.getAttribute("data-id") ?? "";
    const k = encodeURIComponent(key);
    switch (action) {
      case "preview":
        preview(key);
        break;
      case "kick":
        if (confirm(`Disconnect the publisher of ${key}?`)) void act(`kick ${key}`, () => api("DELETE", `/api/v1/streams/${k}`));
        break;
      case "record":
        void act(`record ${key}`, () => api("POST", `/api/v1/streams/${k}/recordings`, {}), () => `recording ${key}`);
        break;
      case "record-stop":
        void act(`stop recording ${key}`, () => api("DELETE", `/api/v1/streams/${k}/recordings/${encodeURIComponent(id)}`));
        break;
      case "clip":
        void act(
          `clip of ${key}`,
          () => api<{ url: string }>("POST", "/api/v1/clips", { stream: key, last_seconds: 10 }),
          (r) => `clip of ${key}: ${(r as { url: string }).url}`,
        );
        break;
      case "push-stop":
        void act(`stop push ${id}`, () => api("DELETE", `/api/v1/pushes/${encodeURIComponent(id)}`));
        break;
      case "pull-stop":
        void act(`stop pull ${id}`, () => api("DELETE", `/api/v1/pulls/${encodeURIComponent(id)}`));
        break;
    }
  });
  $("push-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $<HTMLSelectElement>("push-stream").value;
    const url = $<HTMLInputElement>("push-url").value.trim();
    void act(`push ${key}`, () => api("POST", `/api/v1/streams/${encodeURIComponent(key)}/pushes`, { url }));
  });
  $("pull-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const stream = $<HTMLInputElement>("pull-stream").value.trim();
    const url = $<HTMLInputElement>("pull-url").value.trim();
    void act(`pull ${stream}`, () => api("POST", "/api/v1/pulls", { stream, url }));
  });
}
