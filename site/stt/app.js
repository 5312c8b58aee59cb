// The upload page of the speech-to-text service, in Korean and English.
//
// Reads window.STT_CONFIG (config.js, written by the provisioner at deploy time):
//   { apiUrl, statusUrl, confirmUrl, languages: ["af-ZA", …], maxUploadBytes }
// The audio never goes through API Gateway (4 MB limit); it goes straight to S3:
//  1. POST apiUrl, JSON {email, language, filename, size, contentType}
//     → 201 {uploadId, token, key, contentType, expiresAt, upload}, where upload is
//       {method: "POST", url, fields}                  (files up to 16 MiB): one form POST to
//         S3 with every field in the given order and the file last as `file`; S3 answers 204;
//       {method: "MULTIPART", partSize, parts: [{partNumber, url, size}]}   (larger files):
//         PUT each slice of the file to its URL (3 at a time, a part that fails by network,
//         5xx or abort is retried up to 4 times after 1, 2, 4, 4 s), then
//         POST statusUrl {uploadId, token, action: "complete"}.
//     When S3 refuses (4xx, or a part failing for good) or the user cancels:
//         POST statusUrl {uploadId, token, action: "abort"}, and the page shows S3's <Message>.
//  2. POST statusUrl {uploadId, token} every 2 s → 200 {uploadId, state, filename, expiresAt,
//     reason}; state waiting → uploaded → transcribing → transcribed → mailed, or failed /
//     expired. Polling stops at mailed, failed or expired.
// Every API error is JSON {error, code, params}; the page shows its own translation of `code`
// (falling back to `error`). API Gateway's own 429 and 5xx carry no code: mapped by status.
//
// What the tests rely on: #result has class success or error and data-http-status (the HTTP
// status of the request the message is about, 0 when the network failed, absent when the page
// refused by itself); #status has data-state (the API's state); #ui-language holds the two
// buttons data-lang="ko" / "en" of the language switch.
(function () {
  'use strict';

  var STORE_KEY = 'stt-ui-language';
  var DEFAULT_LANGUAGES = ['ko-KR', 'en-US'];
  var POLL_MS = 2000;
  var PARALLEL_PARTS = 3;
  // One delay per retry: a part (or the form) is tried at most 5 times.
  var RETRY_DELAYS_MS = [1000, 2000, 4000, 4000];
  // After this many status reads in a row fail, the page stops following the upload.
  var MAX_POLL_FAILURES = 5;
  var FINAL_STATES = ['mailed', 'failed', 'expired'];
  var FORMATS = 'MP3, WAV, FLAC, Ogg, M4A, MP4, WebM';

  // Every text of the page. A function gets the message's params (already formatted where
  // they are sizes or languages, see describe()).
  var TEXT = {
    en: {
      title: 'Speech to text',
      lead: 'Upload an audio file and receive its transcript by e-mail.',
      switchLabel: 'Language',
      emailLabel: 'E-mail address',
      emailPlaceholder: 'you@example.com',
      emailHint: 'The transcript is sent to this address, once it has confirmed it wants them (we ask by mail the first time).',
      languageLabel: 'Language spoken in the recording',
      languageHint: 'The transcript is made in this language.',
      fileLabel: 'Audio file',
      fileChoose: 'Choose a file',
      noFile: 'No file chosen',
      fileHint: function (p) { return FORMATS + ' or AMR' + (p.max ? ', up to ' + p.max : '') + '.'; },
      submit: 'Upload',
      busy: 'Uploading\u2026',
      cancel: 'Cancel',
      progressLabel: 'Upload progress',
      percent: '{p} %',
      statusPrefix: 'Status: ',
      states: {
        sending: 'sending the file\u2026',
        waiting: 'file sent, waiting for the service to register it\u2026',
        uploaded: 'file received, being checked\u2026',
        transcribing: 'transcribing\u2026',
        transcribed: 'transcript ready; it is mailed as soon as the address is confirmed (see the confirmation mail).',
        mailed: 'transcript mailed.',
        failed: 'failed.',
        expired: 'expired: the file did not arrive in time.'
      },
      configMissing: 'The page is not configured: config.js is missing or could not be loaded. Uploads are disabled.',
      configNoUrl: 'The page is not configured: config.js has no {name}. Uploads are disabled.',
      // The page's own checks, before anything is sent.
      emailMissing: 'Please enter the e-mail address the transcript should go to.',
      languageMissing: 'Please choose the language of the recording.',
      fileMissing: 'Please choose an audio file to upload.',
      fileEmpty: '\u201c{name}\u201d is empty (0 bytes). Please choose a recording.',
      fileTooLarge: '\u201c{name}\u201d is {size}; files up to {max} can be uploaded. Please send a shorter or more compressed recording (e.g. MP3).',
      // Outcomes.
      uploaded: 'Uploaded \u201c{name}\u201d. The transcript will be e-mailed to {email} when it is ready. The first time, we first send a mail asking you to confirm the address.',
      mailed: 'The transcript of \u201c{name}\u201d was e-mailed to {email}.',
      failed: 'The transcription of \u201c{name}\u201d failed: {reason}',
      failedNoReason: 'The transcription of \u201c{name}\u201d failed.',
      expired: 'The upload of \u201c{name}\u201d expired before the file arrived. Please upload it again.',
      cancelled: 'The upload was cancelled.',
      s3Refused: 'The storage did not take the file ({code}): {message}',
      s3RefusedBare: 'The storage did not take the file (HTTP {status}).',
      partFailed: 'Part {part} of the file could not be sent after {tries} tries.',
      network: 'The upload service could not be reached. Check your connection and try again.',
      pollLost: 'The file was uploaded, but its progress can no longer be followed ({problem}). The transcript will still be e-mailed.',
      badAnswer: 'The upload service gave an answer this page does not understand. Please try again later.',
      busy429: 'The service is busy with other uploads (HTTP 429). Please wait a minute and try again.',
      server5xx: 'The upload service had a problem (HTTP {status}). Please try again later.',
      refused: 'The upload was refused (HTTP {status}).',
      apiFallback: 'Upload failed: {error}',
      apiError: '{problem}',
      // The API's error codes.
      api: {
        bad_request: 'The upload service did not understand the request. Please reload the page and try again.',
        email_missing: 'Please enter the e-mail address the transcript should go to.',
        email_invalid: '\u201c{email}\u201d is not a valid e-mail address.',
        email_too_long: 'The e-mail address is too long: at most {max} characters.',
        language_unsupported: 'The language {language} is not supported.',
        filename_invalid: 'The file name \u201c{name}\u201d cannot be used. Please rename the file and try again.',
        filename_too_long: 'The file name is too long: at most {max} characters. Please rename the file.',
        file_empty: '\u201c{name}\u201d is empty. Please choose a recording.',
        file_too_large: '\u201c{name}\u201d is too large: files up to {max} can be uploaded.',
        type_unsupported: 'This kind of file ({type}) is not supported. Please upload ' + FORMATS + ' or AMR.',
        quota_address: 'This address has reached its limit of {limit} uploads an hour. Please try again later.',
        quota_ip: 'Too many uploads from your network: at most {limit} an hour. Please try again later.',
        not_found: 'The service no longer knows this upload. Please upload the file again.',
        parts_incomplete: 'Not every part of the file reached the storage. Please upload it again.',
        not_multipart: 'The service could not finish this upload. Please upload the file again.',
        server_error: 'The upload service had a problem. Please try again later.'
      }
    },
    ko: {
      title: '음성 인식',
      lead: '오디오 파일을 올리면 음성 인식 결과를 이메일로 보내 드립니다.',
      switchLabel: '언어',
      emailLabel: '이메일 주소',
      emailPlaceholder: 'you@example.com',
      emailHint: '결과는 이 주소로 보내 드립니다. 처음 사용하는 주소라면 먼저 주소 확인 메일을 보내 드립니다.',
      languageLabel: '녹음에서 사용한 언어',
      languageHint: '이 언어로 음성을 텍스트로 변환합니다.',
      fileLabel: '오디오 파일',
      fileChoose: '파일 선택',
      noFile: '선택한 파일 없음',
      fileHint: function (p) { return FORMATS + ', AMR 파일' + (p.max ? ', 최대 ' + p.max : '') + '.'; },
      submit: '업로드',
      busy: '업로드하는 중\u2026',
      cancel: '취소',
      progressLabel: '업로드 진행률',
      percent: '{p}%',
      statusPrefix: '상태: ',
      states: {
        sending: '파일을 보내는 중\u2026',
        waiting: '파일을 보냈습니다. 서비스가 파일을 확인하기를 기다리는 중\u2026',
        uploaded: '파일을 받았습니다. 파일을 확인하는 중\u2026',
        transcribing: '음성을 텍스트로 변환하는 중\u2026',
        transcribed: '변환이 끝났습니다. 주소 확인 메일에서 주소를 확인하면 바로 결과를 보내 드립니다.',
        mailed: '결과를 이메일로 보냈습니다.',
        failed: '실패했습니다.',
        expired: '만료되었습니다. 파일이 제시간에 도착하지 않았습니다.'
      },
      configMissing: '페이지 설정(config.js)이 없거나 읽을 수 없어 업로드할 수 없습니다.',
      configNoUrl: '페이지 설정(config.js)에 {name} 값이 없어 업로드할 수 없습니다.',
      emailMissing: '결과를 받을 이메일 주소를 입력해 주세요.',
      languageMissing: '녹음에서 사용한 언어를 선택해 주세요.',
      fileMissing: '업로드할 오디오 파일을 선택해 주세요.',
      fileEmpty: '\u201c{name}\u201d 파일이 비어 있습니다(0바이트). 녹음 파일을 선택해 주세요.',
      fileTooLarge: '\u201c{name}\u201d 파일의 크기는 {size}입니다. 최대 {max}까지 올릴 수 있습니다. 더 짧거나 더 압축된 녹음(예: MP3)을 보내 주세요.',
      uploaded: '\u201c{name}\u201d 파일을 올렸습니다. 결과가 준비되면 {email} 주소로 보내 드립니다. 처음 사용하는 주소라면 먼저 주소 확인 메일을 보내 드립니다.',
      mailed: '\u201c{name}\u201d의 음성 인식 결과를 {email} 주소로 보냈습니다.',
      failed: '\u201c{name}\u201d 파일을 변환하지 못했습니다: {reason}',
      failedNoReason: '\u201c{name}\u201d 파일을 변환하지 못했습니다.',
      expired: '파일이 도착하기 전에 \u201c{name}\u201d 업로드가 만료되었습니다. 다시 올려 주세요.',
      cancelled: '업로드를 취소했습니다.',
      s3Refused: '저장소가 파일을 받지 않았습니다({code}): {message}',
      s3RefusedBare: '저장소가 파일을 받지 않았습니다(HTTP {status}).',
      partFailed: '파일의 {part}번째 부분을 {tries}번 시도했지만 보내지 못했습니다.',
      network: '업로드 서비스에 연결할 수 없습니다. 연결을 확인하고 다시 시도해 주세요.',
      pollLost: '파일은 올렸지만 진행 상황을 더 이상 확인할 수 없습니다({problem}). 결과는 그래도 이메일로 보내 드립니다.',
      badAnswer: '업로드 서비스의 응답을 이해할 수 없습니다. 잠시 후 다시 시도해 주세요.',
      busy429: '다른 업로드가 많아 서비스가 바쁩니다(HTTP 429). 1분쯤 기다렸다가 다시 시도해 주세요.',
      server5xx: '업로드 서비스에 문제가 생겼습니다(HTTP {status}). 잠시 후 다시 시도해 주세요.',
      refused: '업로드가 거부되었습니다(HTTP {status}).',
      apiFallback: '업로드하지 못했습니다: {error}',
      apiError: '{problem}',
      api: {
        bad_request: '업로드 서비스가 요청을 이해하지 못했습니다. 페이지를 새로 고친 뒤 다시 시도해 주세요.',
        email_missing: '결과를 받을 이메일 주소를 입력해 주세요.',
        email_invalid: '\u201c{email}\u201d은(는) 올바른 이메일 주소가 아닙니다.',
        email_too_long: '이메일 주소가 너무 깁니다. 최대 {max}자까지 쓸 수 있습니다.',
        language_unsupported: '{language} 언어는 지원하지 않습니다.',
        filename_invalid: '\u201c{name}\u201d 파일 이름은 사용할 수 없습니다. 파일 이름을 바꾼 뒤 다시 시도해 주세요.',
        filename_too_long: '파일 이름이 너무 깁니다. 최대 {max}자까지 쓸 수 있습니다. 파일 이름을 바꿔 주세요.',
        file_empty: '\u201c{name}\u201d 파일이 비어 있습니다. 녹음 파일을 선택해 주세요.',
        file_too_large: '\u201c{name}\u201d 파일이 너무 큽니다. 최대 {max}까지 올릴 수 있습니다.',
        type_unsupported: '이 형식의 파일({type})은 지원하지 않습니다. ' + FORMATS + ', AMR 파일을 올려 주세요.',
        quota_address: '이 주소는 한 시간에 {limit}개까지 올릴 수 있습니다. 나중에 다시 시도해 주세요.',
        quota_ip: '이 네트워크에서는 한 시간에 {limit}개까지 올릴 수 있습니다. 나중에 다시 시도해 주세요.',
        not_found: '서비스에서 이 업로드를 더 이상 찾을 수 없습니다. 파일을 다시 올려 주세요.',
        parts_incomplete: '파일의 일부가 저장소에 도착하지 않았습니다. 다시 올려 주세요.',
        not_multipart: '서비스가 이 업로드를 마치지 못했습니다. 파일을 다시 올려 주세요.',
        server_error: '업로드 서비스에 문제가 생겼습니다. 잠시 후 다시 시도해 주세요.'
      }
    }
  };

  var form = document.getElementById('upload-form');
  var emailInput = document.getElementById('email');
  var languageSelect = document.getElementById('language');
  var fileInput = document.getElementById('file');
  var fileHint = document.getElementById('file-hint');
  var fileName = document.getElementById('file-name');
  var submitButton = document.getElementById('submit');
  var cancelButton = document.getElementById('cancel');
  var progressRow = document.getElementById('progress-row');
  var progress = document.getElementById('progress');
  var progressLabel = document.getElementById('progress-label');
  var statusLine = document.getElementById('status');
  var result = document.getElementById('result');
  var configError = document.getElementById('config-error');
  var switchButtons = document.querySelectorAll('#ui-language [data-lang]');

  var config = window.STT_CONFIG;
  var apiUrl = urlOf(config, 'apiUrl');
  var statusUrl = urlOf(config, 'statusUrl');
  var maxBytes = config && Number(config.maxUploadBytes) > 0 ? Number(config.maxUploadBytes) : 0;
  var languageCodes = (config && Array.isArray(config.languages) ? config.languages : [])
    .filter(function (c) { return typeof c === 'string' && c; });
  if (languageCodes.length === 0) languageCodes = DEFAULT_LANGUAGES.slice();

  // What the page shows, as text keys and params rather than strings, so that switching the
  // language redraws everything in the new one: {key, params, kind, status}.
  var view = { config: null, result: null, state: null, percent: 0, busy: false };
  var ui = initialLanguage();
  // The upload being followed; a new upload stops the old one's polling.
  var current = null;

  Array.prototype.forEach.call(switchButtons, function (button) {
    button.addEventListener('click', function () { setLanguage(button.getAttribute('data-lang')); });
  });
  fillLanguages(preferredLanguage());
  render();

  if (!apiUrl || !statusUrl) {
    view.config = config
      ? { key: 'configNoUrl', params: { name: apiUrl ? 'statusUrl' : 'apiUrl' } }
      : { key: 'configMissing' };
    setFormEnabled(false);
    render();
    return;
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    start();
  });
  cancelButton.addEventListener('click', function () {
    if (current && !current.stop) stopJob(current, 'cancel');
  });
  [emailInput, languageSelect, fileInput].forEach(function (el) {
    el.addEventListener('input', function () { el.removeAttribute('aria-invalid'); });
  });
  fileInput.addEventListener('change', render);

  // --- languages -----------------------------------------------------------------------

  // The saved choice, else Korean for a browser that prefers Korean (as confirm.js).
  function initialLanguage() {
    var saved = null;
    try { saved = window.localStorage.getItem(STORE_KEY); } catch (e) { saved = null; }
    if (saved && TEXT[saved]) return saved;
    var korean = (navigator.languages || [navigator.language || '']).some(function (l) {
      return /^ko\b/i.test(l);
    });
    return korean ? 'ko' : 'en';
  }

  function setLanguage(lang) {
    if (!TEXT[lang] || lang === ui) return;
    ui = lang;
    try { window.localStorage.setItem(STORE_KEY, lang); } catch (e) { /* private mode */ }
    fillLanguages(languageSelect.value);
    render();
  }

  // The recording's languages, named in the page's language and sorted by that name.
  function fillLanguages(selected) {
    var names = displayNames();
    var options = languageCodes.map(function (code) {
      var name = names(code);
      return { code: code, label: name && name !== code ? name + ' \u2014 ' + code : code };
    });
    options.sort(function (a, b) { return a.label.localeCompare(b.label, ui); });
    languageSelect.textContent = '';
    options.forEach(function (o) {
      var option = document.createElement('option');
      option.value = o.code;
      option.textContent = o.label;
      languageSelect.appendChild(option);
    });
    languageSelect.value = languageCodes.indexOf(selected) >= 0 ? selected : preferredLanguage();
  }

  function preferredLanguage() {
    return languageCodes.indexOf('ko-KR') >= 0 ? 'ko-KR'
      : languageCodes.indexOf('en-US') >= 0 ? 'en-US' : languageCodes[0];
  }

  // A function code → readable name in the page's language, or → null.
  function displayNames() {
    try {
      if (typeof Intl === 'object' && typeof Intl.DisplayNames === 'function') {
        // "English (United States)" rather than "American English": the region is the point.
        var dn = new Intl.DisplayNames([ui], { type: 'language', languageDisplay: 'standard', fallback: 'none' });
        return function (code) {
          try { return dn.of(code) || null; } catch (e) { return null; }
        };
      }
    } catch (e) { /* an old browser: codes only */ }
    return function () { return null; };
  }

  // --- the upload ----------------------------------------------------------------------

  async function start() {
    var email = emailInput.value.trim();
    var language = languageSelect.value;
    var file = fileInput.files && fileInput.files[0];

    if (current) stopJob(current, 'replaced');
    current = null;
    view.result = null;
    view.state = null;
    progressRow.hidden = true;

    // The page's own checks: only what saves a pointless request (the API checks the rest).
    if (!email) return refuse('emailMissing', {}, emailInput);
    if (!language) return refuse('languageMissing', {}, languageSelect);
    if (!file) return refuse('fileMissing', {}, fileInput);
    if (file.size === 0) return refuse('fileEmpty', { name: file.name }, fileInput);
    if (maxBytes && file.size > maxBytes) {
      return refuse('fileTooLarge', { name: file.name, size: { bytes: file.size },
        max: { bytes: maxBytes, down: true } }, fileInput);
    }

    var job = current = {
      file: file, email: email, name: file.name, language: language,
      uploadId: null, token: null, sent: false, stop: null, xhrs: []
    };
    setBusy(true);
    setProgress(0);
    progressRow.hidden = false;
    render();
    try {
      await upload(job);
    } finally {
      if (current === job) setBusy(false);
      // The submit or cancel button that had the focus was disabled or hidden: give the
      // keyboard user a place to go on from.
      if (document.activeElement === document.body || document.activeElement === cancelButton) {
        submitButton.focus();
      }
    }
  }

  async function upload(job) {
    var created = await callApi(apiUrl, {
      email: job.email, language: job.language, filename: job.name,
      size: job.file.size, contentType: job.file.type || ''
    });
    if (job.stop) return;
    if (created.status !== 201 && created.status !== 200) return showApiError(job, created);
    var answer = created.body || {};
    var plan = answer.upload || {};
    if (!answer.uploadId || !answer.token ||
        !(plan.method === 'POST' && plan.url && plan.fields) &&
        !(plan.method === 'MULTIPART' && Array.isArray(plan.parts) && plan.partSize > 0)) {
      return showResult({ kind: 'error', key: 'badAnswer', status: created.status });
    }
    job.uploadId = answer.uploadId;
    job.token = answer.token;
    showState(job, 'waiting');
    cancelButton.hidden = false;

    var sent = plan.method === 'POST' ? await sendForm(job, plan) : await sendParts(job, plan);
    cancelButton.hidden = true;
    if (job.stop === 'replaced') return;
    if (!sent.ok) {
      // Nothing will arrive: tell the API to give up, then say why.
      var aborted = await callApi(statusUrl, { uploadId: job.uploadId, token: job.token, action: 'abort' });
      if (aborted.status === 200 && aborted.body && aborted.body.state) showState(job, aborted.body.state);
      return showResult(sent.stopped ? { kind: 'error', key: 'cancelled', status: aborted.status }
        : s3Failure(sent));
    }
    setProgress(100);
    job.sent = true;

    var last = { status: sent.status, body: null };
    if (plan.method === 'MULTIPART') {
      last = await callWithRetries(job, statusUrl,
        { uploadId: job.uploadId, token: job.token, action: 'complete' });
      if (last.status !== 200) return showApiError(job, last);
    }
    fileInput.value = '';
    showResult({ kind: 'success', key: 'uploaded', params: { name: job.name, email: job.email },
      status: last.status });
    if (last.body && last.body.state) {
      showState(job, last.body.state);
      if (finished(job, last.body, last.status)) return;
    } else {
      showState(job, 'waiting');
    }
    setBusy(false);
    follow(job);
  }

  // The single presigned POST: every field in order, the file last.
  function sendForm(job, plan) {
    return sendWithRetries(job, function () {
      var data = new FormData();
      Object.keys(plan.fields).forEach(function (name) { data.append(name, plan.fields[name]); });
      data.append('file', job.file, job.name);
      return { method: 'POST', url: plan.url, body: data };
    }, function (loaded, total) {
      if (total) setProgress(loaded / total * 100);
    });
  }

  // The parts, PARALLEL_PARTS at a time; the bar counts the parts done plus the bytes of
  // those in flight.
  async function sendParts(job, plan) {
    var queue = plan.parts.slice();
    var size = job.file.size;
    var doneBytes = 0;
    var inFlight = {};
    var failure = null;
    var lastStatus = 0;

    function report() {
      var bytes = doneBytes;
      Object.keys(inFlight).forEach(function (n) { bytes += inFlight[n]; });
      setProgress(bytes / size * 100);
    }

    async function worker() {
      while (queue.length && !job.stop) {
        var part = queue.shift();
        var n = part.partNumber;
        var from = (n - 1) * plan.partSize;
        var blob = job.file.slice(from, from + part.size);
        var sent = await sendWithRetries(job, function () {
          return { method: 'PUT', url: part.url, body: blob };
        }, function (loaded) {
          inFlight[n] = loaded;
          report();
        });
        delete inFlight[n];
        if (sent.ok) {
          doneBytes += part.size;
          lastStatus = sent.status;
          report();
        } else if (!sent.stopped && !failure) {
          // One part lost for good: the upload cannot complete, stop the others.
          failure = sent;
          failure.part = n;
          stopJob(job, 'failed');
        }
      }
    }

    var workers = [];
    for (var i = 0; i < PARALLEL_PARTS; i++) workers.push(worker());
    await Promise.all(workers);
    if (failure) return failure;
    if (job.stop) return { ok: false, stopped: true };
    return { ok: true, status: lastStatus };
  }

  // One request to S3, tried again after a network error, an abort or a 5xx.
  async function sendWithRetries(job, build, onProgress) {
    for (var attempt = 0; ; attempt++) {
      var request = build();
      onProgress(0, 0);
      var answer = await send(job, request, onProgress);
      if (job.stop) return { ok: false, stopped: true, status: answer.status };
      if (answer.status >= 200 && answer.status < 300) return { ok: true, status: answer.status };
      var transient = answer.status === 0 || answer.status >= 500;
      if (!transient || attempt >= RETRY_DELAYS_MS.length) {
        return { ok: false, status: answer.status, tries: attempt + 1, s3: s3Error(answer.text) };
      }
      await sleep(RETRY_DELAYS_MS[attempt]);
      if (job.stop) return { ok: false, stopped: true, status: 0 };
    }
  }

  // An XMLHttpRequest (fetch reports no upload progress) → {status (0: no answer), text}.
  function send(job, request, onProgress) {
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      job.xhrs.push(xhr);
      function done(status) {
        job.xhrs = job.xhrs.filter(function (x) { return x !== xhr; });
        resolve({ status: status, text: status ? xhr.responseText : '' });
      }
      xhr.open(request.method, request.url);
      xhr.upload.addEventListener('progress', function (e) {
        if (e.lengthComputable) onProgress(e.loaded, e.total);
      });
      xhr.addEventListener('load', function () { done(xhr.status); });
      xhr.addEventListener('error', function () { done(0); });
      xhr.addEventListener('timeout', function () { done(0); });
      xhr.addEventListener('abort', function () { done(0); });
      xhr.send(request.body);
    });
  }

  function stopJob(job, why) {
    job.stop = why;
    job.xhrs.slice().forEach(function (xhr) { xhr.abort(); });
  }

  // S3's XML error → {code, message}, or null.
  function s3Error(text) {
    if (!text) return null;
    try {
      var doc = new DOMParser().parseFromString(text, 'application/xml');
      var code = doc.querySelector('Error > Code');
      var message = doc.querySelector('Error > Message');
      if (!code && !message) return null;
      return { code: code ? code.textContent.trim() : '', message: message ? message.textContent.trim() : '' };
    } catch (e) {
      return null;
    }
  }

  function s3Failure(sent) {
    // "Part 2 could not be sent after 5 tries." only when it was tried again (not for a 4xx).
    var lead = sent.part && sent.tries > 1
      ? { key: 'partFailed', params: { part: sent.part, tries: sent.tries } } : null;
    var detail = sent.status === 0 ? { key: 'network' }
      : sent.s3 && sent.s3.message
        ? { key: 's3Refused', params: { code: sent.s3.code || sent.status, message: sent.s3.message } }
        : { key: 's3RefusedBare', params: { status: sent.status } };
    return { kind: 'error', key: detail.key, params: detail.params, lead: lead, status: sent.status };
  }

  // Follows the upload's state every POLL_MS until it is final.
  async function follow(job) {
    var failures = 0;
    while (current === job && !job.stop) {
      await sleep(POLL_MS);
      if (current !== job || job.stop) return;
      var answer = await callApi(statusUrl, { uploadId: job.uploadId, token: job.token });
      if (current !== job || job.stop) return;
      if (answer.status === 200 && answer.body && answer.body.state) {
        failures = 0;
        showState(job, answer.body.state);
        if (view.result && view.result.kind === 'success') view.result.status = 200;
        render();
        if (finished(job, answer.body, answer.status)) return;
        continue;
      }
      // The upload is unknown (or the request wrong): asking again will not help.
      var transient = answer.status === 0 || answer.status === 429 || answer.status >= 500;
      if (!transient) return showApiError(job, answer);
      if (++failures >= MAX_POLL_FAILURES) {
        return showResult({ kind: 'error', key: 'pollLost',
          params: { problem: { answer: answer, job: job } }, status: answer.status });
      }
    }
  }

  // Shows a final state's outcome; true when it is final.
  function finished(job, body, status) {
    if (body.state === 'mailed') {
      showResult({ kind: 'success', key: 'mailed', params: { name: job.name, email: job.email }, status: status });
    } else if (body.state === 'failed') {
      showResult(body.reason
        ? { kind: 'error', key: 'failed', params: { name: job.name, reason: body.reason }, status: status }
        : { kind: 'error', key: 'failedNoReason', params: { name: job.name }, status: status });
    } else if (body.state === 'expired') {
      showResult({ kind: 'error', key: 'expired', params: { name: job.name }, status: status });
    }
    return FINAL_STATES.indexOf(body.state) >= 0;
  }

  // POST JSON → {status (0: no answer), body (parsed JSON or null)}.
  async function callApi(url, payload) {
    var response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
        body: JSON.stringify(payload)
      });
    } catch (e) {
      return { status: 0, body: null };
    }
    var body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    return { status: response.status, body: body };
  }

  // complete is safe to repeat: retried after a network error, a 429 or a 5xx.
  async function callWithRetries(job, url, payload) {
    for (var attempt = 0; ; attempt++) {
      var answer = await callApi(url, payload);
      var transient = answer.status === 0 || answer.status === 429 || answer.status >= 500;
      if (!transient || attempt >= RETRY_DELAYS_MS.length || job.stop) return answer;
      await sleep(RETRY_DELAYS_MS[attempt]);
    }
  }

  function showApiError(job, answer) {
    showResult({ kind: 'error', key: 'apiError', params: { problem: { answer: answer, job: job } },
      status: answer.status });
  }

  // The API's error in the page's language: its code translated, else its own text, else
  // what API Gateway's status means.
  function apiError(job, answer) {
    var T = TEXT[ui];
    var body = answer.body || {};
    if (answer.status === 0) return T.network;
    if (typeof body.code === 'string' && T.api[body.code]) {
      var p = body.params && typeof body.params === 'object' ? body.params : {};
      var params = {
        email: job.email, name: job.name, type: p.type || job.file.type || '?',
        max: p.max, limit: p.limit, language: { language: p.language || job.language }
      };
      // Sizes for the file's limit, characters for the names'.
      if (body.code === 'file_too_large' && p.max !== undefined) params.max = { bytes: Number(p.max), down: true };
      return fill(T.api[body.code], params);
    }
    if (typeof body.error === 'string' && body.error) return fill(T.apiFallback, { error: body.error });
    if (answer.status === 429) return T.busy429;
    if (answer.status >= 500) return fill(T.server5xx, { status: answer.status });
    if (typeof body.message === 'string' && body.message) return fill(T.apiFallback, { error: body.message });
    return fill(T.refused, { status: answer.status });
  }

  // --- presentation --------------------------------------------------------------------

  function refuse(key, params, field) {
    field.setAttribute('aria-invalid', 'true');
    showResult({ kind: 'error', key: key, params: params, status: null });
    field.focus();
  }

  function showResult(message) {
    view.result = message;
    render();
  }

  function showState(job, state) {
    if (current !== job) return;
    view.state = { state: state, sent: job.sent };
    render();
  }

  function setProgress(percent) {
    view.percent = Math.max(0, Math.min(100, Math.round(percent)));
    progress.value = view.percent;
    progressLabel.textContent = fill(TEXT[ui].percent, { p: view.percent });
  }

  function setBusy(busy) {
    view.busy = busy;
    setFormEnabled(!busy);
    form.setAttribute('aria-busy', busy ? 'true' : 'false');
    if (!busy) cancelButton.hidden = true;
    render();
  }

  function setFormEnabled(enabled) {
    [emailInput, languageSelect, fileInput, submitButton].forEach(function (el) { el.disabled = !enabled; });
  }

  // Draws every text in the page's language from `view`.
  function render() {
    var T = TEXT[ui];
    document.documentElement.lang = ui;
    document.title = T.title;
    Array.prototype.forEach.call(document.querySelectorAll('[data-t]'), function (el) {
      el.textContent = T[el.getAttribute('data-t')];
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-t-aria-label]'), function (el) {
      el.setAttribute('aria-label', T[el.getAttribute('data-t-aria-label')]);
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-t-placeholder]'), function (el) {
      el.setAttribute('placeholder', T[el.getAttribute('data-t-placeholder')]);
    });
    Array.prototype.forEach.call(switchButtons, function (button) {
      button.setAttribute('aria-pressed', button.getAttribute('data-lang') === ui ? 'true' : 'false');
    });
    var chosen = fileInput.files && fileInput.files[0];
    fileName.textContent = chosen ? chosen.name + ' (' + formatSize(chosen.size) + ')' : T.noFile;
    fileHint.textContent = fill(T.fileHint, { max: maxBytes ? { bytes: maxBytes, down: true } : '' });
    submitButton.textContent = view.busy ? T.busy : T.submit;
    progressLabel.textContent = fill(T.percent, { p: view.percent });

    configError.hidden = !view.config;
    configError.textContent = view.config ? fill(T[view.config.key], view.config.params) : '';

    if (view.state) {
      var words = view.state.state === 'waiting' && !view.state.sent ? T.states.sending
        : T.states[view.state.state] || view.state.state;
      var text = T.statusPrefix + words;
      // Only a change is written, so that the live region does not repeat itself.
      if (statusLine.textContent !== text) statusLine.textContent = text;
      statusLine.setAttribute('data-state', view.state.state);
      statusLine.hidden = false;
    } else {
      statusLine.textContent = '';
      statusLine.removeAttribute('data-state');
      statusLine.hidden = true;
    }

    var m = view.result;
    if (!m) {
      result.className = 'result';
      result.textContent = '';
      result.removeAttribute('data-http-status');
      result.hidden = true;
      return;
    }
    var message = fill(T[m.key], m.params);
    if (m.lead) message = fill(T[m.lead.key], m.lead.params) + ' ' + message;
    // An error is an alert (announced at once); a success is a polite status.
    var role = m.kind === 'error' ? 'alert' : 'status';
    if (result.getAttribute('role') !== role) {
      result.setAttribute('role', role);
      result.setAttribute('aria-live', m.kind === 'error' ? 'assertive' : 'polite');
    }
    result.className = 'result ' + m.kind;
    if (result.textContent !== message) result.textContent = message;
    if (m.status === null || m.status === undefined) result.removeAttribute('data-http-status');
    else result.setAttribute('data-http-status', String(m.status));
    result.hidden = false;
  }

  // Puts params into a text: {name} → value; a value {bytes} is a size, {language} a
  // language name, {answer, job} the API's error; a function text gets the params.
  function fill(text, params) {
    params = params || {};
    var values = {};
    Object.keys(params).forEach(function (k) { values[k] = show(params[k]); });
    if (typeof text === 'function') return text(values);
    return String(text).replace(/\{(\w+)\}/g, function (all, k) {
      return values[k] === undefined || values[k] === null ? all : values[k];
    });
  }

  function show(value) {
    if (value && typeof value === 'object') {
      if (typeof value.bytes === 'number') return formatSize(value.bytes, value.down);
      if (typeof value.language === 'string') {
        var name = displayNames()(value.language);
        return name ? name + ' (' + value.language + ')' : value.language;
      }
      if (value.answer) return apiError(value.job, value.answer);
    }
    return value;
  }

  // Decimal units (as the limit is set: 2000000000 is "2 GB"); a limit is rounded down so
  // that the page never promises more than it takes.
  function formatSize(bytes, down) {
    var units = ui === 'ko' ? ['바이트', 'KB', 'MB', 'GB'] : ['bytes', 'KB', 'MB', 'GB'];
    var i = 0;
    var n = bytes;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    if (i > 0) n = (down ? Math.floor(n * 10) : Math.round(n * 10)) / 10;
    return new Intl.NumberFormat(ui, { maximumFractionDigits: 1 }).format(n) + ' ' + units[i];
  }

  function urlOf(cfg, name) {
    return cfg && typeof cfg[name] === 'string' ? cfg[name].trim() : '';
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }
})();
