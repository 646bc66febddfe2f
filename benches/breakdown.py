#!/usr/bin/env python3
"""CPU per enrollment by kind of work, from `perf script` stacks folded by
inferno-collapse-perf (one line per stack: frames joined by ';', then the CPU time of its
samples in nanoseconds: perf's cpu-clock periods).

    BENCH_PERF=/tmp/server.perf BENCH_CFSSL=0 BENCH_ACME_REQUESTS=0 BENCH_ROUNDS=1 \
        cargo bench --bench enroll
    perf script -i /tmp/server.perf | inferno-collapse-perf > /tmp/server.folded
    python3 benches/breakdown.py /tmp/server.folded RATE [SECONDS]

RATE is the certificates/s the benchmark printed for the separate process and SECONDS how
long perf recorded (3). A stack is counted under the first category (in the order below)
that one of its frames matches.
"""
import sys

CATEGORIES = [
    ("fsync (the kernel's CPU in it; the wait is not CPU)", ["fsync", "fdatasync", "jbd2", "blkdev_issue_flush"]),
    ("OCSP responses made at issue (two signatures, their rows)", ["services::ocsp", "pki::ocsp"]),
    ("signing the certificate", ["rcgen", "issue::issue", "presign"]),
    ("CSR parse and signature check", ["csr::verify", "x509_parser", "verify_pem"]),
    ("audit chain (HMAC, event)", ["audit::record", "keyed_hash"]),
    ("database statements (SQLite, diesel)", ["sqlite3", "diesel", "r2d2"]),
    ("JSON", ["serde_json", "serde::"]),
    ("HTTP (actix, parsing, sockets)", ["actix", "httparse", "h1::", "tcp_", "sock_", "epoll", "mio::"]),
]


def main():
    path, rate = sys.argv[1], float(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    totals = {name: 0 for name, _ in CATEGORIES}
    other = 0
    for line in open(path):
        stack, _, count = line.rstrip().rpartition(" ")
        n = int(count)
        for name, needles in CATEGORIES:
            if any(k in stack for k in needles):
                totals[name] += n
                break
        else:
            other += n
    samples = sum(totals.values()) + other
    enrollments = rate * seconds
    us = lambda ns: ns / 1000 / enrollments
    print(f"{samples / 1e9:.2f} s of CPU over {seconds:.0f} s, about {enrollments:.0f} enrollments")
    print(f"| work | µs of CPU per enrollment | share |")
    print(f"|---|---:|---:|")
    for name, _ in CATEGORIES:
        print(f"| {name} | {us(totals[name]):.0f} | {100 * totals[name] / samples:.0f} % |")
    print(f"| everything else (allocation, scheduling, the rest of the runtime) | {us(other):.0f} | {100 * other / samples:.0f} % |")
    print(f"| **all** | **{us(samples):.0f}** | 100 % |")


if __name__ == "__main__":
    main()
