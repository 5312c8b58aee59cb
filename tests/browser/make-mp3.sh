#!/usr/bin/env bash
# make-mp3.sh <out.mp3> [text]
#
# A short spoken MP3 for the speech-to-text tests: espeak-ng reads the text (default
# "hello world") into a WAV, ffmpeg encodes it as MP3 (mono, 22.05 kHz, 64 kbit/s).
set -euo pipefail

[[ $# -ge 1 && $# -le 2 && -n $1 ]] || { echo "usage: $0 <out.mp3> [text]" >&2; exit 2; }
out=$1 text=${2:-hello world}
for tool in espeak-ng ffmpeg; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is not installed" >&2; exit 1; }
done

wav=$(mktemp --suffix=.wav)
trap 'rm -f "$wav"' EXIT
espeak-ng -v en-us -s 150 -w "$wav" "$text"
mkdir -p "$(dirname "$out")"
ffmpeg -hide_banner -loglevel error -nostdin -y -i "$wav" \
  -ac 1 -ar 22050 -c:a libmp3lame -b:a 64k "$out"
[[ -s $out ]] || { echo "$0: ffmpeg wrote nothing" >&2; exit 1; }
echo "$out"
