#!/usr/bin/env bash
# Makes sure what the tests need is here: Chromium, ffmpeg, a Redis server
# (running on 127.0.0.1:6379), stripe-mock and pebble. On Debian as root it installs
# what is missing; elsewhere it says what to install and fails.
set -euo pipefail

GOBIN="$(go env GOPATH)/bin"
export PATH="$PATH:$GOBIN"
missing_apt=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing_apt+=(chromium)
command -v ffmpeg >/dev/null 2>&1 || missing_apt+=(ffmpeg)
command -v redis-server >/dev/null 2>&1 || missing_apt+=(redis-server)
command -v node >/dev/null 2>&1 || missing_apt+=(nodejs)
# Color emoji for the chat's reactions in Chromium screenshots.
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || ! command -v apt-get >/dev/null 2>&1 || missing_apt+=(fonts-noto-color-emoji)

if [ ${#missing_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing ${missing_apt[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_apt[@]}" >/dev/null
  else
    echo "deps: missing ${missing_apt[*]}: install them (Debian: sudo apt-get install -y ${missing_apt[*]})" >&2
    exit 1
  fi
fi

if ! command -v stripe-mock >/dev/null 2>&1; then
  echo "deps: installing stripe-mock v0.203.0 with go install"
  GOFLAGS= go install github.com/stripe/stripe-mock@v0.203.0 || {
    echo "deps: could not install stripe-mock: run go install github.com/stripe/stripe-mock@v0.203.0" >&2; exit 1; }
fi

# Let's Encrypt's test ACME server and its DNS (the --acme-domain test).
for tool in pebble pebble-challtestsrv; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "deps: installing $tool v2.10.3 with go install"
    GOFLAGS= go install "github.com/letsencrypt/pebble/v2/cmd/$tool@v2.10.3" || {
      echo "deps: could not install $tool: run go install github.com/letsencrypt/pebble/v2/cmd/$tool@v2.10.3" >&2; exit 1; }
  fi
done

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "deps: starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "deps: redis-server did not start" >&2; exit 1; }
fi
echo "deps: chromium, ffmpeg, redis, node, stripe-mock, pebble ready"
