// The shape of config.js, which the provisioner writes next to index.html at deploy time
// (config.js is never committed; this example is not loaded by the page).
//
// apiUrl          the API's /file-upload: the page POSTs {email, language, filename, size,
//                 contentType} there as JSON and gets the upload's presigned S3 POST or parts
//                 (the audio goes straight to the S3 bucket, not through API Gateway).
// statusUrl       the API's /upload-status: {uploadId, token[, action: "complete"|"abort"]}
//                 reads, completes (multipart) or abandons an upload; the page polls it for
//                 the upload's state until the transcript is mailed.
// confirmUrl      the API's /confirm: the confirmation page (confirm.html) POSTs the token of a
//                 confirmation link there as {"token": "…"}.
// languages       Amazon Transcribe's language codes, shown in the language list with names in
//                 the page's language; the default choice is ko-KR if listed, else en-US.
// maxUploadBytes  the stack's largest file; the page refuses a larger one before sending
//                 anything and says the limit in its file hint (2000000000 → "up to 2 GB").
window.STT_CONFIG = {
  "apiUrl": "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/file-upload",
  "statusUrl": "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/upload-status",
  "confirmUrl": "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/confirm",
  "languages": ["af-ZA", "ar-AE", "ar-SA", "de-DE", "en-AU", "en-GB", "en-US", "es-ES",
                "es-US", "fr-FR", "hi-IN", "it-IT", "ja-JP", "ko-KR", "pt-BR", "zh-CN"],
  "maxUploadBytes": 2000000000
};
