# capacity.gp - live 64-byte buffers before the backend fails (cap 2M).
set title sprintf("Capacity: live 64-byte buffers before the first failure\n(stopped at a cap of 2,000,000; label: the count and the errno of the failing call; run %s)", run)
set ylabel 'live buffers (millions, linear from 0)'
set xlabel 'backend'
set yrange [0:2.4]
set ytics 0.25
set format y '%.2f'
set style fill solid 0.85 border -1
set boxwidth 0.7
set xtics nomirror rotate by -30
set key off
plot data.'/capacity.dat' skip 1 using 0:2:(0.7):3:xtic(1) with boxes lc variable, \
	'' skip 1 using 0:($2+0.12):4 with labels font ',9'
