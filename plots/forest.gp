# forest.gp - every headline of the summary: each backend's value relative
# to tars with its 95% bootstrap interval (log2 axis: 2x slower and 2x
# faster are the same distance from 1).
if (fmt eq 'svg') { set terminal svg size 1100,900 dynamic font 'DejaVu Sans,12' background rgb 'white' } else { set terminal pngcairo size 1100,900 font 'DejaVu Sans,10' background rgb 'white' }
set termoption noenhanced
set output out
set title sprintf("Every headline relative to tars (1 = tars), median over %d processes, bars: 95%% bootstrap interval\n(latency, bytes, system calls: right of 1 is worse; throughput and capacity: right of 1 is better; run %s)", rounds, run)
set logscale x 2
set xlabel 'value / tars value (log2 scale)'
set format x '%g'
set xtics (0.001, 0.01, 0.1, 0.25, 0.5, 1, 2, 4, 10, 100, 1000, 10000)
@forest_ytics
set yrange [0.4:forest_n+0.6]
set grid xtics
set key outside right top box opaque
set arrow from first 1, graph 0 to first 1, graph 1 nohead dt 2 lc rgb '#d62728' lw 1.5
plot for [k=1:words(forest_names)] data.'/forest.dat' skip 1 \
	using ($6 == word(forest_lts, k)+0 ? $3 : NaN):2:4:5 with xerrorbars pt 7 ps 0.8 \
	lt (word(forest_lts, k)+0) title word(forest_names, k)
