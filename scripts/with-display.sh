#!/usr/bin/env bash
# Run a command with a display: the existing one, or a virtual X server (Xvfb, Mesa OpenGL).
set -euo pipefail
if [ -n "${DISPLAY:-}" ] || ! command -v xvfb-run >/dev/null; then
  exec "$@"
fi
exec xvfb-run -a -s "-screen 0 1280x1024x24 +extension GLX +render -noreset" "$@"
