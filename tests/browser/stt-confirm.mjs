#!/usr/bin/env node
// Follows the link of a confirmation mail in headless Chromium and presses the page's button.
import { artifactPath, cli, run, watchPage } from './common.mjs';

const USAGE = `usage: node stt-confirm.mjs --url <link from the mail> --expect <outcome>
                          [--locale <browser language>] [--timeout <seconds>]

  --url      the confirmation link (…/confirm.html#token=…)
  --expect   what the page must say after the button: confirmed (200), used (409),
             expired (410) or unknown (404)
  --locale   the browser's language (default en-US; ko-KR shows the page in Korean)
  --timeout  seconds to wait for the answer (default 60)

Prints one JSON line; exit 0 when the page shows the expected outcome, 1 otherwise, 2 on a
bad command line. Saves stt-confirm-<expect>.png in $ARTIFACTS_DIR (default tests/artifacts).`;

const args = cli(USAGE, {
  url: { required: true },
  expect: { required: true, choices: ['confirmed', 'used', 'expired', 'unknown'] },
  locale: { default: 'en-US' },
  timeout: { default: '60', seconds: true },
});
const STATUS = { confirmed: 200, used: 409, expired: 410, unknown: 404 };

await run('stt-confirm', async (browser, summary) => {
  Object.assign(summary, { expect: args.expect, locale: args.locale });
  const context = await browser.newContext({ locale: args.locale, viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  const log = watchPage(page);
  summary.log = log;
  const posts = [];
  page.on('response', (r) => {
    if (r.request().method() === 'POST') posts.push({ url: r.url(), status: r.status() });
  });
  try {
    const response = await page.goto(args.url, { waitUntil: 'load', timeout: args.timeout });
    if (!response || !response.ok()) throw new Error(`the page answered HTTP ${response?.status()}`);
    // Opening the page confirms nothing: only the button posts.
    if (posts.length) throw new Error(`the page posted before the button was pressed: ${JSON.stringify(posts)}`);
    summary.lang = await page.locator('html').getAttribute('lang');
    summary.button = (await page.locator('#confirm').textContent())?.trim();
    await page.locator('#confirm').click();
    const result = page.locator('#result.success, #result.error');
    try {
      await result.waitFor({ state: 'visible', timeout: args.timeout });
    } catch {
      throw new Error(`no answer on the page within ${args.timeout / 1000} s`);
    }
    summary.outcome = ((await result.getAttribute('class')) ?? '').includes('success') ? 'success' : 'error';
    summary.message = ((await result.textContent()) ?? '').trim();
    summary.httpStatus = posts.length ? posts[posts.length - 1].status : null;
    if (summary.httpStatus !== STATUS[args.expect]) {
      throw new Error(`expected HTTP ${STATUS[args.expect]} (${args.expect}), the API answered ${summary.httpStatus}: "${summary.message}"`);
    }
    const wanted = args.expect === 'confirmed' ? 'success' : 'error';
    if (summary.outcome !== wanted) throw new Error(`expected ${wanted}, the page shows ${summary.outcome}: "${summary.message}"`);
  } finally {
    await page.screenshot({ path: artifactPath(`stt-confirm-${args.expect}.png`), fullPage: true }).catch(() => {});
  }
  delete summary.log;
});
