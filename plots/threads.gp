# threads.gp - thread scaling of churn, remote frees, more threads than cores.
set title sprintf("Thread scaling: churn throughput of all threads together, per second of wall time\n(1024 slots per thread, crypto sizes; 2 shared cores, where 8 threads win a larger share than 2:\nops per CPU-second are in the summary; medians over %d processes; run %s)", rounds, run)
set ylabel 'operations per second, all threads (millions, log scale)'
set xlabel 'backend'
set logscale y
set format y '%g'
set key above horizontal
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics nomirror rotate by -30
plot data.'/threads.dat' using 2:xtic(1) title columnhead(2) lc rgb '#4c72b0', \
	'' using 3 title columnhead(3) lc rgb '#55a868', \
	'' using 4 title columnhead(4) lc rgb '#c44e52', \
	'' using 5 title columnhead(5) lc rgb '#8172b2'
