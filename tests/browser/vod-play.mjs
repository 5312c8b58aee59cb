#!/usr/bin/env node
// Opens the VOD player with ?video=NAME and waits until the video plays.
import { artifactPath, cli, run, watchPage } from './common.mjs';

const USAGE = `usage: node vod-play.mjs --url <player page url> --video <name> [--timeout <seconds>]

  --url      the player page (e.g. https://dxxxx.cloudfront.net/ or .../index.html)
  --video    the video name; the page plays /<name>/hls/<name>.m3u8
  --timeout  seconds to wait until the video plays (default 60)

Prints one JSON line; exit 0 when the <video> element plays (a 'playing' event and the
playback position advancing), 1 otherwise, 2 on a bad command line. Saves vod-play.png in
$ARTIFACTS_DIR (default tests/artifacts).`;

const args = cli(USAGE, {
  url: { required: true },
  video: { required: true },
  timeout: { default: '60', seconds: true },
});

await run('vod-play', async (browser, summary) => {
  const url = new URL(args.url);
  url.searchParams.set('video', args.video);
  Object.assign(summary, { url: url.href, video: args.video });
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  const log = watchPage(page);
  summary.log = log;
  const screenshot = artifactPath('vod-play.png');
  // Media events do not bubble; a capturing listener on the document sees them all.
  await page.addInitScript(() => {
    window.__vod = { playingAt: null, events: [] };
    for (const type of ['loadedmetadata', 'canplay', 'playing', 'error']) {
      document.addEventListener(type, (e) => {
        if (!(e.target instanceof HTMLVideoElement)) return;
        window.__vod.events.push(type);
        if (type === 'playing' && window.__vod.playingAt === null) window.__vod.playingAt = performance.now();
      }, true);
    }
  });

  try {
    const response = await page.goto(url.href, { waitUntil: 'load', timeout: args.timeout });
    if (!response || !response.ok()) throw new Error(`the page answered HTTP ${response?.status()}`);
    summary.mse = await page.evaluate(() => ({
      mediaSource: typeof MediaSource === 'function',
      h264aac: typeof MediaSource === 'function' &&
        MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"'),
      nativeHls: document.createElement('video').canPlayType('application/vnd.apple.mpegurl'),
      hlsJs: window.Hls ? window.Hls.version : null,
      hlsJsSupported: window.Hls ? window.Hls.isSupported() : false,
    }));

    // Playing: the event fired and the position moves on; or the page reports an error.
    let handle;
    try {
      handle = await page.waitForFunction(() => {
        const status = document.getElementById('status');
        if (status && status.classList.contains('error')) return { error: status.textContent.trim() };
        const v = document.getElementById('player');
        if (v && v.error) return { error: `media error ${v.error.code}: ${v.error.message}` };
        if (v && window.__vod.playingAt !== null && v.currentTime > 0.3) return { ok: true };
        return false;
      }, null, { timeout: args.timeout, polling: 100 });
    } catch {
      const state = await page.evaluate(() => {
        const v = document.getElementById('player');
        return { events: window.__vod.events, currentTime: v?.currentTime, readyState: v?.readyState,
          status: document.getElementById('status')?.textContent.trim() };
      }).catch(() => ({}));
      throw new Error(`the video did not play within ${args.timeout / 1000} s: ${JSON.stringify(state)}`);
    }
    const outcome = await handle.jsonValue();
    if (outcome.error) throw new Error(`the player reports: ${outcome.error}`);

    Object.assign(summary, await page.evaluate(() => {
      const v = document.getElementById('player');
      const nav = performance.getEntriesByType('navigation')[0];
      return {
        timeToPlayingMs: Math.round(window.__vod.playingAt - (nav ? nav.startTime : 0)),
        currentTime: Number(v.currentTime.toFixed(2)),
        duration: Number.isFinite(v.duration) ? Number(v.duration.toFixed(2)) : null,
        videoWidth: v.videoWidth,
        videoHeight: v.videoHeight,
        paused: v.paused,
        events: window.__vod.events,
        status: document.getElementById('status').textContent.trim(),
      };
    }));
    if (!summary.videoWidth) throw new Error('the video plays but has no picture (videoWidth 0)');
  } finally {
    await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
    summary.screenshot = screenshot;
  }
  delete summary.log; // kept only for a failure
});
