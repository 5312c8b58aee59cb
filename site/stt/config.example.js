// The shape of config.js, which the provisioner writes next to index.html at deploy time
// (config.js is never committed; this example is not loaded by the page).
//
// apiUrl     the upload endpoint: API Gateway stage URL + /file-upload. The page POSTs the
//            form there as multipart/form-data with the fields `email`, `language`, `file`.
// confirmUrl the API's /confirm: the confirmation page (confirm.html) POSTs the token of a
//            confirmation link there as {"token": "…"}.
// languages  Amazon Transcribe's language codes, shown in the language list with readable
//            names; the default choice is ko-KR if listed, else en-US.
window.STT_CONFIG = {
  "apiUrl": "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/file-upload",
  "confirmUrl": "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/confirm",
  "languages": ["af-ZA", "ar-AE", "ar-SA", "de-DE", "en-AU", "en-GB", "en-US", "es-ES",
                "es-US", "fr-FR", "hi-IN", "it-IT", "ja-JP", "ko-KR", "pt-BR", "zh-CN"]
};
