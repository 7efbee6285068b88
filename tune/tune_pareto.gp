# tune_pareto.gp - latency index vs resident bytes per live buffer, one point
# per configuration, the Pareto front (lower is better on both) joined.
# Left: every configuration; right: a zoom on the crowd around the default.
# pareto.dat kind: 1 the default, 2 the A/A control (the default again);
# labels*.dat: where tune.py placed each label so that none overlap.
set multiplot title sprintf("tars options: latency vs memory (run %s, median of %d rounds, bars: IQR)\nlatency: geomean of %d ratios of median batch means to the default in the same round; memory: %s", run, nrounds, nkeys, memkey)
set logscale y
set ytics (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1, 1.05, 1.1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 4)
set ylabel 'median latency index (default = 1, lower is faster; log)'
set xlabel 'resident bytes per live buffer'

# Left panel: everything, the crowd boxed.
set origin 0, 0
set size 0.42, 0.9
set xrange [xlo:xhi]
set yrange [ylo:yhi]
set xtics 100
set key off
set object 1 rect from bxlo, bylo to bxhi, byhi fs empty border lc rgb '#9467bd' dt 2
set label 1 'zoom ->' at bxhi, byhi left offset 0.3, 0.4 font ',9' tc rgb '#9467bd'
plot data.'/front.dat' using 2:3 with lines lw 2 lc rgb '#2ca02c' dt 2, \
	data.'/pareto.dat' using ($7 == 2 ? NaN : $2):3 with points lc rgb '#888888' pt 7 ps 0.8, \
	'' using ($6 == 1 ? $2 : NaN):3 with points pt 6 ps 1.8 lw 2 lc rgb '#2ca02c', \
	'' using ($7 == 1 ? $2 : NaN):3 with points pt 7 ps 1.3 lc rgb '#d62728', \
	data.'/labels.dat' using 2:3:($4-$2):($5-$3) with vectors nohead lc rgb '#bbbbbb', \
	'' using 4:5:1 with labels left offset 0.3,0 font ',8' tc rgb '#222222'
unset object 1
unset label 1

# Right panel: the crowd.
set origin 0.42, 0
set size 0.58, 0.9
set xrange [zxlo:zxhi]
set yrange [zylo:zyhi]
set xtics autofreq
set ylabel ''
set key bottom left box opaque font ',9' samplen 1
plot data.'/front.dat' using 2:3 with lines lw 2 lc rgb '#2ca02c' dt 2 title 'Pareto front', \
	data.'/pareto.dat' using ($7 == 2 ? NaN : $2):3:4:5 with yerrorbars lc rgb '#888888' pt 7 ps 0.9 title 'configuration', \
	'' using ($6 == 1 ? $2 : NaN):3 with points pt 6 ps 2.2 lw 2 lc rgb '#2ca02c' title 'on the front', \
	'' using ($7 == 1 ? $2 : NaN):3 with points pt 7 ps 1.6 lc rgb '#d62728' title 'current default', \
	'' using ($7 == 2 ? $2 : NaN):3:4:5 with yerrorbars pt 4 ps 1.2 lc rgb '#9467bd' title 'default again (A/A)', \
	data.'/labels_zoom.dat' using 2:3:($4-$2):($5-$3) with vectors nohead lc rgb '#bbbbbb' notitle, \
	'' using 4:5:1 with labels left offset 0.3,0 font ',9' tc rgb '#222222' notitle
unset multiplot
