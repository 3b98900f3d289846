// The conversion matrix: the publisher × viewer table (each cell's plan on hover) and the
// editor, which validates as you type with the `interop-gateway check` diagnostics
// (`line:col: message`), applies with a reload, and rolls back to the previous text.

import { api, ApiError } from "./api";
import { $, h, notice } from "./dom";
import type { Leg, PlanView } from "./types";

interface Rule { video: string; audio: string; params: Record<string, string> }
interface MatrixView {
  matrix: { version: number; protocols: Record<string, unknown>; rules: Record<string, Record<string, Rule>> };
  generation: number;
  last_reload: { ok: boolean; message: string; at: number } | null;
}
interface SourceView { file: string; yaml: string; previous: boolean; generation: number }
interface Problem { line: number; column: number; message: string }
interface CheckView { valid: boolean; problems: Problem[] }

let shownGeneration = -1;
/** The text as loaded from the gateway (edits are compared with it). */
let loaded = "";
let checkTimer: number | undefined;
let checkSeq = 0;

const ORDER = ["webrtc", "h5", "miniprogram", "rtmp", "udp", "cdn", "hls"];
function rank(protocol: string): number {
  const i = ORDER.indexOf(protocol);
  return i < 0 ? ORDER.length : i;
}

function ruleText(rule: string): string {
  return rule === "copy" ? "copy" : rule;
}

function legText(leg: Leg | null): string {
  if (!leg) return "none";
  return leg.action === "copy" ? `copy ${leg.codec}` : `${leg.from} → ${leg.to} (${leg.reason})`;
}

async function cellPlan(cell: HTMLElement, from: string, to: string): Promise<void> {
  const tip = $("matrix-tip");
  const place = () => {
    const r = cell.getBoundingClientRect();
    // Kept inside the window: a cell at the right edge gets its tip to the left.
    const width = Math.min(560, document.documentElement.clientWidth - 16);
    tip.style.maxWidth = `${width}px`;
    const left = Math.max(8, Math.min(r.left, document.documentElement.clientWidth - width - 8));
    tip.style.left = `${window.scrollX + left}px`;
    tip.style.top = `${window.scrollY + r.bottom + 4}px`;
    tip.hidden = false;
  };
  if (cell.dataset.plan) {
    tip.textContent = cell.dataset.plan;
    place();
    return;
  }
  try {
    const view = await api<PlanView>("GET", `/api/v1/matrix/plan?from=${from}&to=${to}`);
    const lines = [`${from} → ${to} (a typical ${from} stream)`, `video: ${legText(view.plan.video)}`, `audio: ${legText(view.plan.audio)}`];
    for (const [track, p] of Object.entries(view.pipelines)) lines.push(`${track} pipeline: appsrc ! ${p} ! appsink`);
    cell.dataset.plan = lines.join("\n");
  } catch (e) {
    cell.dataset.plan = `${from} → ${to}: ${e instanceof ApiError ? e.message : String(e)}`;
  }
  cell.title = cell.dataset.plan;
  if (cell.matches(":hover")) {
    tip.textContent = cell.dataset.plan;
    place();
  }
}

function drawTable(view: MatrixView): void {
  const rules = view.matrix.rules;
  // The reference table's order (the JSON object's keys come sorted).
  const order = (keys: string[]) => keys.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const columns = order(Object.keys(view.matrix.protocols));
  const rows = order(Object.keys(rules));
  const table = $("matrix");
  const head = h("tr", {}, h("th", { class: "corner" }, "from ↓ / to →"), ...columns.map((c) => h("th", {}, c)));
  const body = rows.map((from) =>
    h(
      "tr",
      {},
      h("th", {}, from),
      ...columns.map((to) => {
        const rule = rules[from]?.[to];
        const converts = rule && [rule.video, rule.audio].some((r) => r.includes("->"));
        const cell = h(
          "td",
          { class: `cell ${converts ? "convert" : rule?.video === "auto" || rule?.audio === "auto" ? "auto" : "copy"}`, "data-from": from, "data-to": to },
          h("div", {}, `V ${ruleText(rule?.video ?? "?")}`),
          h("div", {}, `A ${ruleText(rule?.audio ?? "?")}`),
          rule && Object.keys(rule.params).length ? h("div", { class: "muted" }, Object.entries(rule.params).map(([k, v]) => `${k}=${v}`).join(" ")) : null,
        );
        cell.addEventListener("mouseenter", () => void cellPlan(cell, from, to));
        cell.addEventListener("mouseleave", () => ($("matrix-tip").hidden = true));
        return cell;
      }),
    ),
  );
  table.replaceChildren(h("thead", {}, head), h("tbody", {}, ...body));
  const last = view.last_reload ? `; last reload ${view.last_reload.ok ? "ok" : "refused"}` : "";
  $("matrix-generation").textContent = `(generation ${view.generation}${last})`;
  $("matrix-generation").dataset.generation = String(view.generation);
}

function drawGutter(problems: Problem[]): void {
  const editor = $<HTMLTextAreaElement>("matrix-editor");
  const lines = editor.value.split("\n").length;
  const bad = new Set(problems.map((p) => p.line));
  const gutter = $("matrix-gutter");
  gutter.replaceChildren(
    ...Array.from({ length: lines }, (_, i) => h("div", { class: bad.has(i + 1) ? "bad" : "" }, String(i + 1))),
  );
  gutter.scrollTop = editor.scrollTop;
}

