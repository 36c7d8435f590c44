build-clang/obj/nvr/camsync.o: nvr/camsync.c nvr/camsync.h nvr/ingest.h \
  nvr/registry.h storage/storage.h nvr/log.h

nvr/camsync.h:

nvr/ingest.h:

nvr/registry.h:

storage/storage.h:

nvr/log.h:
