// The confirmation page: posts the token of the link (#token=…) to the API's /confirm and
// says what happened, in Korean or English (the browser's language).
//
// Reads window.STT_CONFIG.confirmUrl (config.js, written by the provisioner). The API
// answers 200 {confirmed, sent, failed} or 4xx {error, code}; `code` picks the message.
(function () {
  'use strict';

  var korean = (navigator.languages || [navigator.language || '']).some(function (l) {
    return /^ko\b/i.test(l);
  });
  var TEXT = korean ? {
    title: '주소 확인',
    lead: '아래 버튼을 누르면 이 링크를 받은 주소로 음성 인식 결과를 보내 드립니다.',
    button: '이 주소 확인하기',
    working: '확인하는 중…',
    done: '주소가 확인되었습니다. 기다리던 결과를 지금 보내 드립니다.',
    partly: '주소는 확인되었지만 일부 결과를 보내지 못했습니다. 파일을 다시 업로드해 주세요.',
    noToken: '링크가 완전하지 않습니다. 메일의 링크 전체를 열어 주세요.',
    unknown_link: '알 수 없는 링크입니다. 가장 최근에 받은 메일의 링크를 열어 주세요.',
    link_used: '이미 사용한 링크입니다. 주소는 확인되어 있습니다.',
    link_expired: '링크가 만료되었습니다. 파일을 다시 업로드하면 새 링크를 보내 드립니다.',
    other: '확인하지 못했습니다. 잠시 후 다시 시도해 주세요.',
    network: '서비스에 연결할 수 없습니다. 연결을 확인하고 다시 시도해 주세요.',
    config: '페이지 설정(config.js)이 없어 확인할 수 없습니다.'
  } : {
    title: 'Confirm your address',
    lead: 'Press the button to receive transcripts at the address this link was sent to.',
    button: 'Confirm this address',
    working: 'Confirming…',
    done: 'Your address is confirmed. The transcripts that waited for it are on their way.',
    partly: 'Your address is confirmed, but some transcripts could not be sent. Please upload them again.',
    noToken: 'This link is incomplete. Please open the whole link from the mail.',
    unknown_link: 'This link is not known. Please open the link of the newest mail.',
    link_used: 'This link was used already. Your address is confirmed.',
    link_expired: 'This link has expired. Upload a file again to get a new one.',
    other: 'The address could not be confirmed. Please try again later.',
    network: 'The service could not be reached. Check your connection and try again.',
    config: 'The page is not configured (config.js), so nothing can be confirmed.'
  };

  var button = document.getElementById('confirm');
  var result = document.getElementById('result');
  var configError = document.getElementById('config-error');
  document.documentElement.lang = korean ? 'ko' : 'en';
  document.title = TEXT.title;
  document.getElementById('title').textContent = TEXT.title;
  document.getElementById('lead').textContent = TEXT.lead;
  button.textContent = TEXT.button;

  var config = window.STT_CONFIG;
  var confirmUrl = config && typeof config.confirmUrl === 'string' ? config.confirmUrl.trim() : '';
  var match = /(?:^#|&)token=([0-9a-f]{64})(?:&|$)/.exec(window.location.hash);
  var token = match ? match[1] : '';

  if (!confirmUrl) {
    configError.textContent = TEXT.config;
    configError.hidden = false;
    button.disabled = true;
    return;
  }
  if (!token) {
    show('error', TEXT.noToken);
    button.disabled = true;
    return;
  }

  button.addEventListener('click', function () {
    button.disabled = true;
    show('pending', TEXT.working);
    var xhr = new XMLHttpRequest();
    xhr.open('POST', confirmUrl);
    xhr.setRequestHeader('Content-Type', 'application/json');
    xhr.onload = function () {
      var body = {};
      try { body = JSON.parse(xhr.responseText || '{}'); } catch (e) { body = {}; }
      if (xhr.status === 200) {
        show('success', body.failed ? TEXT.partly : TEXT.done);
        return;
      }
      show('error', TEXT[body.code] || TEXT.other);
      // Only a failure on the service's side may work on a second try.
      button.disabled = xhr.status < 500;
    };
    xhr.onerror = function () {
      show('error', TEXT.network);
      button.disabled = false;
    };
    xhr.send(JSON.stringify({ token: token }));
  });

  function show(kind, message) {
    result.className = 'result ' + kind;
    result.textContent = message;
    result.hidden = false;
  }
})();
