# pair_ratio.gp - pair workload: time per pair relative to tars, with the
# 95% bootstrap interval over processes, on a linear axis (1 = tars).
set title sprintf("alloc + touch + free, relative to tars (1 = tars; below: faster; run %s)\nmedian over %d processes, bars: 95%% bootstrap interval\noff this scale: %s", run, rounds, pair_ratio_far)
set xlabel 'buffer size (bytes, log scale)'
set ylabel 'time per pair / tars time per pair'
set logscale x 2
set autoscale xfix
set offsets graph 0.04, graph 0.04, 0, 0
set yrange [0:*]
set format y '%.1f'
set xtics ('16' 16, '64' 64, '256' 256, '1 KiB' 1024, '4 KiB' 4096, '16 KiB' 16384, '64 KiB' 65536)
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#d62728' lw 1.5
plot for [i=1:pair_ratio_n] data.'/pair_ratio.dat' using ($1*(1+0.03*(i-pair_ratio_n/2.0))):(column(3*i-1)):(column(3*i)):(column(3*i+1)) \
	title columnhead(3*i-1) with yerrorlines lt (word(pair_ratio_lt, i)+0)
