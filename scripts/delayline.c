/*
 * delayline: a fixed one-way delay for the emulated campus link (this kernel has no netem).
 *
 *   delayline IF_A IF_B MICROS
 *
 * Bridges two interfaces of its own network namespace at layer 2: every frame that arrives on
 * one is sent out of the other MICROS microseconds later, in both directions, in order, never
 * dropped while fewer than RING frames wait. Frames are read and written with their
 * virtio_net_hdr (PACKET_VNET_HDR), so the veths' GSO super-frames and partial checksums cross
 * unchanged. Prints "delayline ready" once both sockets are bound, and its counters on SIGTERM.
 * Build: gcc -O2 -o delayline delayline.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING 32768                        /* frames waiting per direction */
#define FRAME_MAX (sizeof(struct virtio_net_hdr) + 65536 + 64)

struct held {
    uint64_t due_ns;
    uint32_t len;
    unsigned char *bytes;
};

struct direction {
    int in, out;
    struct held ring[RING];
    uint32_t first, count;
    unsigned long long forwarded, dropped;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static uint64_t monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int bind_raw(const char *ifname) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    if (fd < 0) { perror("socket(AF_PACKET)"); exit(1); }
    int on = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &on, sizeof on) != 0) { perror("PACKET_VNET_HDR"); exit(1); }
    int buffer = 16 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer, sizeof buffer);
    struct sockaddr_ll at = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
    at.sll_ifindex = (int)if_nametoindex(ifname);
    if (at.sll_ifindex == 0) { fprintf(stderr, "delayline: no interface %s\n", ifname); exit(1); }
    if (bind(fd, (struct sockaddr *)&at, sizeof at) != 0) { perror("bind"); exit(1); }
    return fd;
}

/* Reads every frame waiting on d->in into the ring, stamped with its departure time. */
static void take(struct direction *d, uint64_t delay_ns) {
    for (;;) {
        unsigned char *slot = d->count < RING ? d->ring[(d->first + d->count) % RING].bytes : NULL;
        unsigned char spill[FRAME_MAX];
        struct sockaddr_ll from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(d->in, slot ? slot : spill, FRAME_MAX, 0, (struct sockaddr *)&from, &fromlen);
        if (n <= 0) return;
        if (from.sll_pkttype == PACKET_OUTGOING) continue;   /* our own transmissions on this interface */
        if (!slot) { d->dropped++; continue; }
        struct held *h = &d->ring[(d->first + d->count) % RING];
        h->len = (uint32_t)n;
        h->due_ns = monotonic_ns() + delay_ns;
        d->count++;
    }
}

/* Sends the frames whose time has come; returns ns until the next one is due, or -1 if none wait. */
static int64_t release(struct direction *d, uint64_t now) {
    while (d->count > 0) {
        struct held *h = &d->ring[d->first];
        if (h->due_ns > now) return (int64_t)(h->due_ns - now);
        if (send(d->out, h->bytes, h->len, 0) < 0) {
            d->dropped++;
        } else {
            d->forwarded++;
        }
        d->first = (d->first + 1) % RING;
        d->count--;
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: delayline IF_A IF_B MICROS\n");
        return 2;
    }
    uint64_t delay_ns = strtoull(argv[3], NULL, 10) * 1000ull;
    static struct direction ab, ba;
    ab.in = ba.out = bind_raw(argv[1]);
    ab.out = ba.in = bind_raw(argv[2]);
    for (int i = 0; i < RING; i++) {
        ab.ring[i].bytes = malloc(FRAME_MAX);
        ba.ring[i].bytes = malloc(FRAME_MAX);
        if (!ab.ring[i].bytes || !ba.ring[i].bytes) { perror("malloc"); return 1; }
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("delayline ready: %s <-> %s, %s us each way\n", argv[1], argv[2], argv[3]);
    fflush(stdout);

    struct pollfd fds[2] = { { .fd = ab.in, .events = POLLIN }, { .fd = ba.in, .events = POLLIN } };
    while (!stopping) {
        uint64_t now = monotonic_ns();
        int64_t wait_ab = release(&ab, now), wait_ba = release(&ba, now);
        int64_t wait = wait_ab < 0 ? wait_ba : wait_ba < 0 ? wait_ab : (wait_ab < wait_ba ? wait_ab : wait_ba);
        struct timespec timeout = { 0, 0 };
        if (wait < 0) {
            timeout.tv_sec = 1;
        } else {
            timeout.tv_sec = wait / 1000000000;
            timeout.tv_nsec = wait % 1000000000;
        }
        if (ppoll(fds, 2, &timeout, NULL) > 0) {
            if (fds[0].revents & POLLIN) take(&ab, delay_ns);
            if (fds[1].revents & POLLIN) take(&ba, delay_ns);
        }
    }
    fprintf(stderr, "delayline %s->%s forwarded %llu dropped %llu; %s->%s forwarded %llu dropped %llu\n",
            argv[1], argv[2], ab.forwarded, ab.dropped, argv[2], argv[1], ba.forwarded, ba.dropped);
    return 0;
}
