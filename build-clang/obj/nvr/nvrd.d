build-clang/obj/nvr/nvrd.o: nvr/nvrd.c nvr/camsync.h nvr/ingest.h \
  nvr/registry.h storage/storage.h nvr/cli_parse.h nvr/datadir.h \
  nvr/log.h nvr/simulate.h nvr/volume_plan.h

nvr/camsync.h:

nvr/ingest.h:

nvr/registry.h:

storage/storage.h:

nvr/cli_parse.h:

nvr/datadir.h:

nvr/log.h:

nvr/simulate.h:

nvr/volume_plan.h:
