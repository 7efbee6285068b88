# tail.gp - churn (1000 live slots, crypto sizes): per-operation p50 / p99 / p99.9.
set title sprintf("Per-operation latency in steady-state churn\n(1000 live slots, crypto sizes; one free + alloc + touch timed alone with the TSC; medians over %d processes; run %s)", rounds, run)
set ylabel 'time per operation (ns, log scale)'
set xlabel 'backend'
set logscale y
set format y '%g'
@ns_tics
set key above horizontal
set yrange [1:*]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics nomirror rotate by -30
plot data.'/tail.dat' using 2:xtic(1) title columnhead(2) lc rgb '#4c72b0', \
	'' using 3 title columnhead(3) lc rgb '#dd8452', \
	'' using 4 title columnhead(4) lc rgb '#c44e52'
