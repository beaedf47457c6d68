// Opens a running service's status page in headless Chromium (Debian's /usr/bin/chromium driven
// by playwright-core), waits for the page to render what /api/status reports, takes a screenshot
// and checks its pixels. Prints one JSON line with what it saw; exit code 0 when every check holds.
//
//   node check-status-page.mjs <http-base-url> <screenshot.png> <encoder> <fingerprint> <job-id>
//   node check-status-page.mjs <http-base-url> <screenshot.png> --idle
//
// Run by tests/CacheService.Tests/StatusPageTests.cs, which starts the service, prewarms digits and
// keeps lookups going while this script watches the page. With --idle the service has had no traffic:
// the page is opened at 1280×1000 and, after a few polls, its throughput axis is checked. Both modes
// check the axis: five labels, distinct numbers rising in equal steps from 0.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, screenshotPath, encoder, fingerprint, jobId] = process.argv.slice(2);
const idle = encoder === "--idle";
if (!jobId && !idle) {
  console.error("usage: node check-status-page.mjs <url> <screenshot.png> (<encoder> <fingerprint> <job-id> | --idle)");
  process.exit(2);
}

const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const timeout = Number(process.env.STATUS_PAGE_TIMEOUT_MS || 30000);
const profile = mkdtempSync(join(tmpdir(), "embedcache-chromium-"));
const failures = [];
const seen = {};
const check = (ok, what) => { if (!ok) failures.push(what); };

// The throughput chart's y-axis labels, bottom to top, and what is wrong with them.
const axisLabels = page => page.$$eval("#chart-axis span", spans => spans.map(s => s.textContent).reverse());
function checkAxis(labels) {
  const values = labels.map(l => Number(l.replace(/,/g, "")));
  const steps = values.slice(1).map((v, i) => v - values[i]);
  check(labels.length === 5, `five axis labels (saw ${JSON.stringify(labels)})`);
  check(values.every(Number.isFinite), `axis labels are numbers (${JSON.stringify(labels)})`);
  check(new Set(labels).size === labels.length, `axis labels are distinct (${JSON.stringify(labels)})`);
  check(values[0] === 0, `the axis starts at 0 (${JSON.stringify(labels)})`);
  check(steps.every(d => d > 0 && d === steps[0]), `axis labels rise in equal steps (${JSON.stringify(labels)})`);
}

// No traffic: the axis of an all-zero chart, at the size the problem was seen.
async function checkIdle(page, errors) {
  await page.waitForFunction(() => Number(document.body.dataset.polls || 0) >= 3, null, { timeout });
  seen.axis = await axisLabels(page);
  seen.rates = await page.textContent("#rates");
  seen.errors = errors;
  checkAxis(seen.axis);
  check(seen.rates === "now: 0 keys/s, 0 encodes/s", `an idle rate line (was '${seen.rates}')`);
  check(errors.length === 0, `no script errors (${errors.join("; ")})`);
  await page.screenshot({ path: screenshotPath, fullPage: true });
}

// Colours the page uses (index.html): progress fill, lookups line, encodes line.
const colours = { bar: [0x2e, 0x9d, 0x58], lookups: [0x24, 0x63, 0xc9], encodes: [0xd9, 0x82, 0x2b] };