function showProblems(check: CheckView): void {
  const status = $("matrix-status");
  const list = $("matrix-problems");
  const dirty = $<HTMLTextAreaElement>("matrix-editor").value !== loaded;
  status.className = check.valid ? "ok" : "error";
  status.textContent = check.valid
    ? dirty ? "valid — not applied yet" : "valid — this is the running matrix"
    : `${check.problems.length} problem${check.problems.length === 1 ? "" : "s"} — fix before applying`;
  status.dataset.valid = String(check.valid);
  list.replaceChildren(
    ...check.problems.map((p) => {
      const item = h("li", { class: "problem", "data-line": String(p.line), "data-column": String(p.column) }, `${p.line}:${p.column}: ${p.message}`);
      item.addEventListener("click", () => jumpTo(p.line, p.column));
      return item;
    }),
  );
  $<HTMLButtonElement>("matrix-apply").disabled = !check.valid || !dirty;
  drawGutter(check.problems);
}

function jumpTo(line: number, column: number): void {
  const editor = $<HTMLTextAreaElement>("matrix-editor");
  const lines = editor.value.split("\n");
  let offset = 0;
  for (let i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i].length + 1;
  offset += Math.max(0, column - 1);
  editor.focus();
  editor.setSelectionRange(offset, offset);
  const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 16;
  editor.scrollTop = Math.max(0, (line - 5) * lineHeight);
}

async function check(): Promise<void> {
  const seq = ++checkSeq;
  const yaml = $<HTMLTextAreaElement>("matrix-editor").value;
  try {
    const result = await api<CheckView>("POST", "/api/v1/matrix/check", { yaml });
    if (seq === checkSeq) showProblems(result);
  } catch (e) {
    if (seq === checkSeq) {
      $("matrix-status").textContent = `cannot check: ${e instanceof ApiError ? e.message : String(e)}`;
      $("matrix-status").className = "error";
      $<HTMLButtonElement>("matrix-apply").disabled = true;
      drawGutter([]);
    }
  }
}

async function loadSource(): Promise<void> {
  const source = await api<SourceView>("GET", "/api/v1/matrix/source");
  loaded = source.yaml;
  $<HTMLTextAreaElement>("matrix-editor").value = source.yaml;
  $("matrix-file").textContent = source.file;
  $<HTMLButtonElement>("matrix-rollback").disabled = !source.previous;
  await check();
}

/** Loads the table (and the text, unless it is being edited) when the generation moved. */
export async function refreshMatrix(generation?: number): Promise<void> {
  if (generation !== undefined && generation === shownGeneration) return;
  try {
    const view = await api<MatrixView>("GET", "/api/v1/matrix");
    shownGeneration = view.generation;
    drawTable(view);
    if ($<HTMLTextAreaElement>("matrix-editor").value === loaded) await loadSource();
  } catch (e) {
    $("matrix-status").textContent = `cannot load the matrix: ${e instanceof ApiError ? e.message : String(e)}`;
  }
}

async function apply(): Promise<void> {
  const yaml = $<HTMLTextAreaElement>("matrix-editor").value;
  try {
    const result = await api<{ generation: number; message: string }>("PUT", "/api/v1/matrix", { yaml });
    notice(`matrix applied (generation ${result.generation}): ${result.message}`);
    loaded = yaml;
    await refreshMatrix();
  } catch (e) {
    if (e instanceof ApiError && e.status === 422 && (e.body as CheckView)?.problems) {
      showProblems({ valid: false, problems: (e.body as CheckView).problems });
    }
    notice(`matrix not applied — ${e instanceof ApiError ? e.message : String(e)}`, true);
  }
}

async function rollback(): Promise<void> {
  try {
    const result = await api<{ generation: number }>("POST", "/api/v1/matrix/rollback");
    notice(`rolled back to the previous matrix (generation ${result.generation})`);
    $<HTMLTextAreaElement>("matrix-editor").value = loaded; // not dirty: reloaded below
    await refreshMatrix();
  } catch (e) {
    notice(`rollback refused — ${e instanceof ApiError ? e.message : String(e)}`, true);
  }
}

export function wireMatrix(): void {
  document.body.append(h("pre", { id: "matrix-tip", class: "tip", hidden: "" }));
  const editor = $<HTMLTextAreaElement>("matrix-editor");
  editor.addEventListener("input", () => {
    window.clearTimeout(checkTimer);
    $("matrix-status").textContent = "checking…";
    drawGutter([]);
    checkTimer = window.setTimeout(() => void check(), 250);
  });
  editor.addEventListener("scroll", () => ($("matrix-gutter").scrollTop = editor.scrollTop));
  editor.addEventListener("keydown", (ev) => {
    if (ev.key === "Tab") {
      ev.preventDefault();
      editor.setRangeText("  ", editor.selectionStart, editor.selectionEnd, "end");
      editor.dispatchEvent(new Event("input"));
    }
  });
  $("matrix-apply").addEventListener("click", () => void apply());
  $("matrix-rollback").addEventListener("click", () => void rollback());
  $("matrix-revert").addEventListener("click", () => {
    editor.value = loaded;
    void check();
  });
}
