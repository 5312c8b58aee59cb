#!/usr/bin/env node
// Uploads an audio file through the STT upload page (direct to S3: one presigned POST, or
// parts PUT in parallel) and checks what the page shows: the progress bar, the upload's
// states, the outcome, in Korean or English, and optionally its accessibility (axe-core).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, resolve } from 'node:path';
import { artifactPath, cli, run, watchPage } from './common.mjs';

const USAGE = `usage: node stt-upload.mjs --url <page url> --file <audio path> --email <address>
                         --expect success|error|too-large [--language <code>]
                         [--ui-language ko|en] [--expect-state <state>] [--expect-text <text>]
                         [--break-part <n>] [--tamper-type <type>] [--upload-rate <MB/s>] [--axe]
                         [--screenshot <name>] [--timeout <seconds>]

  --url           the upload page (e.g. the stt_site_url output)
  --file          the audio file to upload
  --email         the address typed into the form (an invalid one for --expect error)
  --expect        the outcome the page must show:
                    success    the file reached S3 (#result.success) and #status reached
                               --expect-state
                    error      #result.error with the API's own refusal (a request was sent
                               and answered: not the page's check, not a network failure)
                    too-large  the page refused the file by itself, before any request to the
                               API, with a message that gives the maximum (the file must be
                               larger than the page's maxUploadBytes)
  --language      the recording's language to choose (default en-US)
  --ui-language   the page's language, chosen with its switch (#ui-language): ko or en
                  (default en)
  --expect-state  for success: the state #status must reach (data-state): waiting,
                  uploaded, transcribing, transcribed or mailed; a later one counts too
                  (default uploaded). For error: the state the upload must end in (failed,
                  expired), when the API accepted the file and the service gave up later.
  --expect-text   text the result must contain (default: the address; the file's name for
                  too-large)
  --break-part    make the first PUT of part <n> fail (network error) and check that the page
                  tried it again and completed the upload (needs a multipart upload)
  --tamper-type   change the Content-Type field of the form the page posts to S3 to <type>
                  on its way (as a page declaring one type and sending another would): S3
                  must refuse it (the POST policy), and with --expect error --expect-state
                  failed the page must give the upload up
  --upload-rate   cap the browser's upload at this many MB/s (Chromium's network emulation),
                  for a backend on this machine: over loopback 30 MB go in well under a
                  second, too fast to see the progress bar move (default: no cap)
  --axe           run axe-core on the page after it loads and again after the result shows;
                  fail on any serious or critical violation
  --screenshot    the screenshot's file name (default stt-upload-<expect>.png)
  --timeout       seconds to wait for the result and the state (default 60)

Prints one JSON line; exit 0 when the page shows the expected outcome, 1 otherwise, 2 on a
bad command line. Saves the screenshot in $ARTIFACTS_DIR (default tests/artifacts).`;

const STATES = ['waiting', 'uploaded', 'transcribing', 'transcribed', 'mailed'];
const GAVE_UP = ['failed', 'expired'];
const MULTIPART_ABOVE = 16 * 1024 * 1024;

const args = cli(USAGE, {
  url: { required: true },
  file: { required: true },
  email: { required: true },
  expect: { required: true, choices: ['success', 'error', 'too-large'] },
  language: { default: 'en-US' },
  'ui-language': { default: 'en', choices: ['ko', 'en'] },
  'expect-state': { choices: [...STATES, ...GAVE_UP] },
  'expect-text': {},
  'break-part': {},
  'tamper-type': {},
  'upload-rate': {},
  axe: { flag: true },
  screenshot: {},
  timeout: { default: '60', seconds: true },
});
const file = resolve(args.file);
if (!existsSync(file) || !statSync(file).isFile()) {
  console.error(`error: --file ${args.file}: no such file`);
  process.exit(2);
}
const fileSize = statSync(file).size;
const expectState = args['expect-state'] ?? (args.expect === 'success' ? 'uploaded' : null);
if (args.expect === 'success' && GAVE_UP.includes(expectState)) {
  console.error(`error: --expect-state ${expectState} is an error outcome: use --expect error\n\n${USAGE}`);
  process.exit(2);
}
const breakPart = args['break-part'] === undefined ? null : Number(args['break-part']);
if (breakPart !== null && !(Number.isInteger(breakPart) && breakPart > 0)) {
  console.error(`error: --break-part must be a part number (1, 2, …)\n\n${USAGE}`);
  process.exit(2);
}
// The address is in the page's messages about the upload, the file's name in its refusal.
const uploadRate = args['upload-rate'] === undefined ? null : Number(args['upload-rate']);
if (uploadRate !== null && !(uploadRate > 0)) {
  console.error(`error: --upload-rate must be a positive number of MB/s\n\n${USAGE}`);
  process.exit(2);
}
const expectText = args['expect-text'] ?? (args.expect === 'too-large' ? basename(file) : args.email);
const screenshotName = args.screenshot ?? `stt-upload-${args.expect}.png`;
const HANGUL = /[\uac00-\ud7a3]/;

