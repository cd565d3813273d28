// End-to-end test of the quern dashboard in headless Chromium, against a
// running coordinator with workers (the Rust harness starts them).
//
// Env: QUERN_URL (http://127.0.0.1:PORT), QUERN_USER and QUERN_PASSWORD (an
// admin), QUERN_BOOKS (two text files, ':'-separated), QUERN_SCREENSHOTS (a
// directory for PNGs), QUERN_DOWNLOAD (where the downloaded part-r-00000
// goes); optional CHROMIUM (default /usr/bin/chromium) and
// QUERN_E2E_TIMEOUT_MS (how long a job may take, default 180000).
//
// Exits 0 when every step passed; otherwise prints the failed step and why,
// saves failure.png, and exits 1.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

// axe-core checks each page against WCAG 2.1 A and AA (labels, names,
// roles, contrast, …). It is evaluated through the DevTools protocol,
// which the page's Content-Security-Policy does not govern.
const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const accessibility = [];

const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const started = Date.now();
let step = 'setup';

class StepFailure extends Error {}

function fail(message) {
  throw new StepFailure(message);
}

function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`dashboard e2e: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const BASE = env('QUERN_URL').replace(/\/+$/, '');
const USER = env('QUERN_USER');
const PASSWORD = env('QUERN_PASSWORD');
const BOOKS = env('QUERN_BOOKS').split(':').filter(Boolean);
const SHOTS = env('QUERN_SCREENSHOTS');
const DOWNLOAD = env('QUERN_DOWNLOAD');
const JOB_TIMEOUT = Number(process.env.QUERN_E2E_TIMEOUT_MS || 180_000);

if (BOOKS.length !== 2) {
  console.error(`dashboard e2e: QUERN_BOOKS must name two files, got ${BOOKS.length}`);
  process.exit(2);
}
for (const b of BOOKS) {
  if (!path.isAbsolute(b) || !fs.statSync(b, { throwIfNoEntry: false })?.isFile()) {
    console.error(`dashboard e2e: ${b} is not an absolute path of a file`);
    process.exit(2);
  }
}
fs.mkdirSync(SHOTS, { recursive: true });
fs.mkdirSync(path.dirname(DOWNLOAD), { recursive: true });

const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}`);

async function run(name, fn) {
  step = name;
  log(`▶ ${name}`);
  await fn();
}

async function shot(page, name, { fullPage = false } = {}) {
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage });
  log(`  screenshot ${file}`);
  await audit(page, name);
}

/** Records the serious and critical WCAG 2.1 A/AA problems axe finds on
 *  the page as it is now. */
