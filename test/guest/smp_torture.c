// SMP torture test, run inside the guest by test/smp_test.ts: N threads hammer shared memory
// with every kind of synchronisation a kernel and libc use, and every count must come out exact.
//   - contended atomic increments (amoadd.w / amoadd.d through C11 atomics)
//   - a hand-written LR/SC increment loop (lr.d / sc.d)
//   - a pthread mutex protecting a plain counter (futex-based under contention)
//   - a futex wait/wake ping-pong between pairs of threads
// Thread i is pinned to CPU i mod the online count (the guest's scheduler may otherwise leave a
// hart idle), and records which CPUs it ran on (sched_getcpu), so the test can check that every
// hart actually ran guest code. Output: one "key value" line per figure, then "ok".
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_THREADS 64

static long iterations;
static int nthreads;
static _Atomic uint32_t atomic32;
static _Atomic uint64_t atomic64;
static uint64_t lrsc64;
static uint64_t locked;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t cpus_seen; // bit per CPU
static uint32_t pingpong[MAX_THREADS / 2];
static long pingpong_rounds;

static void lrsc_increment(uint64_t *p) {
  uint64_t old, fail;
  do {
    __asm__ volatile("lr.d %0, (%2)\n\tadd %0, %0, 1\n\tsc.d %1, %0, (%2)"
                     : "=&r"(old), "=&r"(fail)
                     : "r"(p)
                     : "memory");
  } while (fail != 0);
}

static long futex(uint32_t *addr, int op, uint32_t val) {
  return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static void note_cpu(void) {
  int cpu = sched_getcpu();
  if (cpu >= 0 && cpu < 64) atomic_fetch_or(&cpus_seen, (uint64_t)1 << cpu);
}

// Pair p: thread 2p waits for even values and writes odd ones; thread 2p+1 the reverse.
static void ping_pong(int id) {
  uint32_t *word = &pingpong[id / 2];
  uint32_t parity = (uint32_t)(id & 1);
  for (long r = 0; r < pingpong_rounds; r++) {
    uint32_t v;
    while (((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) & 1) != parity) futex(word, FUTEX_WAIT_PRIVATE, v);
    __atomic_store_n(word, v + 1, __ATOMIC_RELEASE);
    futex(word, FUTEX_WAKE_PRIVATE, 1);
  }
}

// Moves the calling thread onto one CPU, so every hart takes part in the contention.
static void pin_to_cpu(int id) {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online < 1) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET((int)(id % online), &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  pin_to_cpu(id);
  for (long i = 0; i < iterations; i++) {
    atomic_fetch_add(&atomic32, 1);
    atomic_fetch_add(&atomic64, 1);
    lrsc_increment(&lrsc64);
    pthread_mutex_lock(&lock);
    locked++;
    pthread_mutex_unlock(&lock);
    if ((i & 255) == 0) note_cpu();
  }
  note_cpu();
  if (id < (nthreads & ~1)) ping_pong(id);
  return NULL;
}

int main(int argc, char **argv) {
  nthreads = argc > 1 ? atoi(argv[1]) : 4;
  iterations = argc > 2 ? atol(argv[2]) : 20000;
  pingpong_rounds = argc > 3 ? atol(argv[3]) : 500;
  if (nthreads < 1 || nthreads > MAX_THREADS) return 2;
  pthread_t t[MAX_THREADS];
  for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
  for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
  uint64_t want = (uint64_t)nthreads * (uint64_t)iterations;
  printf("threads %d\niterations %ld\n", nthreads, iterations);
  printf("atomic32 %u\natomic64 %llu\nlrsc %llu\nmutex %llu\n", (unsigned)atomic32, (unsigned long long)atomic64,
         (unsigned long long)lrsc64, (unsigned long long)locked);
  unsigned long long pp = 0;
  for (int p = 0; p < nthreads / 2; p++) pp += pingpong[p];
  printf("pingpong %llu\ncpus_seen %llx\nonline_cpus %ld\n", pp, (unsigned long long)cpus_seen, sysconf(_SC_NPROCESSORS_ONLN));
  int ok = atomic32 == (uint32_t)want && atomic64 == want && lrsc64 == want && locked == want &&
           pp == (unsigned long long)(nthreads / 2) * 2 * (unsigned long long)pingpong_rounds;
  printf("%s\n", ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}
