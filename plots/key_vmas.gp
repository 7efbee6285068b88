# key_vmas.gp - VMAs against live keys, from the capacity run: every
# backend that keeps keys closed at rest (tars-key: tars_key containers in
# shared guarded regions; mmap and sodium: a mapping per key).
set title sprintf("Mappings (VMAs) against live keys, capacity run (run %s)\nlines of /proc/self/maps; each line ends where its backend stopped:\nthe cap, a failure or its time bound", run)
set xlabel 'live 64-byte keys (log scale)'
set ylabel 'VMA count (log scale)'
set logscale xy
set autoscale xfix
set offsets graph 0.04, graph 0.04, 0, 0
set yrange [10:200000]
set format y '%.0s%c'
set format x '%.0s%c'
plot for [c=2:key_vmas_n] data.'/key_vmas.dat' using 1:c \
	title columnhead(c) with linespoints lt (word(key_vmas_lt, c-1)+0), \
	65530 title 'vm.max_map_count default' with lines dt 2 lc rgb '#000000' lw 1