async function audit(page, name) {
  await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
    const result = await window.axe.run(document, { runOnly: { type: 'tag', values: tags } });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map((n) => `${n.target.join(' ')} ${n.html}`).join(', ')}`);
  });
  for (const problem of found) accessibility.push(`${name}: ${problem}`);
  for (const problem of found) log(`  accessibility problem: ${problem}`);
  log(`  accessibility: ${found.length ? `${found.length} problem(s)` : 'no serious or critical WCAG 2.1 AA problem'}`);
}

/** Polls `probe` (async, returns a value or null/undefined) until it returns
 *  something, up to `timeout` ms; `what` says what was awaited on timeout. */
async function until(probe, what, timeout = 20_000, interval = 200) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) fail(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** The job page's state, from its live region ("running", "succeeded", …). */
async function jobState(page) {
  const region = page.locator('#job-state');
  if (!(await region.count())) return '';
  const badge = region.locator('[data-state]');
  return (await badge.count()) ? (await badge.first().getAttribute('data-state')) || '' : '';
}

/** Every task cell's accessible name (the cells are the buttons whose name
 *  starts with "Map task N (m-0000N)" or "Reduce task N (r-0000N)"). */
async function cellNames(page) {
  return page.getByRole('button', { name: /^(Map|Reduce) task \d+ \([mr]-\d{5}\)/ }).evaluateAll((els) => els.map((e) => e.getAttribute('aria-label')));
}

/** Calls the API from the page with the dashboard's token. */
async function apiFromPage(page, apiPath) {
  return page.evaluate(async (p) => {
    const res = await fetch(`/api/v1${p}`, { headers: { Authorization: `Bearer ${sessionStorage.getItem('quern.token')}` } });
    return { status: res.status, body: await res.json() };
  }, apiPath);
}

async function openNav(page, name, heading) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

async function submitJob(page, { app, params = {}, files = null, useUploads = [] }) {
  await openNav(page, 'Submit', 'Submit a job');
  await page.getByLabel('App', { exact: true }).selectOption(app);
  for (const [name, value] of Object.entries(params)) {
    const input = page.getByLabel(name, { exact: true });
    if (!(await input.count())) fail(`the submit form shows no input labelled "${name}" for app ${app}`);
    await input.fill(value);
  }
  let locations = [];
  if (files) {
    await page.getByLabel('Upload files').setInputFiles(files);
    const uploaded = page.getByRole('list', { name: 'Uploaded files' }).getByRole('listitem');
    await until(async () => (await uploaded.count()) >= files.length, `${files.length} uploaded files to be listed`, 60_000);
    const alert = (await page.getByRole('alert').allTextContents()).join(' ').trim();
    if (alert) fail(`uploading showed an error: ${alert}`);
    locations = await uploaded.locator('code').allTextContents();
    for (const name of files.map((f) => path.basename(f))) {
      if (!(await page.getByLabel(`Use ${name}`).first().isChecked())) fail(`the fresh upload ${name} is not selected as an input`);
    }
  }
  for (const name of useUploads) {
    for (const box of await page.getByLabel(`Use ${name}`).all()) await box.check();
  }
  const output = await page.getByLabel('Output', { exact: true }).inputValue();
  if (!output.startsWith(`output-${app}-`)) fail(`the proposed output "${output}" is not output-${app}-<timestamp>`);
  return { locations, output };
}

async function pressSubmit(page) {
  await page.getByRole('button', { name: 'Submit job' }).click();
  await until(async () => /#\/jobs\/\d+$/.test(page.url()) || (await page.getByRole('alert').allTextContents()).join('').trim(),
    'the new job page (or an error)', 30_000);
  const m = page.url().match(/#\/jobs\/(\d+)$/);
  if (!m) fail(`submitting failed: ${(await page.getByRole('alert').allTextContents()).join(' ').trim()}`);
  await page.getByRole('heading', { level: 1, name: `Job #${m[1]}` }).waitFor();
  return m[1];
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run'],
  });
  // Reduced motion: no transition or pulse is caught half-way by a
  // screenshot or by axe's contrast check.
  const context = await browser.newContext({ viewport: LAPTOP, acceptDownloads: true, reducedMotion: 'reduce' });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const pageErrors = [];
  const consoleErrors = [];
  page.on('pageerror', (e) => pageErrors.push(`${step}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${step}: ${m.text()}`); });
  let loads = 0;
  page.on('load', () => { loads += 1; });

  try {
    await run('log in through the form', async () => {
      await page.goto(`${BASE}/`);
      await page.waitForURL(/#\/login$/);
      await page.getByLabel('Username').fill(USER);
      await page.getByLabel('Password').fill(`${PASSWORD}-wrong`);
      await page.getByRole('button', { name: 'Log in' }).click();
      await until(async () => (await page.getByRole('alert').textContent())?.trim(), 'the wrong-password alert');
      await page.getByLabel('Password').fill(PASSWORD);
      await shot(page, '01-login.png');
      const before = (await page.getByRole('alert').textContent()).trim();
      await page.getByRole('button', { name: 'Log in' }).click();
      // The alert empties on submit and fills again if the login fails.
      await until(async () => /#\/jobs$/.test(page.url())
        || ((await page.getByRole('alert').count()) && (await page.getByRole('alert').textContent()).trim()),
      'the jobs page (or a login error)');
      if (!/#\/jobs$/.test(page.url())) fail(`logging in as ${USER} failed: ${(await page.getByRole('alert').textContent()).trim() || before}`);
      await page.getByRole('heading', { level: 1, name: 'Jobs' }).waitFor();
      const who = await page.getByRole('banner').textContent();
      if (!who.includes(USER)) fail(`the top bar does not show the signed-in user ${USER}`);
    });

    await run('see the jobs page (laptop and phone)', async () => {
      await page.getByRole('table').waitFor();
      await until(async () => (await page.getByRole('status').allTextContents()).some((t) => /\d+ jobs?/.test(t)), 'the job count');
      await shot(page, '02-jobs.png');
      await page.setViewportSize(PHONE);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 0) fail(`on a phone the page is ${overflow} px wider than the screen (tables should scroll inside)`);
      await shot(page, '02-jobs-phone.png');
      await page.setViewportSize(LAPTOP);
    });

    let first;
    let uploads;
    await run('submit a wordcount job over two uploaded books', async () => {
      uploads = await submitJob(page, { app: 'wordcount', files: BOOKS });
      if (uploads.locations.length !== 2) fail(`expected 2 upload locations, got ${uploads.locations.length}`);
      log(`  uploaded: ${uploads.locations.join(', ')}`);
      await shot(page, '03-submit.png', { fullPage: true });
      first = await pressSubmit(page);
      log(`  job ${first}`);
    });

    await run(`watch job ${first} succeed on the live task grid (no reloads)`, async () => {
      const state = await jobState(page);
      await shot(page, (state === 'succeeded' ? '04-job-early.png' : '04-job-running.png'));
      const url = page.url();
      const loadsBefore = loads;
      await page.evaluate(() => { window.__quernE2eNoReload = true; });
      let seen = new Set([state]);
      await until(async () => {
        const s = await jobState(page);
        seen.add(s);
        if (s === 'failed' || s === 'killed') {
          const err = await apiFromPage(page, `/jobs/${first}`);
          fail(`job ${first} ended ${s}: ${err.body.error || '(no error text)'}`);
        }
        if (s !== 'succeeded') return false;
        const names = await cellNames(page);
        return names.length > 0 && names.every((n) => / succeeded,/.test(n));
      }, `job ${first} and all its task cells to say succeeded`, JOB_TIMEOUT, 250);
      if (page.url() !== url || loads !== loadsBefore || !(await page.evaluate(() => window.__quernE2eNoReload === true))) {
        fail('the job page reloaded or navigated while it was watched');
      }
      log(`  states seen: ${[...seen].filter(Boolean).join(' → ')}`);
      const tasks = await apiFromPage(page, `/jobs/${first}/tasks`);
      const names = await cellNames(page);
      if (names.length !== tasks.body.length) fail(`the grid shows ${names.length} cells, the job has ${tasks.body.length} tasks`);
      for (const group of ['Map tasks', 'Reduce tasks']) {
        if (!(await page.getByRole('list', { name: group }).count())) fail(`no task group labelled "${group}"`);
      }
      await page.getByRole('heading', { name: 'Output' }).waitFor();
      await shot(page, '04-job.png', { fullPage: true });
    });

    await run('download part-r-00000 from the output list', async () => {
      const button = page.getByRole('button', { name: 'Download part-r-00000' });
      const [download] = await Promise.all([page.waitForEvent('download'), button.click()]);
      if (download.suggestedFilename() !== 'part-r-00000') fail(`the download is named ${download.suggestedFilename()}`);
      await download.saveAs(DOWNLOAD);
      const size = fs.statSync(DOWNLOAD).size;
      const listed = (await apiFromPage(page, `/jobs/${first}/output`)).body.files.find((f) => f.name === 'part-r-00000');
      if (!listed) fail('the output has no part-r-00000');
      if (size !== listed.bytes) fail(`downloaded ${size} bytes, the output lists ${listed.bytes}`);
      log(`  saved ${size} bytes to ${DOWNLOAD}`);
    });

    await run('open a task: its attempts and log', async () => {
      const cell = page.getByRole('button', { name: /^Map task 0 \(m-00000\)/ });
      await cell.focus();
      await page.keyboard.press('Enter');
      await page.waitForURL(/#\/jobs\/\d+\/tasks\/m-00000$/);
      await page.getByRole('heading', { level: 1, name: 'Task m-00000' }).waitFor();
      const rows = page.getByRole('table', { name: 'Attempts' }).getByRole('row');
      await until(async () => (await rows.count()) >= 2, 'the attempts table');
      const text = await page.getByRole('table', { name: 'Attempts' }).textContent();
      if (!/succeeded/i.test(text)) fail('no attempt of m-00000 says succeeded');
      const logRegion = page.getByRole('region', { name: /^Attempt \d+ log$/ }).first();
      await logRegion.locator('pre').waitFor();
      await shot(page, '05-task-log.png', { fullPage: true });
    });

    await run('see the two workers', async () => {
      await openNav(page, 'Workers', 'Workers');
      const rows = page.getByRole('table', { name: 'Workers' }).locator('tbody').getByRole('row');
      const alive = await until(async () => {
        const states = await rows.evaluateAll((trs) => trs.map((tr) => tr.querySelector('[data-state]')?.getAttribute('data-state')));
        return states.filter((s) => s === 'alive').length === 2 ? states : null;
      }, 'two alive workers');
      log(`  workers: ${alive.join(', ')}`);
      await shot(page, '06-workers.png');
    });

    await run('submit a slow job over the same uploads and kill it', async () => {
      await submitJob(page, { app: 'slow', params: { ms: '200' }, useUploads: BOOKS.map((b) => path.basename(b)) });
      const shown = await page.getByRole('list', { name: 'Uploaded files' }).getByRole('listitem').locator('code').allTextContents();
      for (const loc of uploads.locations) if (!shown.includes(loc)) fail(`the earlier upload ${loc} is not offered again`);
      const second = await pressSubmit(page);
      log(`  job ${second}`);
      await until(async () => {
        const s = await jobState(page);
        if (s === 'succeeded' || s === 'failed' || s === 'killed') fail(`the slow job ended ${s} before it was killed`);
        return s === 'running';
      }, `job ${second} to run`, 60_000);
      await page.getByRole('button', { name: 'Kill job' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.waitFor();
      await shot(page, '07-kill-confirm.png');
      await dialog.getByRole('button', { name: 'Kill job' }).click();
      await until(async () => (await jobState(page)) === 'killed', `job ${second} to say killed`, 30_000);
      if (await page.getByRole('button', { name: 'Kill job' }).isVisible()) fail('the Kill button is still shown for a killed job');
      await shot(page, '07-killed.png', { fullPage: true });
    });

    await run('the jobs list shows both jobs', async () => {
      await openNav(page, 'Jobs', 'Jobs');
      for (const id of [first]) await page.getByRole('link', { name: `#${id}`, exact: true }).waitFor();
      await shot(page, '08-jobs-after.png');
    });

    await run('the dark scheme passes the same checks', async () => {
      await page.emulateMedia({ colorScheme: 'dark' });
      await shot(page, '09-jobs-dark.png');
      await page.getByRole('link', { name: `#${first}`, exact: true }).click();
      await page.getByRole('heading', { level: 1, name: `Job #${first}` }).waitFor();
      await shot(page, '10-job-dark.png', { fullPage: true });
      await page.emulateMedia({ colorScheme: 'light' });
    });

    if (pageErrors.length) fail(`uncaught errors in the page:\n  ${pageErrors.join('\n  ')}`);
    if (accessibility.length) fail(`accessibility problems (axe-core, WCAG 2.1 AA):\n  ${accessibility.join('\n  ')}`);
    const csp = consoleErrors.filter((e) => /Content Security Policy/i.test(e));
    if (csp.length) fail(`Content-Security-Policy violations:\n  ${csp.join('\n  ')}`);
    if (consoleErrors.length) log(`console errors (not fatal):\n  ${consoleErrors.join('\n  ')}`);
    log('dashboard e2e: every step passed');
  } catch (e) {
    const failure = path.join(SHOTS, 'failure.png');
    await page.screenshot({ path: failure, fullPage: true }).catch(() => {});
    console.error(`\ndashboard e2e FAILED at step "${step}": ${e instanceof StepFailure ? e.message : e.stack || e}`);
    console.error(`  page: ${page.url()}\n  screenshot: ${failure}`);
    if (pageErrors.length) console.error(`  page errors:\n    ${pageErrors.join('\n    ')}`);
    if (consoleErrors.length) console.error(`  console errors:\n    ${consoleErrors.slice(-10).join('\n    ')}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

// A stuck browser must not hang the harness.
const watchdog = setTimeout(() => {
  console.error(`dashboard e2e FAILED: still at step "${step}" after 10 minutes`);
  process.exit(1);
}, 10 * 60_000);
watchdog.unref();

main().catch((e) => {
  console.error(`dashboard e2e FAILED at step "${step}": ${e.stack || e}`);
  process.exit(1);
});
