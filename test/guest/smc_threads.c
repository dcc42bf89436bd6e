// Code one hart rewrites while another runs it compiled, run inside the guest by test/smp_jit_test.ts.
// A runner thread on CPU 0 calls a tiny function in an RWX page (`li a0, G; ret`) in a hot loop, hot
// enough for the JIT to compile the page on the runner's vCPU thread; a writer thread on CPU 1
// rewrites the function's first instruction for the next round through its own mapping of the page,
// flushes the instruction caches (__builtin___clear_cache: the riscv_flush_icache syscall) and then
// publishes the round number. The runner, once it sees the new round (acquire), executes fence.i
// and calls the function: it must return the new round's value — never the old one, which is what
// a compiled copy of the page, kept because the writer's store did not drop it, would return.
// Usage: smc_threads ROUNDS CALLS. Output: "key value" lines, then "ok".
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

static uint32_t *code;
static long rounds, calls;
static _Atomic long published; // the round whose code is in place
static _Atomic long verified = -1; // the last round the runner checked
static long stale, torn;

/** `addi a0, zero, v` (li a0, v) for 0 <= v < 2048. */
static uint32_t li_a0(long v) { return ((uint32_t)v << 20) | (10u << 7) | 0x13u; }

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
    perror("pthread_setaffinity_np");
    exit(1);
  }
}

static void *writer(void *arg) {
  (void)arg;
  pin(1);
  for (long g = 1; g <= rounds; g++) {
    while (atomic_load_explicit(&verified, memory_order_acquire) != g - 1) {}
    atomic_store_explicit((_Atomic uint32_t *)&code[0], li_a0(g % 2048), memory_order_relaxed);
    __builtin___clear_cache((char *)code, (char *)(code + 2));
    atomic_store_explicit(&published, g, memory_order_release);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: smc_threads ROUNDS CALLS\n");
    return 2;
  }
  rounds = atol(argv[1]);
  calls = atol(argv[2]);
  code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (code == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  code[0] = li_a0(0);
  code[1] = 0x00008067; // ret
  __builtin___clear_cache((char *)code, (char *)(code + 2));
  pin(0);
  long (*fn)(void) = (long (*)(void))code;
  pthread_t t;
  if (pthread_create(&t, NULL, writer, NULL) != 0) {
    perror("pthread_create");
    return 1;
  }
  long total = 0;
  for (long g = 1; g <= rounds; g++) {
    // Hot calls of this round's code while the writer waits: the runner's thread compiles the page.
    for (long i = 0; i < calls; i++) {
      long v = fn();
      total++;
      if (v != (g - 1) % 2048) torn++;
    }
    atomic_store_explicit(&verified, g - 1, memory_order_release);
    while (atomic_load_explicit(&published, memory_order_acquire) != g) {
      long v = fn(); // the old code or the new, nothing else
      total++;
      if (v != (g - 1) % 2048 && v != g % 2048) torn++;
    }
    __asm__ volatile("fence.i" ::: "memory");
    if (fn() != g % 2048) stale++;
  }
  atomic_store_explicit(&verified, rounds, memory_order_release);
  pthread_join(t, NULL);
  printf("rounds %ld\ncalls %ld\nstale %ld\ntorn %ld\nok\n", rounds, total, stale, torn);
  return 0;
}
