// The shapes the console reads from the API (see src/api/ in the gateway).

export interface Video { codec: string; width: number; height: number; fps: number | null; bframes: boolean }
export interface Audio { codec: string; sample_rate: number; channels: number }
export interface Conversion {
  track: string; from: string; to: string; consumers: number; reason: string;
  params: string; pipeline: string; frames_in: number; frames_out: number; error: string | null;
}
export interface Session { id: number; protocol: string; transport: string; remote: string | null; since: number; bytes_out: number }
export interface StreamView {
  key: string;
  publisher: { id: number; protocol: string; transport: string; remote: string | null; since: number };
  video: Video | null;
  audio: Audio | null;
  consumers: Record<string, number>;
  sessions: Session[];
  conversions: Conversion[];
  bytes_in: number;
  reconnecting: boolean;
  reconnects: number;
  owner?: string;
}
export interface Relay {
  id: string; kind?: string; stream: string; url: string; state: string;
  active_url?: string; error?: string; reason?: string; next_attempt?: unknown; [k: string]: unknown;
}
export interface Recording {
  id: string; stream: string; state: string; duration?: number; size?: number; url?: string; error?: string;
  [k: string]: unknown;
}
export interface ClusterNode { node: string; relay: string; cpu: number; published: number; relayed: number; viewers: number; seen_ms_ago: number }
export interface Snapshot {
  streams: StreamView[];
  bitrates: Record<string, { in_bps: number; out_bps: number }>;
  pushes: Relay[];
  pulls: Relay[];
  recordings: Recording[];
  cluster: { node?: string; nodes?: ClusterNode[]; error?: string } | null;
  matrix_generation: number;
  media_port: number;
}
export interface Leg { action: "copy" | "convert"; codec?: string; from?: string; to?: string; reason?: string }
export interface PlanView { plan: { from: string; to: string; video: Leg | null; audio: Leg | null }; pipelines: Record<string, string> }
