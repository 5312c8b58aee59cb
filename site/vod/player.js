// The video player of the video-on-demand system.
//
// Served from the output bucket's CloudFront distribution, the same origin as the videos.
// The converter writes each video's HLS master playlist to {name}/hls/{name}.m3u8; this page
// plays it with hls.js (Media Source Extensions) or, where the browser has no MSE but plays
// HLS itself (older iOS Safari), natively. The name comes from ?video=NAME or the form.
(function () {
  'use strict';

  var video = document.getElementById('player');
  var form = document.getElementById('video-form');
  var input = document.getElementById('video-name');
  var statusEl = document.getElementById('status');

  var hls = null;          // the current hls.js instance
  var current = null;      // the name being played
  var mediaRecoveries = 0; // fatal media errors already recovered from

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var name = input.value.trim();
    if (!name) {
      setStatus('Enter the name of a video.', true);
      input.focus();
      return;
    }
    var url = new URL(window.location.href);
    url.searchParams.set('video', name);
    window.history.pushState({ video: name }, '', url);
    play(name);
  });

  window.addEventListener('popstate', fromLocation);

  video.addEventListener('playing', function () {
    if (current) setStatus('Playing \u201c' + current + '\u201d.', false);
  });
  video.addEventListener('waiting', function () {
    if (current) setStatus('Loading \u201c' + current + '\u201d\u2026', false);
  });

  fromLocation();

  function fromLocation() {
    var name = (new URL(window.location.href).searchParams.get('video') || '').trim();
    input.value = name;
    if (name) play(name);
    else { stop(); setStatus('Enter the name of a video and press Play.', false); }
  }

  // Where the converter writes the master playlist of a video.
  function manifestUrl(name) {
    var n = encodeURIComponent(name);
    return '/' + n + '/hls/' + n + '.m3u8';
  }

  function play(name) {
    stop();
    current = name;
    mediaRecoveries = 0;
    var src = manifestUrl(name);
    setStatus('Loading \u201c' + name + '\u201d\u2026', false);

    if (window.Hls && window.Hls.isSupported()) {
      playWithHlsJs(name, src);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      playNatively(name, src);
    } else if (!window.Hls) {
      setStatus('The player could not start: vendor/hls.min.js is missing ' +
        '(build the page with `npm run build`).', true);
    } else {
      setStatus('This browser cannot play HLS video (no Media Source Extensions).', true);
    }
  }

  function playWithHlsJs(name, src) {
    var Hls = window.Hls;
    var h = new Hls({ enableWorker: true });
    hls = h;
    h.on(Hls.Events.MANIFEST_PARSED, function () { autoplay(); });
    h.on(Hls.Events.ERROR, function (event, data) {
      if (h !== hls || !data.fatal) return;
      if (data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR ||
          data.details === Hls.ErrorDetails.MANIFEST_PARSING_ERROR) {
        var code = data.response && data.response.code;
        // S3 answers 403 for a missing object in a private bucket; a distribution with an
        // error page answers with HTML, which fails to parse as a playlist.
        if (code === 404 || code === 403 || data.details === Hls.ErrorDetails.MANIFEST_PARSING_ERROR) {
          notFound(name, src);
        } else {
          setStatus('Could not load \u201c' + name + '\u201d: ' +
            (code ? 'HTTP ' + code : 'network error') + ' for ' + src + '.', true);
        }
        stop();
      } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 2) {
        mediaRecoveries++;
        h.recoverMediaError();
      } else {
        setStatus('Playback of \u201c' + name + '\u201d failed (' + data.details + ').', true);
        stop();
      }
    });
    h.loadSource(src);
    h.attachMedia(video);
  }

  function playNatively(name, src) {
    // Native playback reports a missing playlist only as a generic media error: check first.
    fetch(src, { method: 'GET', cache: 'no-cache' }).then(function (response) {
      return response.ok ? response.text().then(function (text) {
        return text.lastIndexOf('#EXTM3U', 0) === 0;
      }) : false;
    }).then(function (found) {
      if (current !== name) return;
      if (!found) return notFound(name, src);
      video.src = src;
      video.addEventListener('loadedmetadata', autoplay, { once: true });
      video.addEventListener('error', function () {
        if (current === name) setStatus('Playback of \u201c' + name + '\u201d failed.', true);
      }, { once: true });
    }, function () {
      if (current === name) setStatus('Could not load \u201c' + name + '\u201d: network error.', true);
    });
  }

  function autoplay() {
    var p = video.play();
    if (p && typeof p.catch === 'function') {
      p.catch(function () {
        if (current) setStatus('\u201c' + current + '\u201d is ready: press play.', false);
      });
    }
  }

  function notFound(name, src) {
    setStatus('Video \u201c' + name + '\u201d not found: there is no playlist at ' + src +
      '. Check the name, or wait until the conversion has finished.', true);
  }

  function stop() {
    if (hls) { var h = hls; hls = null; h.destroy(); }
    video.removeAttribute('src');
    video.load();
  }

  function setStatus(text, isError) {
    statusEl.textContent = text;
    statusEl.className = isError ? 'status error' : 'status';
  }
})();
