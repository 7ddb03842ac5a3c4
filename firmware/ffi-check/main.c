/*
 * Drives ecoedge-core's controller with EcoGD through the no_std static library
 * (src/lib.rs) on a simulated board, and exits 0 only when the results are sane:
 * EcoGD left the calibration config, every request is accounted for, and errors
 * come back typed and printable.
 *
 * The board: one CPU clock knob and the batch size. A batch of n requests at f GHz
 * takes (2 + 1.5 n) / f ms and draws 1 W + 2 f^3 W; the board idles at 1 W.
 * Requests arrive every 4 ms. So the maximum clock is fast but wasteful, and a
 * lower one saves energy for some latency: EcoGD has something to find.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int32_t ecoedge_start(const uint32_t *cpu_khz, size_t n_cpu, uint32_t max_batch,
                      uint32_t window, uint32_t warmup);
int32_t ecoedge_push(uint64_t now_us, uint32_t id);
int32_t ecoedge_poll_batch(uint64_t now_us, double energy_j, uint32_t *ids, size_t cap);
int32_t ecoedge_batch_done(uint64_t now_us, double energy_j);
int32_t ecoedge_config(uint32_t *cpu_khz, uint32_t *batch);
int32_t ecoedge_stats(uint64_t *accepted, uint64_t *refused, uint64_t *served);
int32_t ecoedge_last_error(char *buf, size_t len);

enum { WINDOW_CLOSED = 1, CONFIG_CHANGED = 2, E_DONE = -6 };

static const uint32_t CPU_KHZ[] = {345600, 499200, 652800, 806400, 960000, 1113600,
                                   1267200, 1420800, 1574400, 1728000, 1881600, 2035200};
#define N_CPU (sizeof CPU_KHZ / sizeof CPU_KHZ[0])
#define MAX_BATCH 8
#define WINDOW 32
#define WARMUP 4
#define WINDOWS 80
#define ARRIVAL_US 4000
#define IDLE_W 1.0

static int fail(const char *what, int32_t status) {
    char msg[128];
    ecoedge_last_error(msg, sizeof msg);
    fprintf(stderr, "ffi-check: %s failed (%d): %s\n", what, (int)status, msg);
    return 1;
}

int main(void) {
    int32_t status = ecoedge_start(CPU_KHZ, N_CPU, MAX_BATCH, WINDOW, WARMUP);
    if (status != 0) {
        return fail("ecoedge_start", status);
    }

    /* A typed error crosses the boundary as a code and a core::fmt message. */
    char msg[128];
    status = ecoedge_batch_done(0, 0.0);
    ecoedge_last_error(msg, sizeof msg);
    if (status != E_DONE || strcmp(msg, "no batch is in flight") != 0) {
        fprintf(stderr, "ffi-check: expected E_DONE 'no batch is in flight', got %d '%s'\n",
                (int)status, msg);
        return 1;
    }

    uint32_t cpu_khz = 0, batch = 0, start_khz = 0, start_batch = 0;
    ecoedge_config(&start_khz, &start_batch);
    cpu_khz = start_khz;
    batch = start_batch;

    uint64_t now = 0, next_arrival = 0, completed = 0;
    uint32_t next_id = 0, ids[16];
    double energy = 0.0;
    int windows = 0, changes = 0;
    while (windows < WINDOWS) {
        for (; next_arrival <= now; next_arrival += ARRIVAL_US) {
            if (ecoedge_push(next_arrival, next_id++) < 0) {
                return fail("ecoedge_push", -1);
            }
        }
        int32_t n = ecoedge_poll_batch(now, energy, ids, sizeof ids / sizeof ids[0]);
        if (n < 0) {
            return fail("ecoedge_poll_batch", n);
        }
        if (n == 0) { /* idle until the next arrival */
            energy += IDLE_W * (double)(next_arrival - now) * 1e-6;
            now = next_arrival;
            continue;
        }
        double f_ghz = cpu_khz * 1e-6;
        double service_s = (2.0 + 1.5 * n) / f_ghz * 1e-3;
        energy += (1.0 + 2.0 * f_ghz * f_ghz * f_ghz) * service_s;
        now += (uint64_t)(service_s * 1e6) + 1;
        int32_t flags = ecoedge_batch_done(now, energy);
        if (flags < 0) {
            return fail("ecoedge_batch_done", flags);
        }
        completed += (uint64_t)n;
        windows += (flags & WINDOW_CLOSED) != 0;
        if (flags & CONFIG_CHANGED) {
            changes++;
            ecoedge_config(&cpu_khz, &batch);
        }
    }

    uint64_t accepted, refused, served;
    ecoedge_stats(&accepted, &refused, &served);
    int optimizing = ecoedge_config(&cpu_khz, &batch);
    printf("ffi-check: %d windows, %d config changes, %.3f J over %.3f s\n", windows, changes,
           energy, now * 1e-6);
    printf("ffi-check: config %u kHz batch %u (started at %u kHz batch %u), optimizing %d\n",
           (unsigned)cpu_khz, (unsigned)batch, (unsigned)start_khz, (unsigned)start_batch,
           optimizing);
    printf("ffi-check: queue accepted %llu refused %llu served %llu; completed %llu\n",
           (unsigned long long)accepted, (unsigned long long)refused,
           (unsigned long long)served, (unsigned long long)completed);

    fflush(stdout);
    int ok = 1;
    if (optimizing != 1 || changes == 0 ||
        (cpu_khz == start_khz && batch == start_batch)) {
        fprintf(stderr, "ffi-check: EcoGD did not move from the calibration config\n");
        ok = 0;
    }
    if (accepted + refused != next_id || served > accepted || completed > served ||
        served - completed > MAX_BATCH || accepted - served > 63) {
        fprintf(stderr, "ffi-check: requests unaccounted for\n");
        ok = 0;
    }
    if (!(energy > 0.0) || completed == 0) {
        fprintf(stderr, "ffi-check: nothing was served\n");
        ok = 0;
    }
    return ok ? 0 : 1;
}
