// Drives the operator's console in the system's headless Chromium through the DevTools
// protocol (puppeteer-core, which downloads no browser), for tests/it/console.rs.
//
// Input: one JSON argument {base, chromium, streams: [key...], previewStream, readToken,
// adminToken, artifacts}. Output: progress lines on stderr and, as the last line on stdout,
// a JSON report of what the page showed; the Rust test asserts on it. Screenshots (PNG) go
// to `artifacts`. Each step is bounded; the browser is closed whatever happens.

import puppeteer from "puppeteer-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const cfg = JSON.parse(process.argv[2]);
const report = { steps: [], screenshots: [], previews: {}, errors: [] };
const log = (...a) => console.error("[console-drive]", ...a);
const STEP = 30_000;

fs.mkdirSync(cfg.artifacts, { recursive: true });
// This run's screenshots only (a failure screenshot of an earlier run would mislead).
for (const f of fs.readdirSync(cfg.artifacts)) if (f.endsWith(".png")) fs.rmSync(path.join(cfg.artifacts, f));
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "igw-console-chromium-"));

const browser = await puppeteer.launch({
  executablePath: cfg.chromium,
  headless: true,
  pipe: true,
  userDataDir: profile,
  defaultViewport: { width: 1400, height: 1000 },
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    // As in the other browser tests: with media permission granted, Chromium offers its real
    // (loopback) host candidates instead of mDNS names the gateway cannot resolve.
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
  ],
  env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: path.join(profile, ".config"), XDG_CACHE_HOME: path.join(profile, ".cache") },
});

async function shot(page, name, selector) {
  const file = path.join(cfg.artifacts, `${name}.png`);
  if (selector) {
    const el = await page.$(selector);
    if (el) await el.screenshot({ path: file });
    else await page.screenshot({ path: file });
  } else {
    await page.screenshot({ path: file, fullPage: true });
  }
  report.screenshots.push(file);
}

