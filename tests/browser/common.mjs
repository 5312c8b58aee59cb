// Shared by the browser test scripts: the command line, Debian's chromium, artifacts and the
// one-line JSON summary.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));

/** Flags for a root user on a machine without internet (no sandbox, no background traffic). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Parses `--name value` options; `spec` maps names to {required, default, choices, seconds,
 * flag}. A bad command line prints the usage and exits 2. `seconds` options become
 * milliseconds; a `flag` takes no value and is true or false.
 */
export function cli(usage, spec) {
  const options = Object.fromEntries(Object.entries(spec).map(([k, s]) => [k, { type: s.flag ? 'boolean' : 'string' }]));
  options.help = { type: 'boolean', short: 'h' };
  let values;
  try {
    ({ values } = parseArgs({ options, allowPositionals: false }));
  } catch (e) {
    usageExit(usage, e.message);
  }
  if (values.help) { console.log(usage); process.exit(0); }
  for (const [k, s] of Object.entries(spec)) {
    if (s.flag) { values[k] = values[k] === true; continue; }
    if (values[k] === undefined && s.default !== undefined) values[k] = s.default;
    if (values[k] === undefined && s.required) usageExit(usage, `missing --${k}`);
    if (values[k] === undefined) continue;
    if (s.choices && !s.choices.includes(values[k])) {
      usageExit(usage, `--${k} must be one of ${s.choices.join(', ')}, not "${values[k]}"`);
    }
    if (s.seconds) {
      const n = Number(values[k]);
      if (!Number.isFinite(n) || n <= 0) usageExit(usage, `--${k} must be a positive number of seconds`);
      values[k] = Math.round(n * 1000);
    }
  }
  return values;
}

function usageExit(usage, message) {
  console.error(`error: ${message}\n\n${usage}`);
  process.exit(2);
}

/** The directory for screenshots: $ARTIFACTS_DIR, else tests/artifacts; created. */
export function artifactsDir() {
  const dir = process.env.ARTIFACTS_DIR
    ? resolve(process.env.ARTIFACTS_DIR)
    : resolve(here, '..', 'artifacts');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function artifactPath(name) {
  return join(artifactsDir(), name);
}

/** Debian's chromium (or $CHROMIUM), headless; never a downloaded browser. */
export async function launch() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  try {
    return await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
  } catch (e) {
    throw new Error(`could not start chromium at ${executablePath} (set $CHROMIUM): ${e.message.split('\n')[0]}`);
  }
}

/**
 * What the Content-Security-Policy refused on any page: a refusal fails the test (the pages
 * must work under the policy CloudFront serves them with).
 */
const cspViolations = [];
/** The policy the last page was served with, reported in the summary. */
let servedCsp = null;

/** Records what the page says and fails, for the failure message. */
export function watchPage(page) {
  const log = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && m.text().includes('Content Security Policy')) cspViolations.push(m.text());
    if (m.type() === 'error' || m.type() === 'warning') log.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) {
      servedCsp = r.headers()['content-security-policy'] ?? null;
    }
  });
  page.on('pageerror', (e) => log.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => log.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) log.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`); });
  return log;
}

/**
 * Runs a test body: prints one JSON line (ok true/false plus the body's fields) and exits
 * 0 on success, 1 on failure (2 on a bad command line, before this runs).
 */
export async function run(test, body) {
  const summary = { test, ok: false };
  const started = Date.now();
  let browser;
  try {
    browser = await launch();
    await body(browser, summary);
    if (cspViolations.length) {
      throw new Error(`the Content-Security-Policy refused: ${cspViolations.join(' | ')}`);
    }
    summary.ok = true;
  } catch (e) {
    summary.error = e instanceof Error ? e.message : String(e);
  } finally {
    summary.elapsedMs = Date.now() - started;
    summary.contentSecurityPolicy = servedCsp;
    if (browser) await browser.close().catch(() => {});
  }
  console.log(JSON.stringify(summary));
  if (!summary.ok) {
    console.error(`${test}: FAILED: ${summary.error}`);
    if (summary.log?.length) console.error(summary.log.map((l) => `  ${l}`).join('\n'));
  }
  process.exit(summary.ok ? 0 : 1);
}
