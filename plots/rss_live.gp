# rss_live.gp - fill workload: resident bytes per live 64-byte buffer.
set title sprintf("Resident memory per live 64-byte buffer, by number of live buffers\n(VmRSS growth / live buffers at the peak of a fill; run %s)", run)
set xlabel 'live buffers (log scale)'
set ylabel 'resident bytes per live buffer (log scale)'
set logscale xy
set autoscale xfix
set offsets graph 0.04, graph 0.04, 0, 0
set format y '%g'
@bytes_tics
set format x '%.0s%c'
plot for [c=2:rss_live_n] data.'/rss_live.dat' using 1:c \
	title columnhead(c) with linespoints lt (word(rss_live_lt, c-1)+0), \
	64 title 'requested (64 B)' with lines dt 2 lc rgb '#000000' lw 1
