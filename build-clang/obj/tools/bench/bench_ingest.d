build-clang/obj/tools/bench/bench_ingest.o: tools/bench/bench_ingest.c \
  tools/bench/bench.h tools/bench/../../storage/storage.h \
  tools/bench/bench_util.h

tools/bench/bench.h:

tools/bench/../../storage/storage.h:

tools/bench/bench_util.h:
