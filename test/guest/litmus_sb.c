// Store buffering (the "SB" litmus test), run inside the guest by test/smp_test.ts: two threads
// on two CPUs, each stores 1 to its own word, runs `fence rw,rw`, then loads the other's word.
// RISC-V forbids both loads reading 0 (the fence orders each store before the load after it);
// a host that lets a load pass an earlier store (x86 does, through its store buffer) shows that
// outcome unless the VMM turns FENCE into a host barrier. Output: "rounds N", "forbidden N".
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static long rounds;
static volatile long x, y;
static volatile long r0, r1;
static _Atomic long arrived;
static long forbidden;

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// Both sides wait here until the other has arrived too (the n-th barrier: 2n arrivals).
static void barrier(long n) {
  atomic_fetch_add_explicit(&arrived, 1, memory_order_acq_rel);
  while (atomic_load_explicit(&arrived, memory_order_acquire) < 2 * n) {
  }
}

// Each round: meet, store, fence, load, meet; side 0 counts the outcome and clears the words; meet.
static void *side(void *arg) {
  int me = (int)(long)arg;
  pin(me);
  long n = 0;
  for (long r = 0; r < rounds; r++) {
    barrier(++n);
    if (me == 0) {
      x = 1;
      __asm__ volatile("fence rw,rw" ::: "memory");
      r0 = y;
    } else {
      y = 1;
      __asm__ volatile("fence rw,rw" ::: "memory");
      r1 = x;
    }
    barrier(++n);
    if (me == 0) {
      if (r0 == 0 && r1 == 0) forbidden++;
      x = 0;
      y = 0;
    }
    barrier(++n);
  }
  return NULL;
}

int main(int argc, char **argv) {
  rounds = argc > 1 ? atol(argv[1]) : 100000;
  pthread_t t[2];
  for (long i = 0; i < 2; i++) pthread_create(&t[i], NULL, side, (void *)i);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  printf("rounds %ld\nforbidden %ld\n", rounds, forbidden);
  return 0;
}
