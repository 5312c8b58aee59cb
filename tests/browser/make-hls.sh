#!/usr/bin/env bash
# make-hls.sh <out dir> <name> [seconds]
#
# A small test video as HLS, laid out like the converter's output:
#   <out>/<name>/hls/<name>.m3u8           master playlist (one variant)
#   <out>/<name>/hls/<name>_360.m3u8       variant playlist
#   <out>/<name>/hls/<name>_360_NNNNN.ts   2-second MPEG-TS segments
# 320x180 test pattern with a 440 Hz tone; H.264 Constrained Baseline 3.0 + AAC-LC,
# which browsers play through Media Source Extensions (hls.js). Default length 4 s.
set -euo pipefail

usage() { echo "usage: $0 <out dir> <name> [seconds]" >&2; exit 2; }
[[ $# -ge 2 && $# -le 3 ]] || usage
out=$1 name=$2 seconds=${3:-4}
[[ -n $name && $name != */* && $name != .* ]] || { echo "$0: bad name \"$name\"" >&2; exit 2; }
[[ $seconds =~ ^[0-9]+$ && $seconds -ge 1 ]] || { echo "$0: bad length \"$seconds\"" >&2; exit 2; }
command -v ffmpeg >/dev/null || { echo "$0: ffmpeg is not installed" >&2; exit 1; }

dir=$out/$name/hls
rm -rf "$dir"
mkdir -p "$dir"

# -g 50 at 25 fps: a keyframe every 2 s, so every segment starts with one.
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc=size=320x180:rate=25" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$seconds" \
  -map 0:v -map 1:a \
  -c:v libx264 -profile:v baseline -level 3.0 -pix_fmt yuv420p -preset veryfast \
  -b:v 300k -maxrate 300k -bufsize 600k -g 50 -keyint_min 50 -sc_threshold 0 \
  -c:a aac -b:a 64k -ac 2 -ar 48000 \
  -f hls -hls_time 2 -hls_playlist_type vod -hls_flags independent_segments \
  -hls_segment_type mpegts -start_number 1 \
  -hls_segment_filename "$dir/${name}_360_%05d.ts" \
  -master_pl_name "$name.m3u8" \
  "$dir/${name}_360.m3u8"

[[ -s $dir/$name.m3u8 ]] || { echo "$0: ffmpeg wrote no master playlist" >&2; exit 1; }
echo "$dir/$name.m3u8"
