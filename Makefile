# Build for the whole project. `make` builds every program into build/bin/;
# `make test` runs the unit and black-box tests; `make asan` runs them again
# under AddressSanitizer and UndefinedBehaviorSanitizer; `make fuzz` builds
# the libFuzzer targets (`make fuzz-run` runs each for FUZZ_SECONDS);
# `make deb` builds the Debian package into $(BUILD)/.
#
# Layers (see docs/ARCHITECTURE.md): storage/ -> libnvrstorage.a (no project
# dependencies); nvr/ -> libnvr.a (the daemon's modules: registry, RTSP/RTP,
# ingest) on top of it; the programs in nvr/nvrd.c and tools/ link both;
# web/ comes on top of both.

CC      ?= cc
BUILD   ?= build
PKGS    := liburing lmdb libzstd libxxhash jansson libavformat libavcodec libavutil libmicrohttpd \
           libsodium inih libcrypto
CFLAGS  ?= -O2 -g
# Flags every build needs; CFLAGS stays free for the caller (make asan sets it).
NVR_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -MMD -MP -Istorage -Invr -Iweb \
           $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lcsv -lpthread -lm
TEST_LDLIBS := $(shell pkg-config --libs criterion)

STORAGE_SRC := $(wildcard storage/*.c)
STORAGE_OBJ := $(STORAGE_SRC:%.c=$(BUILD)/obj/%.o)
STORAGE_LIB := $(BUILD)/lib/libnvrstorage.a

# The daemon's modules: every nvr/*.c except the daemon's main().
NVR_SRC := $(filter-out nvr/nvrd.c,$(wildcard nvr/*.c))
NVR_OBJ := $(NVR_SRC:%.c=$(BUILD)/obj/%.o)
NVR_LIB := $(BUILD)/lib/libnvr.a

# The HTTP API on top of both: every web/*.c.
WEB_SRC := $(wildcard web/*.c)
WEB_OBJ := $(WEB_SRC:%.c=$(BUILD)/obj/%.o)
WEB_LIB := $(BUILD)/lib/libnvrweb.a

# Programs: name -> sources under tools/ or nvr/.
PROGRAMS := nvr-format nvr-fsck nvr-bench nvrd nvrctl nvr-camsim
nvr-format_SRC := $(wildcard tools/format/*.c)
nvr-fsck_SRC   := $(wildcard tools/fsck/*.c)
nvr-bench_SRC  := $(wildcard tools/bench/*.c)
nvrctl_SRC     := $(wildcard tools/nvrctl/*.c)
nvr-camsim_SRC := $(wildcard tools/camsim/*.c)
nvrd_SRC       := nvr/nvrd.c
nvr-bench_LIBS := $(shell pkg-config --libs libcurl)
nvrctl_LIBS    := $(shell pkg-config --libs libcurl)
$(foreach p,$(PROGRAMS),$(eval $(p)_OBJ := $$($(p)_SRC:%.c=$$(BUILD)/obj/%.o)))

BINS := $(PROGRAMS:%=$(BUILD)/bin/%)
FIXTURES := $(BUILD)/fixtures/.stamp

# Small programs the black-box tests use (tests/helpers/*.c), in BUILD/helpers.
HELPER_SRC  := $(wildcard tests/helpers/*.c)
HELPER_BINS := $(HELPER_SRC:tests/helpers/%.c=$(BUILD)/helpers/%)

TEST_SRC  := $(wildcard tests/unit/*.c)
TEST_BINS := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)

FUZZ_SRC  := $(wildcard tests/fuzz/*.c)
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 60

.PHONY: all test unit blackbox asan fuzz fuzz-run bench clean deps deb
all: $(BINS) $(FIXTURES) $(HELPER_BINS)

# Video files of the camera simulator (nvrd's demo, tests): made with ffmpeg.
# The demo's lighter pair (384 kbit/s) is what nvrd's simulated cameras stream.
$(FIXTURES): scripts/make-fixtures.sh Makefile
	scripts/make-fixtures.sh $(dir $@) >/dev/null
	scripts/make-fixtures.sh $(dir $@) 10 384 >/dev/null && touch $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(NVR_CFLAGS) $(CFLAGS) -c $< -o $@

$(STORAGE_LIB): $(STORAGE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(NVR_LIB): $(NVR_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(WEB_LIB): $(WEB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

.SECONDEXPANSION:
$(BUILD)/bin/%: $$($$*_OBJ) $(WEB_LIB) $(NVR_LIB) $(STORAGE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(NVR_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) $($*_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(WEB_LIB) $(NVR_LIB) $(STORAGE_LIB) tests/unit/testutil.h $(FUZZ_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(NVR_CFLAGS) $(CFLAGS) $(LDFLAGS) -Istorage -Invr -o $@ $< $(WEB_LIB) $(NVR_LIB) $(STORAGE_LIB) $(LDLIBS) $(TEST_LDLIBS)

$(BUILD)/helpers/%: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(NVR_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

# The unit tests (Criterion) and the black-box tests of the binaries.
test: all $(TEST_BINS)
	BUILD=$(BUILD) tests/run-tests.sh

# Same tests, sanitizers on, in a separate build tree. Fault injection is
# compiled into the library there so the failing-volume test runs too.
asan:
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp $(MAKE) BUILD=build-asan CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" test

# libFuzzer targets: one per parser, linked against a sanitizer build of the library.
fuzz: $(FUZZ_BINS)
# Library code for the fuzzers, instrumented, in an archive so that each
# target links only the objects its parser needs.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 $(shell pkg-config --cflags $(PKGS)) -Istorage -Invr -Iweb
FUZZ_LIB := $(BUILD)/fuzz/libfuzzdeps.a
FUZZ_OBJ := $(STORAGE_SRC:%.c=$(BUILD)/fuzzobj/%.o) $(NVR_SRC:%.c=$(BUILD)/fuzzobj/%.o) \
            $(WEB_SRC:%.c=$(BUILD)/fuzzobj/%.o)
$(BUILD)/fuzzobj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
$(FUZZ_LIB): $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined $(LDFLAGS) -o $@ $< \
	  $(FUZZ_LIB) $(LDLIBS)

fuzz-run: fuzz
	for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p tests/fuzz/corpus/$$n; \
	  seeds=; [ -d tests/fuzz/seeds/$$n ] && seeds=tests/fuzz/seeds/$$n; \
	  $$f -max_total_time=$(FUZZ_SECONDS) tests/fuzz/corpus/$$n $$seeds || exit 1; done

deps:
	scripts/install-deps.sh

# The Debian package: $(BUILD)/nvr_VERSION_ARCH.deb (packaging/README.md).
VERSION := $(shell cat VERSION)
deb: all
	packaging/build-deb.sh $(BUILD) $(VERSION)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj $(BUILD)/tests -name '*.d' 2>/dev/null)
