# latency_size.gp - pair workload: latency of alloc + touch + free vs size.
set title sprintf("Latency of one alloc + touch every byte + free, by buffer size\n(median ns per pair over repetitions; run %s)", run)
set xlabel 'buffer size (bytes, log scale)'
set ylabel 'time per pair (ns, log scale)'
set logscale xy
set autoscale xfix
set offsets graph 0.04, graph 0.04, 0, 0
set format y '%g'
@ns_tics
set xtics ('16' 16, '64' 64, '256' 256, '1 KiB' 1024, '4 KiB' 4096, '16 KiB' 16384, '64 KiB' 65536)
plot for [c=2:latency_size_n] data.'/latency_size.dat' using 1:c \
	title columnhead(c) with linespoints lt (word(latency_size_lt, c-1)+0)
