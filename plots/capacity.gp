# capacity.gp - live 64-byte buffers before the backend fails (cap 2M).
set title sprintf("Capacity: live 64-byte buffers before the first failure\n(stopped at a cap of 2,000,000; label: count and errno of the failing call; run %s)", run)
set ylabel 'live buffers (log scale)'
set xlabel 'backend'
set logscale y
set format y '%.0s%c'
set yrange [1000:2e7]
set style fill solid 0.85 border -1
set boxwidth 0.7
set xtics nomirror
set key off
plot data.'/capacity.dat' skip 1 using 0:2:(0.7):3:xtic(1) with boxes lc variable, \
	'' skip 1 using 0:($2*1.5):4 with labels font ',10'
