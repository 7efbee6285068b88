# vma_live.gp - fill workload: VMAs in the process at the peak.
set title sprintf("Mappings (VMAs) in the process at the peak of a fill\n(lines of /proc/self/maps; the default vm.max_map_count is 65530; run %s)", run)
set xlabel 'live 64-byte buffers (log scale)'
set ylabel 'VMA count (log scale)'
set logscale xy
set autoscale xfix
set offsets graph 0.04, graph 0.04, 0, 0
set format y '%.0s%c'
set format x '%.0s%c'
plot for [c=2:vma_live_n] data.'/vma_live.dat' using 1:c \
	title columnhead(c) with linespoints lt (word(vma_live_lt, c-1)+0), \
	65530 title 'vm.max_map_count default' with lines dt 2 lc rgb '#000000' lw 1
