# tls.gp - the real client: TLS 1.3 handshakes (+ 16 KiB each way) per
# second with OpenSSL's heap on each backend (left), and where the time of
# one handshake goes for the backends within 10 ms (right).
set multiplot layout 1,2 title sprintf("OpenSSL 3 TLS 1.3 handshakes, OpenSSL's heap on each backend (one thread; medians over %d processes; run %s)", rounds, run)
set title 'handshakes per second (log scale; bars: min-max over processes)'
set ylabel 'handshakes + 16 KiB each way, per second'
set logscale y
set format y '%g'
set style fill solid 0.85 border -1
set boxwidth 0.7
set xtics nomirror rotate by -40
set key off
plot data.'/tls.dat' skip 1 using 0:2:(0.7):5:xtic(1) with boxes lc variable, \
	'' skip 1 using 0:2:3:4 with yerrorbars lc rgb '#000000' pt 0, \
	'' skip 1 using ($0+0.25):($2*1.6):(sprintf('%.0f', $2)) with labels font ',8'
unset logscale y
set title 'where a handshake goes (backends under 10 ms)'
set ylabel 'ms per handshake'
# Headroom above the tallest bar for the key, so that it hides no bar.
stats data.'/tls_time.dat' using ($2+$3+$4) nooutput
set yrange [0:STATS_max*1.45]
set format y '%.1f'
set style data histograms
set style histogram rowstacked
set boxwidth 0.7
set key inside top right vertical font ',9'
plot data.'/tls_time.dat' using 2:xtic(1) title columnhead(2) lc rgb '#4c72b0', \
	'' using 3 title columnhead(3) lc rgb '#c44e52', \
	'' using 4 title columnhead(4) lc rgb '#cccccc'
unset multiplot
