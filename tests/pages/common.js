// Shared helpers of the test pages. Every page reports to the test's page server by POSTing
// JSON to `report` (same origin as the page, so no CORS there):
//   {id, page, type: "event", event, detail}   milestones and errors
//   {id, page, type: "stats", stats: {...}}     once a second, see collectStats()
// The WHIP/WHEP endpoints are on another origin (the gateway), so they must answer CORS
// preflight and expose the Location header.
"use strict";

const params = new URLSearchParams(location.search);
const pageId = params.get("id") || location.pathname;
const reportUrl = params.get("report") || "/report";

async function report(type, body) {
  const payload = Object.assign({ id: pageId, page: location.pathname, type, t: Date.now() }, body);
  try {
    await fetch(reportUrl, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
  } catch (e) {
    console.error("report failed", e);
  }
}

function event(name, detail) {
  return report("event", { event: name, detail: detail === undefined ? null : String(detail) });
}

window.addEventListener("error", (e) => event("error", e.message));
window.addEventListener("unhandledrejection", (e) => event("error", e.reason && (e.reason.stack || e.reason)));

// Resolves when ICE gathering is complete (or after `ms`, whatever was gathered by then).
function iceGatheringComplete(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

// Puts the codecs of `mime` (e.g. "video/H264") first on `transceiver`; H.264 with
// packetization-mode=1 before mode 0. Other codecs stay offered after them unless `only`.
// `sending`: take the list from the sender's capabilities (else the receiver's).
function preferCodec(transceiver, kind, mime, only, sending) {
  const caps = (sending ? RTCRtpSender : RTCRtpReceiver).getCapabilities(kind);
  if (!caps || !transceiver.setCodecPreferences) return;
  const wanted = mime.toLowerCase();
  const score = (c) => {
    if (c.mimeType.toLowerCase() !== wanted) return 2;
    return (c.sdpFmtpLine || "").includes("packetization-mode=1") || !wanted.endsWith("h264") ? 0 : 1;
  };
  let codecs = caps.codecs.slice().sort((a, b) => score(a) - score(b));
  if (only) codecs = codecs.filter((c) => score(c) < 2 || /rtx|red|ulpfec/i.test(c.mimeType));
  transceiver.setCodecPreferences(codecs);
}

// POSTs an SDP offer (WHIP/WHEP), with `Authorization: Bearer` when the page has ?token=.
// Returns {location, answer}; throws on a non-201.
async function postOffer(url, sdp) {
  const headers = { "Content-Type": "application/sdp" };
  if (params.get("token")) headers["Authorization"] = "Bearer " + params.get("token");
  const response = await fetch(url, { method: "POST", headers, body: sdp });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`POST ${url}: HTTP ${response.status}: ${text}`);
  const location = response.headers.get("Location");
  if (!location) throw new Error(`POST ${url}: 201 without a readable Location (Access-Control-Expose-Headers?)`);
  return { location: new URL(location, url).toString(), answer: text };
}

// Plays `url` by WHEP: a peer connection with recvonly video (preferring `videoMime`, e.g.
// "video/H264"; `only`: offering just that codec) and audio, `onTrack` called with each remote
// track's event. Reports `connected`/`failed`, `offer` and `answered` (detail: Location);
// returns {pc, location} once the answer is set.
async function playWhep(url, videoMime, only, onTrack) {
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: [] });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected" || pc.connectionState === "failed") event(pc.connectionState);
  });
  pc.addEventListener("track", onTrack);
  const video = pc.addTransceiver("video", { direction: "recvonly" });
  preferCodec(video, "video", videoMime, only, false);
  pc.addTransceiver("audio", { direction: "recvonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc, 5000);
  await event("offer", pc.localDescription.sdp);
  const { location, answer } = await postOffer(url, pc.localDescription.sdp);
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  await event("answered", location);
  return { pc, location };
}

// The figures the tests read, per kind: inbound (framesDecoded, packetsReceived, ...) and
// outbound (framesEncoded, packetsSent, ...), each with the codec's mimeType.
async function collectStats(pc) {
  const stats = await pc.getStats();
  const codecs = {};
  stats.forEach((s) => {
    if (s.type === "codec") codecs[s.id] = s.mimeType;
  });
  const out = {
    connectionState: pc.connectionState,
    iceConnectionState: pc.iceConnectionState,
    inbound: {},
    outbound: {},
  };
  stats.forEach((s) => {
    if (s.type === "inbound-rtp") {
      out.inbound[s.kind] = {
        packetsReceived: s.packetsReceived || 0,
        bytesReceived: s.bytesReceived || 0,
        packetsLost: s.packetsLost || 0,
        framesDecoded: s.framesDecoded || 0,
        keyFramesDecoded: s.keyFramesDecoded || 0,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        pliCount: s.pliCount || 0,
        totalSamplesReceived: s.totalSamplesReceived || 0,
        codec: codecs[s.codecId] || null,
      };
    } else if (s.type === "outbound-rtp") {
      out.outbound[s.kind] = {
        packetsSent: s.packetsSent || 0,
        bytesSent: s.bytesSent || 0,
        framesEncoded: s.framesEncoded || 0,
        keyFramesEncoded: s.keyFramesEncoded || 0,
        pliCount: s.pliCount || 0,
        codec: codecs[s.codecId] || null,
      };
    }
  });
  return out;
}

// Reports collectStats(pc) every second until the page goes away.
function reportStatsEverySecond(pc) {
  setInterval(async () => {
    try {
      await report("stats", { stats: await collectStats(pc) });
    } catch (e) {
      event("error", e.stack || e);
    }
  }, 1000);
}

// DELETEs the session `location` after `seconds` (when given) and closes `pc`.
function stopAfter(pc, location, seconds) {
  if (!(seconds > 0)) return;
  setTimeout(async () => {
    let status = "failed";
    try {
      status = (await fetch(location, { method: "DELETE" })).status;
    } catch (e) {
      status = String(e);
    }
    pc.close();
    event("stopped", status);
  }, seconds * 1000);
}
