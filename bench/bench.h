/*
 * bench.h - the benchmarks of agentbus, as a library the command-line tool
 * links (`agentbus bench ...`) and a tiny standalone program (agentbus-bench).
 */
#ifndef AGENTBUS_BENCH_H
#define AGENTBUS_BENCH_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Run a benchmark. @argv[0] is the command name ("bench"), @argv[1] the
 * benchmark ("latency" or "throughput"), the rest its options; `--help`
 * works everywhere. Results go to stdout (one JSON object with --json),
 * errors to stderr as one line. Returns 0 on success, 1 when a measurement
 * failed, 2 on bad usage: a value for exit().
 *
 * Forks child processes and starts an embedded daemon on a bus of its own
 * ("bench-<pid>-<n>"), all of which are gone again when it returns.
 */
int agentbus_bench_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* AGENTBUS_BENCH_H */
