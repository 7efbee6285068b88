# large.gp - blocks of several pages: the pair at 4, 16 and 64 KiB and the
# churn over 4-64 KiB blocks, each backend's time relative to tars with
# its 95% bootstrap interval (log2 axis: the per-mapping designs are tens
# of times slower than the rest).
set title sprintf("Large blocks: time relative to tars (1 = tars; below: faster; run %s)\nalloc + touch every byte + free, and churn over 4, 16, 64 KiB blocks; median over %d processes, bars: 95%% bootstrap interval", run, rounds)
set ylabel 'time / tars time (log2 scale)'
set xlabel ''
set logscale y 2
set format y '%g'
set ytics (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
@large_xtics
set xrange [0.5:large_n+0.5]
set grid noxtics ytics
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#d62728' lw 1.5
plot for [k=1:words(large_names)] data.'/large.dat' skip 1 \
	using ($6 == word(large_lts, k)+0 ? $2 : NaN):3:4:5 with yerrorbars pt 7 ps 0.9 \
	lt (word(large_lts, k)+0) title word(large_names, k)
