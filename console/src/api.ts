// The control API as the console calls it: the bearer token (asked for when the gateway
// answers 401, kept in sessionStorage) goes in the Authorization header of every request,
// never in a URL; server-sent events are read with fetch() streaming for that reason
// (EventSource cannot send headers).

const TOKEN_KEY = "interop-gateway.api-token";

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An API answer that was not 2xx, with the gateway's `{"error"}` text. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

/** Called when the gateway answers 401 (no or a bad token). */
let onUnauthorized: (message: string) => void = () => {};
export function whenUnauthorized(f: (message: string) => void): void {
  onUnauthorized = f;
}

function headers(json: boolean): Headers {
  const h = new Headers();
  const t = token();
  if (t) h.set("Authorization", `Bearer ${t}`);
  if (json) h.set("Content-Type", "application/json");
  return h;
}

async function failure(res: Response): Promise<ApiError> {
  let body: unknown = null;
  let message = `${res.status} ${res.statusText}`;
  try {
    body = await res.json();
    const error = (body as { error?: string })?.error;
    if (error) message = `${res.status}: ${error}`;
  } catch {
    /* not JSON */
  }
  if (res.status === 401) onUnauthorized(message);
  if (res.status === 403) message += " (this needs the admin role)";
  return new ApiError(res.status, message, body);
}

/** A JSON request; resolves with the parsed answer (null for 204). */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return null as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : null) as T;
}

/**
 * Reads `/api/v1/events` until `signal` aborts: each `state` event's data goes to
 * `onState`. Reconnects after a drop (2 s later); a 401 stops until a token is given.
 */
export async function followEvents(
  onState: (data: unknown) => void,
  onStatus: (connected: boolean, why?: string) => void,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    try {
      const res = await fetch("/api/v1/events", { headers: headers(false), signal });
      if (!res.ok || !res.body) {
        const err = await failure(res);
        onStatus(false, err.message);
        if (res.status === 401 || res.status === 403) return;
      } else {
        onStatus(true);
        await readEvents(res.body, (event, data) => {
          if (event === "state") onState(JSON.parse(data));
        });
        onStatus(false, "the event stream ended");
      }
    } catch (e) {
      if (signal.aborted) return;
      onStatus(false, String(e));
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** Splits a server-sent event stream into `(event, data)` pairs. */
export async function readEvents(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: string, data: string) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
      }
      if (data.length) onEvent(event, data.join("\n"));
    }
  }
}
