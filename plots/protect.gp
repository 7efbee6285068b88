# protect.gp - cost of toggling a 32-byte secret none -> read -> none.
set title sprintf("Protection toggle cost for a 32-byte secret\n(protect read + read one byte + protect none: two mprotect calls; median; run %s)", run)
set ylabel 'time per toggle cycle (ns)'
set xlabel 'backend (only those that can protect one buffer)'
set yrange [0:*]
set format y '%g'
set style fill solid 0.85 border -1
set boxwidth 0.6
set xtics nomirror
set key off
plot data.'/protect.dat' skip 1 using 0:2:(0.6):3:xtic(1) with boxes lc variable, \
	'' skip 1 using 0:2:(sprintf('%.0f ns', $2)) with labels offset 0,0.8 font ',10'
