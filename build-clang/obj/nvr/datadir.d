build-clang/obj/nvr/datadir.o: nvr/datadir.c nvr/datadir.h \
  storage/storage.h nvr/log.h nvr/volume_plan.h

nvr/datadir.h:

storage/storage.h:

nvr/log.h:

nvr/volume_plan.h:
