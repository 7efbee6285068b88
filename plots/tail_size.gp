# tail_size.gp - pair workload: per-operation p99.9 vs size.
set title sprintf("Tail latency of one alloc + touch + free, by buffer size\n(p99.9 of single operations timed with the TSC, median over %d processes; run %s)", rounds, run)
set xlabel 'buffer size (bytes, log scale)'
set ylabel 'p99.9 time per pair (ns, log scale)'
set logscale xy
set autoscale xfix
set offsets graph 0.04, graph 0.04, 0, 0
set format y '%g'
@ns_tics
set xtics ('16' 16, '64' 64, '256' 256, '1 KiB' 1024, '4 KiB' 4096, '16 KiB' 16384, '64 KiB' 65536)
plot for [c=2:tail_size_n] data.'/tail_size.dat' using 1:c \
	title columnhead(c) with linespoints lt (word(tail_size_lt, c-1)+0)
