// The upload page of the speech-to-text service.
//
// Reads window.STT_CONFIG (from config.js, written by the provisioner at deploy time):
//   { apiUrl: "https://…/prod/file-upload", languages: ["af-ZA", …] }
// and posts the form as multipart/form-data (fields `email`, `language`, `file`) to apiUrl.
// The API answers JSON: 201 {uploadId, key, filename, language, format, size} or
// 4xx/5xx {error: "message"}.
(function () {
  'use strict';

  // API Gateway and Lambda limit the request payload; the body travels base64-encoded
  // (+33 %), which leaves about 4.5 MB of file. The page refuses more than 4 MB.
  var MAX_FILE_BYTES = 4 * 1024 * 1024;
  var DEFAULT_LANGUAGES = ['ko-KR', 'en-US'];
  var NETWORK_MESSAGE =
    'The upload service could not be reached. Check your connection and try again.';

  var form = document.getElementById('upload-form');
  var emailInput = document.getElementById('email');
  var languageSelect = document.getElementById('language');
  var fileInput = document.getElementById('file');
  var submitButton = document.getElementById('submit');
  var progressRow = document.getElementById('progress-row');
  var progress = document.getElementById('progress');
  var progressLabel = document.getElementById('progress-label');
  var result = document.getElementById('result');
  var configError = document.getElementById('config-error');

  var config = window.STT_CONFIG;
  var apiUrl = config && typeof config.apiUrl === 'string' ? config.apiUrl.trim() : '';

  fillLanguages(config && Array.isArray(config.languages) ? config.languages : []);

  if (!apiUrl) {
    configError.textContent = config
      ? 'The page is not configured: config.js has no apiUrl. Uploads are disabled.'
      : 'The page is not configured: config.js is missing or could not be loaded. ' +
        'Uploads are disabled.';
    configError.hidden = false;
    setFormEnabled(false);
    return;
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    upload();
  });

  // --- languages ---------------------------------------------------------------------

  function fillLanguages(codes) {
    codes = codes.filter(function (c) { return typeof c === 'string' && c; });
    if (codes.length === 0) codes = DEFAULT_LANGUAGES.slice();
    var names = displayNames();
    var options = codes.map(function (code) {
      var name = names(code);
      return { code: code, label: name && name !== code ? name + ' \u2014 ' + code : code };
    });
    options.sort(function (a, b) { return a.label.localeCompare(b.label); });
    var preferred = codes.indexOf('ko-KR') >= 0 ? 'ko-KR'
      : codes.indexOf('en-US') >= 0 ? 'en-US' : options[0].code;
    languageSelect.textContent = '';
    options.forEach(function (o) {
      var option = document.createElement('option');
      option.value = o.code;
      option.textContent = o.label;
      if (o.code === preferred) option.selected = true;
      languageSelect.appendChild(option);
    });
  }

  // A function code → readable name, or → null where the browser cannot tell.
  function displayNames() {
    try {
      if (typeof Intl === 'object' && typeof Intl.DisplayNames === 'function') {
        var dn = new Intl.DisplayNames([document.documentElement.lang || 'en'], {
          type: 'language', fallback: 'none'
        });
        return function (code) {
          try { return dn.of(code) || null; } catch (e) { return null; }
        };
      }
    } catch (e) { /* an old browser: codes only */ }
    return function () { return null; };
  }

  // --- upload --------------------------------------------------------------------------

  function upload() {
    var email = emailInput.value.trim();
    var language = languageSelect.value;
    var file = fileInput.files && fileInput.files[0];

    // Light checks only: the API validates the address, the language and the audio.
    if (!email) return fail('Please enter the e-mail address the transcript should go to.', 'client', emailInput);
    if (!language) return fail('Please choose the language of the recording.', 'client', languageSelect);
    if (!file) return fail('Please choose an audio file to upload.', 'client', fileInput);
    if (file.size > MAX_FILE_BYTES) {
      return fail('"' + file.name + '" is ' + formatSize(file.size) + '; files up to ' +
        formatSize(MAX_FILE_BYTES) + ' can be uploaded. Please send a shorter or more ' +
        'compressed recording (e.g. MP3).', 'client', fileInput);
    }

    var data = new FormData();
    data.append('email', email);
    data.append('language', language);
    data.append('file', file, file.name);

    var xhr = new XMLHttpRequest();
    xhr.open('POST', apiUrl);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', function (e) {
      if (e.lengthComputable) setProgress(e.loaded / e.total * 100);
    });
    xhr.upload.addEventListener('load', function () { setProgress(100); });
    xhr.addEventListener('load', function () { finished(xhr, email); });
    xhr.addEventListener('error', function () { fail(NETWORK_MESSAGE, 'network'); });
    xhr.addEventListener('timeout', function () { fail(NETWORK_MESSAGE, 'network'); });
    xhr.addEventListener('abort', function () { fail('The upload was cancelled.', 'network'); });
    xhr.addEventListener('loadend', function () { setBusy(false); });

    clearResult();
    setBusy(true);
    setProgress(0);
    progressRow.hidden = false;
    xhr.send(data);
  }

  function finished(xhr, email) {
    if (xhr.status === 0) return fail(NETWORK_MESSAGE, 'network');
    var body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
    if (xhr.status >= 200 && xhr.status < 300) {
      var name = body && body.filename ? '\u201c' + body.filename + '\u201d' : 'Your file';
      show('success', 'Uploaded ' + name + (body && body.language ? ' (' + body.language + ')' : '') +
        '. The transcript will be e-mailed to ' + email + ' when it is ready. The first ' +
        'time, we first send a mail asking you to confirm the address.', xhr.status);
      form.reset();
      fillDefaultLanguage();
      return;
    }
    var message = body && typeof body.error === 'string' && body.error
      ? body.error
      : xhr.status === 429   // API Gateway's throttling: the service takes only so many at once
        ? 'The service is busy with other uploads (HTTP 429). Please wait a minute and try again.'
      : body && typeof body.message === 'string' && body.message   // API Gateway's own errors
        ? body.message
        : xhr.status >= 500
          ? 'The upload service had a problem (HTTP ' + xhr.status + '). Please try again later.'
          : 'The upload was refused (HTTP ' + xhr.status + ').';
    show('error', 'Upload failed: ' + message, xhr.status);
  }

  function fillDefaultLanguage() {
    var codes = Array.prototype.map.call(languageSelect.options, function (o) { return o.value; });
    languageSelect.value = codes.indexOf('ko-KR') >= 0 ? 'ko-KR'
      : codes.indexOf('en-US') >= 0 ? 'en-US' : codes[0];
  }

  // --- presentation --------------------------------------------------------------------

  function fail(message, kind, focus) {
    show('error', message, kind === 'network' ? 0 : null);
    if (kind === 'client') progressRow.hidden = true;   // nothing was sent
    if (focus) focus.focus();
  }

  function show(kind, message, status) {
    result.className = 'result ' + kind;
    result.textContent = message;
    if (status === null || status === undefined) result.removeAttribute('data-http-status');
    else result.setAttribute('data-http-status', String(status));
    result.hidden = false;
  }

  function clearResult() {
    result.className = 'result';
    result.textContent = '';
    result.removeAttribute('data-http-status');
    result.hidden = true;
  }

  function setProgress(percent) {
    var p = Math.max(0, Math.min(100, Math.round(percent)));
    progress.value = p;
    progressLabel.textContent = p + ' %';
  }

  function setBusy(busy) {
    setFormEnabled(!busy);
    submitButton.textContent = busy ? 'Uploading\u2026' : 'Upload';
    form.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  function setFormEnabled(enabled) {
    Array.prototype.forEach.call(form.elements, function (el) { el.disabled = !enabled; });
  }

  function formatSize(bytes) {
    if (bytes >= 1024 * 1024) return (bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, '') + ' MB';
    if (bytes >= 1024) return Math.round(bytes / 1024) + ' KB';
    return bytes + ' bytes';
  }
})();
