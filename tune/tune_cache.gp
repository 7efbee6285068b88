# tune_cache.gp - empty-page cache size against system calls per allocation
# (left) and latency, median and p99 (right), for both class schemes.
set multiplot layout 1,2 title sprintf("Empty-page cache size (run %s, median of %d rounds; solid: classes=1, dashed: classes=0)", run, nrounds)
set xtics ('0' 0, '8' log(9)/log(2), '64' log(65)/log(2), '512' log(513)/log(2))
set xrange [-0.5:9.5]
set xlabel 'cache, pages kept per pool (log2(cache + 1) axis)'
set ylabel 'system calls per allocation (tars stats)'
set key top left box opaque font ',9'
set logscale y
set format y '%g'
# cache.dat columns: x, cache, then for classes=1: njobs syscall columns,
# lat q25 q75 hit bytes p99 p99q25 p99q75; then the same for classes=0.
c1 = 3; c0 = 3 + njobs + 8
plot for [j=1:njobs] data.'/cache.dat' using 1:(column(c1+j-1)) with linespoints lw 2 pt 7 lc j \
	title word(jobnames, j), \
	for [j=1:njobs] '' using 1:(column(c0+j-1)) with linespoints lw 2 pt 6 dt 2 lc j notitle
unset logscale y
set ylabel 'latency index (default = 1; bars: IQR over rounds; p99: per operation)'
set key top center box opaque font ',9'
set format y '%.2f'
plot data.'/cache.dat' using ($1-0.12):(column(c1+njobs)):(column(c1+njobs+1)):(column(c1+njobs+2)) \
	with yerrorlines lw 2 pt 7 lc rgb '#d62728' title 'median, classes=1', \
	'' using ($1+0.12):(column(c1+njobs+5)):(column(c1+njobs+6)):(column(c1+njobs+7)) \
	with yerrorlines lw 2 pt 5 lc rgb '#ff7f0e' title 'p99, classes=1', \
	'' using ($1-0.12):(column(c0+njobs)):(column(c0+njobs+1)):(column(c0+njobs+2)) \
	with yerrorlines lw 2 pt 6 dt 2 lc rgb '#1f77b4' title 'median, classes=0', \
	'' using ($1+0.12):(column(c0+njobs+5)):(column(c0+njobs+6)):(column(c0+njobs+7)) \
	with yerrorlines lw 2 pt 4 dt 2 lc rgb '#17becf' title 'p99, classes=0'
unset multiplot
