build-clang/obj/nvr/simulate.o: nvr/simulate.c nvr/log.h nvr/simulate.h \
  nvr/registry.h

nvr/log.h:

nvr/simulate.h:

nvr/registry.h:
