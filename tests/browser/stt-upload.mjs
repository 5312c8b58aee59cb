#!/usr/bin/env node
// Uploads an audio file through the STT upload page and checks the outcome the page shows.
import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { artifactPath, cli, run, watchPage } from './common.mjs';

const USAGE = `usage: node stt-upload.mjs --url <page url> --file <audio path> --email <address>
                         --expect success|error [--language <code>] [--expect-text <text>]
                         [--timeout <seconds>]

  --url          the upload page (e.g. the stt_site_url output)
  --file         the audio file to upload
  --email        the address typed into the form (an invalid one for --expect error)
  --expect       the outcome the page must show: success (#result.success, "Uploaded")
                 or error (#result.error with the API's own message, not a network error)
  --language     the language to choose (default en-US)
  --expect-text  text the result must contain (default: the address for success,
                 "email" for error)
  --timeout      seconds to wait for the result (default 60)

Prints one JSON line; exit 0 when the page shows the expected outcome, 1 otherwise, 2 on a
bad command line. Saves stt-upload-<expect>.png in $ARTIFACTS_DIR (default tests/artifacts).`;

const args = cli(USAGE, {
  url: { required: true },
  file: { required: true },
  email: { required: true },
  expect: { required: true, choices: ['success', 'error'] },
  language: { default: 'en-US' },
  'expect-text': {},
  timeout: { default: '60', seconds: true },
});
const file = resolve(args.file);
if (!existsSync(file) || !statSync(file).isFile()) {
  console.error(`error: --file ${args.file}: no such file`);
  process.exit(2);
}
const expectText = args['expect-text'] ?? (args.expect === 'success' ? args.email : 'email');

await run('stt-upload', async (browser, summary) => {
  Object.assign(summary, { url: args.url, file: basename(file), email: args.email, expect: args.expect });
  const page = await browser.newPage({ viewport: { width: 900, height: 800 } });
  const log = watchPage(page);
  summary.log = log;
  const screenshot = artifactPath(`stt-upload-${args.expect}.png`);
  // The API's answers to the form's POST, as the network saw them.
  const posts = [];
  page.on('response', (r) => {
    if (r.request().method() === 'POST') posts.push({ url: r.url(), status: r.status() });
  });
  page.on('requestfailed', (r) => {
    if (r.method() === 'POST') posts.push({ url: r.url(), status: 0, failure: r.failure()?.errorText });
  });

  try {
    const response = await page.goto(args.url, { waitUntil: 'load', timeout: args.timeout });
    if (!response || !response.ok()) throw new Error(`the page answered HTTP ${response?.status()}`);

    const configError = page.locator('#config-error');
    if (await configError.isVisible()) {
      throw new Error(`the page shows a configuration error: ${(await configError.textContent()).trim()}`);
    }
    summary.languages = await page.locator('#language option').count();
    summary.defaultLanguage = await page.locator('#language').inputValue();

    await page.locator('#email').fill(args.email);
    const chosen = await page.locator('#language').selectOption(args.language).catch(() => []);
    if (!chosen.includes(args.language)) throw new Error(`language ${args.language} is not offered by the page`);
    summary.language = args.language;
    await page.locator('#file').setInputFiles(file);
    await page.locator('#submit').click();

    const result = page.locator('#result.success, #result.error');
    try {
      await result.waitFor({ state: 'visible', timeout: args.timeout });
    } catch {
      throw new Error(`no result on the page within ${args.timeout / 1000} s`);
    }
    const cls = (await result.getAttribute('class')) ?? '';
    const text = ((await result.textContent()) ?? '').trim();
    const pageStatus = await result.getAttribute('data-http-status');
    summary.outcome = cls.includes('success') ? 'success' : 'error';
    summary.message = text;
    summary.httpStatus = posts.length ? posts[posts.length - 1].status : null;
    summary.progress = Number(await page.locator('#progress').getAttribute('value'));
    summary.progressLabel = (await page.locator('#progress-label').textContent())?.trim();

    if (summary.outcome !== args.expect) {
      throw new Error(`expected ${args.expect}, the page shows ${summary.outcome}: "${text}"`);
    }
    if (args.expect === 'error') {
      // The API's own refusal, not the page's check or its generic network message.
      if (!posts.length) throw new Error(`the page refused by itself, nothing was sent: "${text}"`);
      if (pageStatus === '0' || summary.httpStatus === 0) {
        throw new Error(`the API was not reached (network or CORS failure): "${text}"`);
      }
    }
    if (!text.toLowerCase().includes(expectText.toLowerCase())) {
      throw new Error(`the ${summary.outcome} message "${text}" does not contain "${expectText}"`);
    }
    if (args.expect === 'success') {
      if (!text.includes('Uploaded')) throw new Error(`the success message "${text}" does not say "Uploaded"`);
      if (summary.progress !== 100) throw new Error(`the progress bar ends at ${summary.progress}, not 100`);
    }
  } finally {
    await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
    summary.screenshot = screenshot;
  }
  delete summary.log; // kept only for a failure
});
