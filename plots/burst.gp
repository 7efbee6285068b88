# burst.gp - allocate K then free K, repeatedly: time per operation vs K.
set title sprintf("Bursts: allocate K 64-byte buffers, then free all K (steady state)\n(one alloc + touch or one free; median over %d processes; run %s)", rounds, run)
set xlabel 'K (log scale)'
set ylabel 'time per operation (ns, log scale)'
set logscale xy
set autoscale xfix
set offsets graph 0.06, graph 0.06, 0, 0
set format y '%g'
@ns_tics
set xtics (64, 256, 1024, 4096)
plot for [c=2:burst_n] data.'/burst.dat' using 1:c \
	title columnhead(c) with linespoints lt (word(burst_lt, c-1)+0)
