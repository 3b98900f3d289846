// A live preview of one stream in the protocol the operator picks, beside the plan the
// gateway uses for that viewer: WHEP (RTCPeerConnection), HTTP-FLV (mpegts.js), H5 (JSMpeg
// over a WebSocket) and HLS (hls.js). The decoded-frame count shows under the picture (and in
// `#preview-stats[data-frames]`).

import Hls from "hls.js";
import mpegts from "mpegts.js";
import JSMpeg from "@cycjimmy/jsmpeg-player";

import { api, ApiError } from "./api";
import { $, h } from "./dom";
import { latest } from "./streams";
import type { Leg, PlanView } from "./types";

export type PreviewProtocol = "whep" | "flv" | "h5" | "hls";

/** The matrix column each preview plays as. */
const COLUMN: Record<PreviewProtocol, string> = { whep: "webrtc", flv: "rtmp", h5: "h5", hls: "hls" };
const LABEL: Record<PreviewProtocol, string> = { whep: "WHEP", flv: "HTTP-FLV", h5: "H5", hls: "HLS" };

interface Player {
  frames(): Promise<number>;
  size(): string;
  stop(): void;
}

let current: { player: Player; protocol: PreviewProtocol; key: string } | null = null;
let generation = 0;

/** Where the media endpoints are: this origin, or the media port when the API has its own. */
function mediaBase(ws = false): string {
  const port = latest?.media_port;
  const host = port && String(port) !== location.port ? `${location.hostname}:${port}` : location.host;
  const secure = location.protocol === "https:";
  return ws ? `${secure ? "wss" : "ws"}://${host}` : `${location.protocol}//${host}`;
}

function videoElement(): HTMLVideoElement {
  const video = h("video", { autoplay: "", playsinline: "", controls: "" }) as HTMLVideoElement;
  video.muted = true;
  return video;
}

function videoFrames(video: HTMLVideoElement): number {
  return video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
}

async function iceGatheringComplete(pc: RTCPeerConnection, ms: number): Promise<void> {
  if (pc.iceGatheringState === "complete") return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

async function whep(key: string, area: HTMLElement): Promise<Player> {
  const video = videoElement();
  area.append(video);
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const media = new MediaStream();
  video.srcObject = media;
  pc.ontrack = (ev) => media.addTrack(ev.track);
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc, 3000);
  const res = await fetch(`${mediaBase()}/whep/${encodeURIComponent(key)}`, {
    method: "POST",
    headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription!.sdp,
  });
  if (res.status !== 201) {
    pc.close();
    throw new Error(`WHEP answered ${res.status}: ${await res.text()}`);
  }
  const location = res.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  return {
    async frames() {
      let frames = 0;
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded ?? 0;
      });
      return frames;
    },
    size: () => `${video.videoWidth}×${video.videoHeight}`,
    stop() {
      pc.close();
      if (location) void fetch(new URL(location, mediaBase()).toString(), { method: "DELETE" }).catch(() => {});
    },
  };
}

function flv(key: string, area: HTMLElement): Player {
  const video = videoElement();
  area.append(video);
  const player = mpegts.createPlayer(
    { type: "flv", isLive: true, url: `${mediaBase()}/live/${encodeURIComponent(key)}.flv` },
    { enableWorker: false, liveBufferLatencyChasing: true, lazyLoad: false },
  );
  player.attachMediaElement(video);
  player.load();
  void Promise.resolve(player.play()).catch(() => {});
  return {
    frames: async () => videoFrames(video),
    size: () => `${video.videoWidth}×${video.videoHeight}`,
    stop() {
      player.pause();
      player.unload();
      player.detachMediaElement();
      player.destroy();
    },
  };
}

function h5(key: string, area: HTMLElement): Player {
  const canvas = h("canvas", { class: "jsmpeg" }) as HTMLCanvasElement;
  area.append(canvas);
  let decoded = 0;
  const player = new JSMpeg.Player(`${mediaBase(true)}/h5/${encodeURIComponent(key)}`, {
    canvas,
    autoplay: true,
    audio: false,
    preserveDrawingBuffer: true,
    reconnectInterval: 2,
    onVideoDecode: () => {
      decoded += 1;
    },
  });
  return {
    frames: async () => decoded,
    size: () => `${canvas.width}×${canvas.height}`,
    stop: () => player.destroy(),
  };
}

