/*
 * main.c - agentbus-bench: the benchmarks without the command-line tool,
 * `agentbus-bench latency ...` being `agentbus bench latency ...`.
 */
#include "bench.h"

int main(int argc, char **argv)
{
	argv[0] = "bench";
	return agentbus_bench_main(argc, argv);
}
