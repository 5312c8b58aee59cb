#!/usr/bin/env bash
# make-audio.sh <out.mp3> <bytes> <sentence>
#
# A spoken MP3 of at least <bytes> bytes for the upload tests (large files go to S3 in
# parts): espeak-ng reads the sentence, ffmpeg encodes it at a constant 320 kbit/s and pads
# it with silence (apad) to the length that makes the size. 320 kbit/s rather than 128 keeps
# the encode short: 30 MB is 12.5 min of audio instead of 31. Prints the file and its size.
set -euo pipefail

[[ $# -eq 3 && -n $1 && $2 =~ ^[0-9]+$ && $2 -gt 0 && -n $3 ]] ||
  { echo "usage: $0 <out.mp3> <bytes> <sentence>" >&2; exit 2; }
out=$1 bytes=$2 text=$3
for tool in espeak-ng ffmpeg; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is not installed" >&2; exit 1; }
done

kbps=320
# A constant bitrate makes the size the duration times the rate; one second more covers
# the frames' rounding.
seconds=$(( bytes * 8 / (kbps * 1000) + 1 ))

wav=$(mktemp --suffix=.wav)
trap 'rm -f "$wav"' EXIT
espeak-ng -v en-us -s 150 -w "$wav" "$text"
mkdir -p "$(dirname "$out")"
# Mono at 44.1 kHz: MPEG-1 layer III, the only one that goes up to 320 kbit/s.
ffmpeg -hide_banner -loglevel error -nostdin -y -i "$wav" \
  -af "apad=whole_dur=${seconds}" -ac 1 -ar 44100 \
  -c:a libmp3lame -b:a "${kbps}k" "$out"
size=$(stat -c %s "$out")
(( size >= bytes )) || { echo "$0: $out is $size bytes, fewer than $bytes" >&2; exit 1; }
echo "$out $size"
