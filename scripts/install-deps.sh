#!/usr/bin/env bash
# install-deps.sh - installs every package needed to build and test the
# project on Debian 12 (bookworm), from Debian's own archive.
#
# Idempotent: when every package is already installed it does nothing (and
# needs no root), so CI can run it before every build. Otherwise it must run
# as root: apt-get update, then one apt-get install of the whole list,
# without recommended packages.
#
# libclang-rt-14-dev is listed on purpose: it holds the sanitizer and
# libFuzzer runtimes that `make asan` and `make fuzz` (-fsanitize=fuzzer)
# link, and Debian's clang only *recommends* it, so --no-install-recommends
# would leave it out.
set -euo pipefail

PACKAGES=(
	# compilers and build tools
	build-essential pkg-config clang libclang-rt-14-dev
	# storage engine
	liburing-dev liblmdb-dev lmdb-utils libzstd-dev libxxhash-dev
	# daemon, HTTP and media
	libmicrohttpd-dev libavformat-dev libavcodec-dev libavutil-dev
	libjansson-dev libsodium-dev uuid-dev libcsv-dev libinih-dev
	# nvr-bench http: an independent HTTP client
	libcurl4-openssl-dev
	# SHA-256 of exported files (libcrypto: the CPU's SHA instructions)
	libssl-dev
	# tests: ffmpeg/ffprobe (libx264, libx265) make fixtures and check output;
	# GStreamer's RTSP server (through Debian's python3-gi) is the real RTSP
	# peer of the ingest tests
	libcriterion-dev ffmpeg curl python3 ca-certificates
	# tests: openssl makes the HTTPS test's certificate; dpkg-dev (make deb:
	# dpkg-shlibdeps) comes with build-essential
	openssl
	python3-gi python3-prometheus-client python3-gst-1.0 gir1.2-gst-rtsp-server-1.0
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good
	gstreamer1.0-plugins-bad gstreamer1.0-tools
	# tests: the web interface end to end (tests/blackbox/ui_e2e.sh) in
	# Debian's headless chromium, driven by playwright-core from npm
	# (tests/ui/package.json, installed by the test with npm ci); npm is
	# added below unless the installed nodejs already provides it
	chromium nodejs fonts-dejavu-core
)
# Debian's nodejs comes without npm; a nodejs package that provides npm
# (NodeSource's) conflicts with Debian's npm, so npm is asked for only when
# nothing provides the command.
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

# Prints the packages of PACKAGES that are not fully installed.
missing_packages() {
	local p status
	for p in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
		[[ $status == "ii "* ]] || echo "$p"
	done
}

main() {
	local missing
	missing=$(missing_packages)
	if [[ -z $missing ]]; then
		echo "install-deps: all ${#PACKAGES[@]} packages already installed"
		return 0
	fi
	echo "install-deps: missing: $(tr '\n' ' ' <<<"$missing")"
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: must run as root to install them (sudo $0)" >&2
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${PACKAGES[@]}"
}

main "$@"
