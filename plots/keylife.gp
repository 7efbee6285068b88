# keylife.gp - the life of a 32-byte key: made with random bytes, closed at
# rest, freed (wiped); the backends that keep keys closed.
set title sprintf("Life of a 32-byte key: new (random, closed at rest) + free\n(tars-key: tars_key_new_random + tars_key_free; others: alloc + getrandom + protect none + free;\nmedian over %d processes, bars: min-max; label: ratio to tars-key [95%% interval]; run %s)", rounds, run)
set ylabel 'time per key life (µs, linear from 0)'
set xlabel 'backend'
set yrange [0:*]
set offsets 0, 0, graph 0.15, 0
set format y '%g'
set style fill solid 0.85 border -1
set boxwidth 0.6
set xtics nomirror
set key off
plot data.'/keylife.dat' skip 1 using 0:2:(0.6):5:xtic(1) with boxes lc variable, \
	'' skip 1 using 0:2:3:4 with yerrorbars lc rgb '#000000' pt 7 ps 0, \
	'' skip 1 using 0:4:6 with labels offset 0,1.6 font ',10'