function hls(key: string, area: HTMLElement): Player {
  const video = videoElement();
  area.append(video);
  const url = `${mediaBase()}/hls/${encodeURIComponent(key)}/index.m3u8`;
  let instance: Hls | null = null;
  if (Hls.isSupported()) {
    instance = new Hls({ lowLatencyMode: true });
    instance.loadSource(url);
    instance.attachMedia(video);
  } else {
    video.src = url;
  }
  void video.play().catch(() => {});
  return {
    frames: async () => videoFrames(video),
    size: () => `${video.videoWidth}×${video.videoHeight}`,
    stop() {
      instance?.destroy();
      video.removeAttribute("src");
      video.load();
    },
  };
}

function legText(track: string, leg: Leg | null, pipelines: Record<string, string>): string {
  if (!leg) return `${track}: none`;
  if (leg.action === "copy") return `${track}: copy ${leg.codec}`;
  const pipeline = pipelines[track] ? `\n    appsrc ! ${pipelines[track]} ! appsink` : "";
  return `${track}: convert ${leg.from} -> ${leg.to} (${leg.reason})${pipeline}`;
}

async function showPlan(key: string, protocol: PreviewProtocol): Promise<void> {
  const box = $("preview-plan");
  box.textContent = "…";
  try {
    const view = await api<PlanView>(
      "GET",
      `/api/v1/matrix/plan?stream=${encodeURIComponent(key)}&to=${COLUMN[protocol]}`,
    );
    box.textContent = [
      `plan ${view.plan.from} -> ${view.plan.to} for ${key}`,
      legText("video", view.plan.video, view.pipelines),
      legText("audio", view.plan.audio, view.pipelines),
    ].join("\n");
  } catch (e) {
    box.textContent = `no plan: ${e instanceof ApiError ? e.message : String(e)}`;
  }
}

export function stopPreview(): void {
  generation += 1;
  current?.player.stop();
  current = null;
  $("preview-area").replaceChildren();
  $("preview-plan").textContent = "";
  const stats = $("preview-stats");
  stats.textContent = "stopped";
  stats.dataset.frames = "0";
  stats.dataset.protocol = "";
}

export async function startPreview(key: string, protocol: PreviewProtocol): Promise<void> {
  stopPreview();
  if (!key) return;
  const mine = generation;
  const area = $("preview-area");
  const stats = $("preview-stats");
  stats.textContent = `${LABEL[protocol]}: starting…`;
  void showPlan(key, protocol);
  try {
    const make = { whep, flv, h5, hls }[protocol];
    const player = await make(key, area);
    if (mine !== generation) {
      player.stop();
      return;
    }
    current = { player, protocol, key };
    stats.dataset.protocol = protocol;
  } catch (e) {
    stats.textContent = `${LABEL[protocol]}: ${String(e)}`;
  }
}

/** Updates the frame counter twice a second. */
export function wirePreview(): void {
  $("preview-play").addEventListener("click", () => {
    void startPreview($<HTMLSelectElement>("preview-stream").value, $<HTMLSelectElement>("preview-protocol").value as PreviewProtocol);
  });
  $("preview-stop").addEventListener("click", stopPreview);
  setInterval(async () => {
    if (!current) return;
    const { player, protocol, key } = current;
    const frames = await player.frames();
    if (current?.player !== player) return;
    const stats = $("preview-stats");
    stats.dataset.frames = String(frames);
    stats.textContent = `${LABEL[protocol]} ${key}: ${frames} frames decoded, ${player.size()}`;
  }, 500);
}

/** Opens a preview of `key` in the protocol selected. */
export function previewStream(key: string): void {
  $<HTMLSelectElement>("preview-stream").value = key;
  void startPreview(key, $<HTMLSelectElement>("preview-protocol").value as PreviewProtocol);
  $("preview-section").scrollIntoView({ behavior: "smooth" });
}