await run('stt-upload', async (browser, summary) => {
  Object.assign(summary, {
    url: args.url, file: basename(file), size: fileSize, email: args.email, expect: args.expect,
    uiLanguage: args['ui-language'], expectState,
  });
  // An English browser: Korean comes only from the page's switch.
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 900, height: 900 } });
  const page = await context.newPage();
  const log = watchPage(page);
  summary.log = log;
  const screenshot = artifactPath(screenshotName);
  if (uploadRate) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: uploadRate * 1e6,
    });
    summary.uploadRateMBps = uploadRate;
  }

  // The page's requests, named after what they are for ("create 201", "part 2 200", …).
  let config = null;
  const calls = [];
  const apiRequests = [];
  const pending = [];
  const what = (request) => {
    const url = request.url();
    if (!config) return null;
    if (url === config.apiUrl) return 'create';
    if (url === config.statusUrl) {
      let action = null;
      try { action = request.postDataJSON()?.action ?? null; } catch { action = null; }
      return action ?? 'status';
    }
    const part = /[?&]partNumber=(\d+)/.exec(url);
    if (request.method() === 'PUT' && part) return `part ${part[1]}`;
    if (request.method() === 'POST') return 's3 POST';
    return null;
  };
  page.on('request', (r) => {
    if (config && (r.url() === config.apiUrl || r.url() === config.statusUrl)) apiRequests.push(r.url());
  });
  page.on('response', (r) => {
    const name = what(r.request());
    if (!name) return;
    calls.push({ name, status: r.status() });
    // The create answer tells the upload's shape.
    if (name === 'create' && r.status() < 300) {
      pending.push(r.json().then((body) => {
        summary.uploadMethod = body?.upload?.method ?? null;
        if (body?.upload?.parts) summary.parts = body.upload.parts.length;
      }).catch(() => {}));
    }
  });
  page.on('requestfailed', (r) => {
    const name = what(r);
    if (name) calls.push({ name, status: 0, failure: r.failure()?.errorText });
  });

  // --break-part: the first PUT of that part fails as a network error; the rest go through.
  const broken = breakPart === null ? null : { partNumber: breakPart, broken: 0, triesAfter: 0 };
  if (broken) {
    await page.route((url) => url.searchParams.get('partNumber') === String(breakPart), async (route) => {
      if (route.request().method() !== 'PUT') return route.continue();
      if (broken.broken === 0) {
        broken.broken += 1;
        return route.abort('failed');
      }
      broken.triesAfter += 1;
      return route.continue();
    });
  }

  // --tamper-type: the form's Content-Type field rewritten on its way to S3.
  const tamper = args['tamper-type'] ? { to: args['tamper-type'], from: null } : null;
  if (tamper) {
    await page.route(() => true, async (route) => {
      const request = route.request();
      if (request.method() !== 'POST' || what(request) !== 's3 POST') return route.continue();
      const body = request.postDataBuffer()?.toString('latin1') ?? '';
      const field = /(name="Content-Type"\r\n\r\n)([^\r]*)(\r\n)/;
      const found = field.exec(body);
      if (!found) return route.continue();
      tamper.from = found[2];
      return route.continue({ postData: Buffer.from(body.replace(field, `$1${tamper.to}$3`), 'latin1') });
    });
    summary.tampered = tamper;
  }

  const axeSource = args.axe
    ? readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')
    : null;
  summary.axe = args.axe ? {} : undefined;
  // page.evaluate is not subject to the page's Content-Security-Policy (an injected <script>
  // would be).
  async function axe(when) {
    if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
    const found = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const counts = { minor: 0, moderate: 0, serious: 0, critical: 0 };
    const bad = [];
    for (const v of found.violations) {
      counts[v.impact] = (counts[v.impact] ?? 0) + 1;
      if (v.impact === 'serious' || v.impact === 'critical') {
        bad.push(`${v.id} (${v.impact}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}: ${v.help}`);
      }
    }
    summary.axe[when] = { ...counts, ids: found.violations.map((v) => v.id) };
    if (bad.length) throw new Error(`axe-core, ${when}: ${bad.join(' | ')}`);
  }

  try {
    const response = await page.goto(args.url, { waitUntil: 'load', timeout: args.timeout });
    if (!response || !response.ok()) throw new Error(`the page answered HTTP ${response?.status()}`);
    config = await page.evaluate(() => window.STT_CONFIG ?? null);
    summary.maxUploadBytes = config?.maxUploadBytes ?? null;
    if (args.expect === 'too-large' && !(fileSize > summary.maxUploadBytes)) {
      throw new Error(`--expect too-large needs a file larger than the page's maxUploadBytes (${summary.maxUploadBytes}), not ${fileSize} bytes`);
    }

    const configError = page.locator('#config-error');
    if (await configError.isVisible()) {
      throw new Error(`the page shows a configuration error: ${(await configError.textContent()).trim()}`);
    }

    // The language, through the page's own switch.
    const ui = args['ui-language'];
    await page.locator(`#ui-language [data-lang="${ui}"]`).click();
    summary.lang = await page.locator('html').getAttribute('lang');
    if (summary.lang !== ui) throw new Error(`after the switch to ${ui}, <html lang> is "${summary.lang}"`);
    const pressed = await page.locator(`#ui-language [data-lang="${ui}"]`).getAttribute('aria-pressed');
    if (pressed !== 'true') throw new Error(`the switch's ${ui} button is not aria-pressed after the click`);
    const label = (await page.locator('label[for="email"]').textContent()).trim();
    if (HANGUL.test(label) !== (ui === 'ko')) throw new Error(`the e-mail label "${label}" is not in ${ui}`);
    summary.fileHint = (await page.locator('#file-hint').textContent()).trim();
    summary.languages = await page.locator('#language option').count();
    summary.defaultLanguage = await page.locator('#language').inputValue();
    if (args.axe) await axe('afterLoad');

    await page.locator('#email').fill(args.email);
    const chosen = await page.locator('#language').selectOption(args.language).catch(() => []);
    if (!chosen.includes(args.language)) throw new Error(`language ${args.language} is not offered by the page`);
    summary.language = args.language;
    await page.locator('#file').setInputFiles(file);
    const submitted = Date.now();
    await page.locator('#submit').click();

    // Samples the bar and the state every ~100 ms until the outcome is there.
    const progressSamples = [];
    const states = [];
    let uploadMs = null;
    let seen;
    const deadline = submitted + args.timeout;
    for (;;) {
      seen = await page.evaluate(() => {
        const r = document.getElementById('result');
        return {
          progress: Number(document.getElementById('progress').value),
          barShown: !document.getElementById('progress-row').hidden,
          result: r.hidden ? null : r.classList.contains('success') ? 'success' : r.classList.contains('error') ? 'error' : null,
          state: document.getElementById('status').getAttribute('data-state'),
        };
      });
      if (seen.barShown && progressSamples[progressSamples.length - 1] !== seen.progress) progressSamples.push(seen.progress);
      if (seen.state && states[states.length - 1] !== seen.state) states.push(seen.state);
      if (seen.result && uploadMs === null) uploadMs = Date.now() - submitted;
      if (done(seen)) break;
      if (Date.now() > deadline) {
        throw new Error(`no ${args.expect} within ${args.timeout / 1000} s: result ${seen.result}, states ${states.join(' → ') || 'none'}`);
      }
      await page.waitForTimeout(100);
    }
    await Promise.all(pending);
    const result = page.locator('#result');
    const text = ((await result.textContent()) ?? '').trim();
    const pageStatus = await result.getAttribute('data-http-status');
    Object.assign(summary, {
      outcome: seen.result,
      message: text,
      role: await result.getAttribute('role'),
      httpStatus: pageStatus === null ? null : Number(pageStatus),
      progressSamples,
      states,
      statusText: ((await page.locator('#status').textContent()) ?? '').trim(),
      uploadMs,
      httpStatuses: collapse(calls),
      progressLabel: (await page.locator('#progress-label').textContent())?.trim(),
    });
    if (broken) summary.brokenParts = [broken];
    if (args.axe) await axe('afterResult');

    if (summary.outcome !== (args.expect === 'success' ? 'success' : 'error')) {
      throw new Error(`expected ${args.expect}, the page shows ${summary.outcome}: "${text}"`);
    }
    if (summary.outcome === 'error' && summary.role !== 'alert') {
      throw new Error(`the error is not announced: #result has role="${summary.role}", not alert`);
    }
    if (!text.toLowerCase().includes(expectText.toLowerCase())) {
      throw new Error(`the ${summary.outcome} message "${text}" does not contain "${expectText}"`);
    }
    if (ui === 'ko' && !HANGUL.test(text)) throw new Error(`the message "${text}" is not in Korean`);

    if (args.expect === 'too-large') {
      // The page's own refusal: nothing went to the API, and the limit is said.
      if (apiRequests.length) throw new Error(`the page sent ${apiRequests.length} request(s) to the API for a file over its limit`);
      const limit = /\d[\d.,]*\s?(?:bytes|바이트|KB|MB|GB)/.exec(summary.fileHint)?.[0];
      if (!limit) throw new Error(`the file hint "${summary.fileHint}" does not give the maximum`);
      if (!text.includes(limit)) throw new Error(`the refusal "${text}" does not give the maximum ${limit}`);
      summary.maximum = limit;
    } else if (args.expect === 'error') {
      const create = calls.find((c) => c.name === 'create');
      if (!create) throw new Error(`the page refused by itself, nothing was sent: "${text}"`);
      if (summary.httpStatus === 0 || create.status === 0) {
        throw new Error(`the API was not reached (network or CORS failure): "${text}"`);
      }
      if (expectState && seen.state !== expectState) {
        throw new Error(`the upload ended in state ${seen.state}, not ${expectState}`);
      }
      if (tamper) {
        const post = calls.find((c) => c.name === 's3 POST');
        if (!tamper.from) throw new Error('no form to S3 was seen to change its Content-Type');
        if (!post || post.status !== 403) throw new Error(`S3 answered the changed form ${post?.status}, not 403`);
      }
    } else {
      if (summary.progressLabel === undefined || Number(await page.locator('#progress').getAttribute('value')) !== 100) {
        throw new Error(`the progress bar ends at ${progressSamples.at(-1)}, not 100`);
      }
      // A large file's bar must move, not jump from 0 to 100.
      const between = new Set(progressSamples.filter((p) => p > 0 && p < 100));
      if (fileSize > MULTIPART_ABOVE && between.size < 3) {
        throw new Error(`the progress bar took ${between.size} value(s) between 0 and 100 (${progressSamples.join(', ')}); 3 at least for ${fileSize} bytes` +
          (uploadRate ? '' : ' (a backend on this machine takes it too fast to see: try --upload-rate 15)'));
      }
      if (!summary.uploadMethod) throw new Error('the create answer was not seen (no upload method)');
      if (broken) {
        const ok = calls.some((c) => c.name === `part ${breakPart}` && c.status === 200);
        const completed = calls.some((c) => c.name === 'complete' && c.status === 200);
        broken.retried = broken.triesAfter > 0 && ok;
        broken.completed = completed;
        if (summary.uploadMethod !== 'MULTIPART') throw new Error(`--break-part needs a multipart upload, the API chose ${summary.uploadMethod}`);
        if (!broken.broken) throw new Error(`part ${breakPart} was never sent (the upload has ${summary.parts} parts)`);
        if (!broken.retried) throw new Error(`part ${breakPart} failed and was not sent again successfully`);
        if (!completed) throw new Error('the upload was not completed after the retried part');
      }
    }
  } finally {
    await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
    summary.screenshot = screenshot;
  }
  delete summary.log; // kept only for a failure
});

// Whether the outcome the test waits for is on the page.
function done(seen) {
  if (!seen.result) return false;
  if (args.expect === 'too-large') return true;
  if (seen.result === 'error') {
    return args.expect === 'success' || !expectState || !seen.state || seen.state === expectState;
  }
  // A success so far: --expect error with a state waits for the service to give up.
  if (args.expect === 'error') return seen.state === 'mailed';
  return STATES.indexOf(seen.state) >= STATES.indexOf(expectState);
}

// "status 200" ×5 → one entry "status 200 ×5".
function collapse(list) {
  const out = [];
  for (const c of list) {
    const label = `${c.name} ${c.status}${c.failure ? ` (${c.failure})` : ''}`;
    const last = out[out.length - 1];
    if (last && last.label === label) last.n += 1;
    else out.push({ label, n: 1 });
  }
  return out.map((e) => (e.n > 1 ? `${e.label} ×${e.n}` : e.label));
}