// The console patches its tables once a second: retry a click whose element was replaced
// between finding and clicking it.
async function click(page, selector) {
  for (let attempt = 1; ; attempt++) {
    try {
      await page.click(selector);
      return;
    } catch (e) {
      if (attempt >= 5 || !/detached|not clickable|No node/i.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const text = (page, selector) => page.$eval(selector, (e) => e.textContent ?? "").catch(() => "");

async function apiGet(p, token) {
  const res = await fetch(cfg.base + p, { headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function useToken(page, token) {
  await page.waitForSelector("#login:not([hidden])", { timeout: STEP });
  await page.type("#token", token);
  await page.click("#token-save");
  await page.waitForSelector("#conn[data-connected=true]", { timeout: STEP });
}

try {
  const page = await browser.newPage();
  page.on("dialog", (d) => void d.accept());
  page.on("pageerror", (e) => report.errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") log("page console:", m.text());
  });

  // 1. With API tokens configured, the console asks for one (the gateway answered 401).
  await page.goto(`${cfg.base}/console`, { waitUntil: "load", timeout: STEP });
  await page.waitForSelector("#login:not([hidden])", { timeout: STEP });
  report.login = await text(page, "#login-error");
  await shot(page, "01-token-asked");

  // 2. A read token: the live stream list.
  await useToken(page, cfg.readToken);
  await page.waitForFunction(
    (keys) => keys.every((k) => {
      const row = document.querySelector(`#streams tr[data-stream="${k}"]`);
      return row && !row.querySelector("td.video")?.textContent?.startsWith("—") && /kb\/s|Mb\/s/.test(row.querySelector("td.rate")?.textContent ?? "");
    }),
    { timeout: STEP },
    cfg.streams,
  );
  // Let a few events arrive (bitrates move once a second).
  await new Promise((r) => setTimeout(r, 2500));
  report.rows = await page.$$eval("#streams tbody tr", (rows) =>
    rows.map((r) => ({
      key: r.getAttribute("data-stream"),
      cells: Array.from(r.querySelectorAll("td")).map((td) => td.textContent ?? ""),
    })),
  );
  await shot(page, "02-streams");

  // 3. A read token cannot kick: the 403 shows.
  await click(page, `button[data-action=kick][data-stream="${cfg.streams[0]}"]`);
  await page.waitForFunction(() => /403/.test(document.getElementById("notice")?.textContent ?? ""), { timeout: STEP });
  report.kickNotice = await text(page, "#notice");
  await shot(page, "03-kick-refused-403", "body");

  // 4. The admin token from here on.
  await page.click("#token-change");
  await useToken(page, cfg.adminToken);

  // 5a. Start recording the second stream (it records while the previews run).
  await click(page, `button[data-action=record][data-stream="${cfg.streams[1]}"]`);
  await page.waitForSelector(`#recordings tr td.state.recording`, { timeout: STEP });
  report.recordingNotice = await text(page, "#notice");

  // 5. Previews in each protocol: the decoded-frame counter must grow.
  for (const protocol of ["whep", "flv", "h5", "hls"]) {
    await page.select("#preview-stream", cfg.previewStream);
    await page.select("#preview-protocol", protocol);
    await page.click("#preview-play");
    const started = Date.now();
    const result = { protocol };
    try {
      await page.waitForFunction(
        (p) => {
          const s = document.getElementById("preview-stats");
          return s?.dataset.protocol === p && Number(s.dataset.frames) >= 20;
        },
        { timeout: 40_000, polling: 250 },
        protocol,
      );
      result.firstFramesMs = Date.now() - started;
      const a = Number(await page.$eval("#preview-stats", (e) => e.dataset.frames));
      await new Promise((r) => setTimeout(r, 2000));
      const b = Number(await page.$eval("#preview-stats", (e) => e.dataset.frames));
      Object.assign(result, { framesBefore: a, framesAfter: b });
    } catch (e) {
      result.error = String(e);
    }
    await page.waitForFunction(() => !/…$/.test(document.getElementById("preview-plan")?.textContent ?? "…"), { timeout: 5000 }).catch(() => {});
    result.stats = await text(page, "#preview-stats");
    // The stream's row while this viewer plays: its viewers and the conversions it needs.
    await page.$$eval(`#streams tr[data-stream="${cfg.previewStream}"] details`, (d) => d.forEach((e) => (e.open = true)));
    await new Promise((r) => setTimeout(r, 1200));
    result.row = await page.$eval(`#streams tr[data-stream="${cfg.previewStream}"]`, (r) =>
      Array.from(r.querySelectorAll("td")).map((td) => td.textContent ?? ""),
    ).catch(() => []);
    if (protocol === "whep") await shot(page, "04-streams-while-previewing-whep", "#streams-section");
    result.plan = await text(page, "#preview-plan");
    report.previews[protocol] = result;
    log("preview", JSON.stringify(result));
    await page.$eval("#preview-section", (e) => e.scrollIntoView());
    await shot(page, `04-preview-${protocol}`, "#preview-section");
  }
  await page.click("#preview-stop");

  // 5b. A clip of the last 10 s, and the recording stopped.
  await click(page, `button[data-action=clip][data-stream="${cfg.previewStream}"]`);
  await page.waitForFunction(() => /clip of .*: http/.test(document.getElementById("notice")?.textContent ?? ""), { timeout: STEP });
  report.clipNotice = await text(page, "#notice");
  await click(page, `button[data-action=record-stop][data-stream="${cfg.streams[1]}"]`);
  await page.waitForFunction(
    (key) => Array.from(document.querySelectorAll("#recordings tbody tr")).some(
      (r) => r.children[1]?.textContent === key && /stopped/.test(r.children[2]?.textContent ?? ""),
    ),
    { timeout: STEP },
    cfg.streams[1],
  );
  report.recordings = await page.$$eval("#recordings tbody tr", (rows) =>
    rows.map((r) => Array.from(r.querySelectorAll("td")).map((td) => td.textContent ?? "")),
  );
  await shot(page, "04-recording-and-clip", "#recordings-section");

  // 5c. A push to the CDN origin and a pull back from it (the pulled stream goes live here),
  // then both stopped from their rows.
  const relayLive = (kind) => page.waitForFunction(
    (k) => Array.from(document.querySelectorAll("#relays tbody tr")).some(
      (r) => r.children[0]?.textContent === k && r.getAttribute("data-state") === "live",
    ),
    { timeout: STEP },
    kind,
  );
  await page.$eval("#relays-section", (e) => e.scrollIntoView());
  await page.select("#push-stream", cfg.previewStream);
  await page.$eval("#push-url", (e, v) => { e.value = v; }, cfg.pushUrl);
  await click(page, "#push-form button[type=submit]");
  await relayLive("push");
  await page.$eval("#pull-url", (e, v) => { e.value = v; }, cfg.pushUrl);
  await page.$eval("#pull-stream", (e, v) => { e.value = v; }, cfg.pulledStream);
  await click(page, "#pull-form button[type=submit]");
  await relayLive("pull");
  await page.waitForSelector(`#streams tr[data-stream="${cfg.pulledStream}"]`, { timeout: STEP });
  report.relays = await page.$$eval("#relays tbody tr", (rows) =>
    rows.map((r) => Array.from(r.querySelectorAll("td")).slice(0, 5).map((td) => td.textContent ?? "")),
  );
  report.pulledRow = await page.$eval(`#streams tr[data-stream="${cfg.pulledStream}"]`, (r) =>
    Array.from(r.querySelectorAll("td")).map((td) => td.textContent ?? ""),
  );
  await shot(page, "04-push-and-pull", "#relays-section");
  await click(page, "button[data-action=pull-stop]");
  await click(page, "button[data-action=push-stop]");
  await page.waitForFunction(() => document.querySelectorAll("#relays tbody tr").length === 0, { timeout: STEP });
  report.relaysAfterStop = await page.$$eval("#relays tbody tr", (rows) => rows.length);

  // 6. The matrix table: a cell's plan on hover.
  const cell = 'td.cell[data-from="rtmp"][data-to="webrtc"]';
  await page.$eval(cell, (e) => e.scrollIntoView({ block: "center" }));
  await page.hover(cell);
  await page.waitForFunction(() => /appsrc/.test(document.getElementById("matrix-tip")?.textContent ?? ""), { timeout: STEP });
  report.hoverTip = await text(page, "#matrix-tip");
  report.matrixCells = await page.$$eval("#matrix td.cell", (c) => c.length);
  await shot(page, "05-matrix-hover");
  await page.mouse.move(0, 0);

  // 7. An edit with an error: typed into the editor, the line:col message shows, Apply is
  //    off, and the generation does not move.
  const g0 = (await apiGet("/api/v1/matrix", cfg.adminToken)).body.generation;
  report.generationBefore = g0;
  const selectIn = (needle, after) =>
    page.$eval(
      "#matrix-editor",
      (ed, needle, after) => {
        const from = ed.value.indexOf(after);
        const at = ed.value.indexOf(needle, from < 0 ? 0 : from);
        ed.focus();
        ed.setSelectionRange(at, at + needle.length);
        return at;
      },
      needle,
      after,
    );
  await page.waitForFunction(() => document.getElementById("matrix-status")?.dataset.valid === "true", { timeout: STEP });
  // rtmp -> webrtc: `audio: aac->opus` becomes `aac->opsu` (no such codec).
  await selectIn("aac->opus", "\n  rtmp:\n");
  await page.keyboard.type("aac->opsu", { delay: 20 });
  await page.waitForSelector("#matrix-problems li.problem", { timeout: STEP });
  report.problems = await page.$$eval("#matrix-problems li.problem", (l) => l.map((e) => e.textContent));
  report.applyDisabled = await page.$eval("#matrix-apply", (b) => b.disabled);
  await page.$eval("#matrix-editor", (e) => e.scrollIntoView({ block: "center" }));
  await shot(page, "06-matrix-error", "#matrix-section");
  report.generationAfterError = (await apiGet("/api/v1/matrix", cfg.adminToken)).body.generation;

  // 8. A good edit: rtmp -> h5 scaled to 480 wide instead of 640; applied with a reload.
  await page.click("#matrix-revert");
  await page.waitForFunction(() => document.getElementById("matrix-status")?.dataset.valid === "true", { timeout: STEP });
  await selectIn("width: 640", "\n  rtmp:\n");
  await page.keyboard.type("width: 480", { delay: 20 });
  await page.waitForFunction(() => /not applied yet/.test(document.getElementById("matrix-status")?.textContent ?? ""), { timeout: STEP });
  await page.click("#matrix-apply");
  await page.waitForFunction(() => /matrix applied/.test(document.getElementById("notice")?.textContent ?? ""), { timeout: STEP });
  report.appliedNotice = await text(page, "#notice");
  const applied = (await apiGet("/api/v1/matrix", cfg.adminToken)).body;
  report.generationApplied = applied.generation;
  report.appliedWidth = applied.matrix.rules.rtmp.h5.params.width;
  await page.waitForFunction((g) => document.getElementById("matrix-generation")?.dataset.generation === String(g), { timeout: STEP }, applied.generation);
  report.appliedCell = await text(page, 'td.cell[data-from="rtmp"][data-to="h5"]');
  await shot(page, "07-matrix-applied", "#matrix-section");

  // 9. One click back to the previous matrix.
  await page.waitForFunction(() => !document.getElementById("matrix-rollback")?.disabled, { timeout: STEP });
  await page.click("#matrix-rollback");
  await page.waitForFunction(() => /rolled back/.test(document.getElementById("notice")?.textContent ?? ""), { timeout: STEP });
  report.rollbackNotice = await text(page, "#notice");
  const back = (await apiGet("/api/v1/matrix", cfg.adminToken)).body;
  report.generationRolledBack = back.generation;
  report.rolledBackWidth = back.matrix.rules.rtmp.h5.params.width;
  await page.waitForFunction((g) => document.getElementById("matrix-generation")?.dataset.generation === String(g), { timeout: STEP }, back.generation);
  report.rolledBackCell = await text(page, 'td.cell[data-from="rtmp"][data-to="h5"]');
  await shot(page, "08-matrix-rolled-back", "#matrix-section");
  await shot(page, "09-whole-console");
  report.ok = true;
} catch (e) {
  report.ok = false;
  report.failure = String(e?.stack ?? e);
  try {
    const pages = await browser.pages();
    if (pages.length) await shot(pages[pages.length - 1], "99-failure");
  } catch {
    /* best effort */
  }
} finally {
  await browser.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(report));
