// busboy (the parser behind multer for Express) on the same body as
// handlers/file-upload/benches/multipart.rs: three fields, a 4.5 MB file, the same boundary
// and the same pseudo-random bytes. Prints the mean time per parse and the throughput.
//
//   cd handlers/file-upload/bench && npm install && npm run bench
import busboy from 'busboy';

const BOUNDARY = '----WebKitFormBoundaryq7MA4YWxkTrZu0gW';
const MAX_FILE_BYTES = 4_500_000;

function sampleMp3() {
  const parts = [Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x0a', 'latin1'), Buffer.alloc(10)];
  const frame = Buffer.alloc(417, 0x55);
  frame.set([0xff, 0xfb, 0x90, 0x64]);
  parts.push(frame);
  return Buffer.concat(parts);
}

function file() {
  const head = sampleMp3();
  const out = Buffer.alloc(MAX_FILE_BYTES);
  head.copy(out);
  let x = 0x12345678;
  for (let i = head.length; i < MAX_FILE_BYTES; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function body() {
  const f = file();
  const parts = [];
  const field = (name, value) =>
    parts.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  field('email', 'user@example.com');
  field('language', 'ko-KR');
  parts.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="한글 녹음.mp3"\r\nContent-Type: audio/mpeg\r\n\r\n`));
  parts.push(f, Buffer.from(`\r\n--${BOUNDARY}--\r\n`));
  return Buffer.concat(parts);
}

function parse(buf) {
  return new Promise((resolve, reject) => {
    const bb = busboy({
      headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
      limits: { fileSize: 10 * 1024 * 1024 },
      defParamCharset: 'utf8',
    });
    let total = 0;
    bb.on('field', (name, val) => { total += name.length + Buffer.byteLength(val); });
    bb.on('file', (name, stream) => {
      const chunks = [];
      stream.on('data', (c) => chunks.push(c));
      stream.on('end', () => { total += name.length + Buffer.concat(chunks).length; });
    });
    bb.on('close', () => resolve(total));
    bb.on('error', reject);
    bb.end(buf);
  });
}

const buf = body();
const expected = 'email'.length + 16 + 'language'.length + 5 + 'file'.length + MAX_FILE_BYTES;
for (let i = 0; i < 5; i++) await parse(buf); // warm-up
const got = await parse(buf);
if (got !== expected) throw new Error(`parsed ${got} bytes, expected ${expected}`);
const runs = 30;
const times = [];
for (let i = 0; i < runs; i++) {
  const t0 = process.hrtime.bigint();
  await parse(buf);
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
times.sort((a, b) => a - b);
const mean = times.reduce((a, b) => a + b, 0) / runs;
const median = times[runs >> 1];
console.log(`busboy ${process.version}: body ${buf.length} bytes, ${runs} runs`);
console.log(`  mean ${mean.toFixed(3)} ms, median ${median.toFixed(3)} ms, min ${times[0].toFixed(3)} ms`);
console.log(`  throughput ${(buf.length / (median / 1e3) / 2 ** 30).toFixed(2)} GiB/s (median)`);