// Traffic running: encoders, the job's progress bar and a chart with lookups, then the screenshot's pixels.
async function checkBusy(page, errors) {
  // The encoder row with its fingerprint, a job row with a filled progress bar, and a throughput
  // chart that has seen lookups: each is a condition waited on, not a delay.
  // A wait that times out says which one it was and what the page showed then.
  const waitFor = async (what, fn, arg) => {
    try {
      await page.waitForFunction(fn, arg, { timeout });
    } catch (e) {
      const shown = await page.evaluate(() => ({
        encoders: document.querySelectorAll("#encoders tbody tr").length,
        jobs: document.querySelectorAll("#jobs tbody tr").length,
        rates: document.getElementById("rates")?.textContent,
        uptime: document.getElementById("uptime")?.textContent,
        error: document.getElementById("error")?.textContent,
        hits: document.getElementById("hits")?.textContent,
      })).catch(() => null);
      throw new Error(`waiting for ${what}: ${e?.message ?? e}; the page showed ${JSON.stringify(shown)}`);
    }
  };
  await waitFor("the encoder row", ([name, fp]) => [...document.querySelectorAll("#encoders tbody tr")]
    .some(tr => tr.cells[0]?.textContent === name && tr.cells[1]?.textContent === fp), [encoder, fingerprint]);
  await waitFor("the job's progress bar", id => [...document.querySelectorAll("#jobs tbody tr")]
    .some(tr => tr.cells[0]?.textContent === id && Number(tr.querySelector(".progress")?.dataset.ratio) > 0), jobId);
  await waitFor("a lookup rate", () => /[1-9]\d* keys\/s/.test(document.getElementById("rates").textContent), null);

  seen.title = await page.title();
  seen.encoders = await page.$$eval("#encoders tbody tr", rows => rows.map(r => [...r.cells].map(c => c.textContent)));
  seen.tiers = await page.$$eval("#tiers tbody tr", rows => rows.map(r => [...r.cells].map(c => c.textContent)));
  seen.jobs = await page.$$eval("#jobs tbody tr", rows => rows.map(r => ({
    id: r.cells[0].textContent, state: r.cells[1].textContent, ratio: Number(r.querySelector(".progress")?.dataset.ratio ?? -1),
    text: r.querySelector(".progress .text")?.textContent,
  })));
  seen.hitRate = await page.textContent("#hit-rate");
  seen.rates = await page.textContent("#rates");
  seen.axis = await axisLabels(page);
  seen.errors = errors;

  checkAxis(seen.axis);
  check(seen.title === "EmbedCache status", `title is '${seen.title}'`);
  check(seen.tiers.length > 0 && seen.tiers.every(t => Number(t[2].replace(/,/g, "")) >= 0), "a tiers row with an item count");
  check(seen.tiers.some(t => Number(t[2].replace(/,/g, "")) > 0), "a tier holding items");
  check(/^\d+(\.\d)?%$/.test(seen.hitRate), `hit rate shown as a percentage (was '${seen.hitRate}')`);
  check(errors.length === 0, `no script errors (${errors.join("; ")})`);

  const png = await page.screenshot({ path: screenshotPath, fullPage: true });
  // Count the pixels of each colour by drawing the screenshot onto a canvas in a blank page.
  const probe = await page.context().newPage();
  const counts = await probe.evaluate(async ([b64, wanted]) => {
    const img = new Image();
    img.src = "data:image/png;base64," + b64;
    await img.decode();
    const canvas = new OffscreenCanvas(img.width, img.height);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, img.width, img.height).data;
    const out = { width: img.width, height: img.height };
    for (const [name, [r, g, b]] of Object.entries(wanted)) {
      let n = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i] - r) < 12 && Math.abs(data[i + 1] - g) < 12 && Math.abs(data[i + 2] - b) < 12) n++;
      }
      out[name] = n;
    }
    return out;
  }, [png.toString("base64"), colours]);
  seen.screenshot = counts;
  // A 220×16 bar at any visible fill is at least a few hundred pixels; each chart line, 3 px thick
  // across the chart's width, well over a thousand (the legend's swatch alone is 100).
  check(counts.bar >= 150, `progress-bar pixels in the screenshot (${counts.bar})`);
  check(counts.lookups >= 1000, `lookups-line pixels in the screenshot (${counts.lookups})`);
  check(counts.encodes >= 1000, `encodes-line pixels in the screenshot (${counts.encodes})`);
}

let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: idle ? { width: 1280, height: 1000 } : { width: 1400, height: 1000 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on("pageerror", e => errors.push(String(e)));
  await page.goto(url, { waitUntil: "load", timeout });
  if (idle)
    await checkIdle(page, errors);
  else
    await checkBusy(page, errors);
} catch (e) {
  failures.push(String(e?.message ?? e));
} finally {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
}

seen.failures = failures;
console.log(JSON.stringify(seen));
process.exit(failures.length === 0 ? 0 : 1);
