// Allocates MIB mebibytes, writes every page of it (so the host must back each one), prints
// "touched MIB MiB", holds it for SECONDS (default 0), then exits and the guest frees it.
// Used by the balloon tests: what a guest touches shows in the VM process's resident memory.
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: mem_touch MIB [SECONDS]\n"); return 2; }
  long mib = atol(argv[1]);
  int hold = argc > 2 ? atoi(argv[2]) : 0;
  size_t len = (size_t)mib << 20;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  volatile unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 1; }
  for (size_t i = 0; i < len; i += 4096) p[i] = (unsigned char)(i >> 12 | 1);
  // Read back: a page the host returned while we held it would read as zero here.
  for (size_t i = 0; i < len; i += 4096) {
    if (p[i] != (unsigned char)(i >> 12 | 1)) { printf("page %zu lost its contents\n", i >> 12); return 1; }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("touched %ld MiB in %ld ms\n", mib, (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
  fflush(stdout);
  if (hold > 0) sleep(hold);
  return 0;
}
