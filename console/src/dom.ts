// Small DOM helpers.

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
}

type Child = Node | string | null | undefined | false;

export function h(tag: string, attrs: Record<string, string | undefined> = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

/** Shows a message in the notice bar (errors in red) for a while. */
let noticeTimer: number | undefined;
export function notice(text: string, error = false): void {
  const el = $("notice");
  el.textContent = text;
  el.className = error ? "error" : "ok";
  window.clearTimeout(noticeTimer);
  noticeTimer = window.setTimeout(() => { el.textContent = ""; el.className = ""; }, error ? 20000 : 8000);
}

export function bits(bps: number): string {
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mb/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(0)} kb/s`;
  return `${bps} b/s`;
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return "";
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} KiB`;
  return `${n} B`;
}

/**
 * Puts `rows` (each with a `key` attribute) into `body`, keeping a row that is there already
 * under its key and replacing only the cells that changed, so a button being clicked is not
 * swapped out from under the pointer by the next update.
 */
export function patchRows(body: HTMLElement, rows: HTMLElement[], key: string): void {
  const old = new Map<string, HTMLElement>();
  for (const row of Array.from(body.children) as HTMLElement[]) {
    const k = row.getAttribute(key);
    if (k !== null) old.set(k, row);
  }
  const next = rows.map((fresh) => {
    const current = old.get(fresh.getAttribute(key) ?? "");
    if (!current || current.children.length !== fresh.children.length) return fresh;
    for (const attr of Array.from(fresh.attributes)) current.setAttribute(attr.name, attr.value);
    Array.from(fresh.children).forEach((cell, i) => {
      const was = current.children[i];
      if (was.outerHTML !== cell.outerHTML) current.replaceChild(cell, was);
    });
    return current;
  });
  next.forEach((row, i) => {
    if (body.children[i] !== row) body.insertBefore(row, body.children[i] ?? null);
  });
  while (body.children.length > next.length) body.lastElementChild?.remove();
}
